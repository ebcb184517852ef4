"""``switchyard train | route | eval | embedder`` end to end, on small files built from real
RouterBench rows, with the exported ONNX embedder."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from switchyard.cli import app
from switchyard.routers.datasets import RoutingDataset, concat, load_dataset
from tests.support.embedders import link_embedders
from tests.support.requirements import reference_data

MODELS = ["gpt-4-1106-preview", "claude-v2", "gpt-3.5-turbo-1106", "mistralai/mistral-7b-chat"]
CHEAP = "mistralai/mistral-7b-chat"

runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def _rows(file: str, start: int, count: int) -> RoutingDataset:
    data = load_dataset(reference_data("routing", "routerbench", file)).select_models(MODELS)
    return data.subset(list(range(start, start + count)))


@pytest.fixture(scope="module")
def cache(embedder_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache of this module's own (embeddings land here) holding the session's exported
    embedder through a link, so the shared cache directory stays as exported."""
    return link_embedders(tmp_path_factory.mktemp("cli-cache"), embedder_cache)


@pytest.fixture(scope="module")
def routing_jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """80 lines of the generic format from real RouterBench rows (MBPP and Winogrande)."""
    data = concat([_rows("mbpp_train.csv", 0, 60), _rows("winograde_train.csv", 0, 20)])
    assert data.cost is not None
    path = tmp_path_factory.mktemp("data") / "routing.jsonl"
    with path.open("w") as fh:
        for i, prompt in enumerate(data.prompts):
            scores = dict(zip(data.models, data.quality[i].tolist(), strict=True))
            costs = dict(zip(data.models, data.cost[i].tolist(), strict=True))
            fh.write(json.dumps({"id": i, "prompt": prompt, "scores": scores, "costs": costs}))
            fh.write("\n")
    return path


@pytest.fixture(scope="module")
def trained(
    routing_jsonl: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Result]:
    """A kNN router trained by ``switchyard train`` on the JSONL file."""
    out = tmp_path_factory.mktemp("trained") / "router"
    result = invoke(
        "train", "--router", "knn", "--param", "k=8", "--data", str(routing_jsonl),
        "--out", str(out), "--cache-dir", str(cache),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out, result


@pytest.fixture(scope="module")
def new_prompts() -> list[str]:
    """Prompts the router was not trained on."""
    return _rows("mbpp_train.csv", 100, 4).prompts


def _write_jsonl(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _route(router: Path, cache: Path, prompts: Path, out: Path, *extra: str) -> Result:
    return invoke(
        "route", "--router", str(router), "--input", str(prompts), "--out", str(out),
        "--cache-dir", str(cache), *extra,
    )  # fmt: skip


# -- train --------------------------------------------------------------------------------------


def test_train_writes_a_router_with_its_command_and_data(
    trained: tuple[Path, Result], routing_jsonl: Path, cache: Path
) -> None:
    out, result = trained
    assert result.exit_code == 0, result.output
    assert "80 prompts × 4 models" in result.output
    assert f"saved to {out}" in result.output
    manifest = json.loads((out / "router.json").read_text())
    assert manifest["router"] == "knn"
    assert manifest["models"] == MODELS
    assert manifest["embedder"] == "all-MiniLM-L6-v2-static/pcaz256"
    metadata = manifest["metadata"]
    assert metadata["command"].startswith("switchyard")
    assert metadata["data"] == [str(routing_jsonl)]
    assert metadata["name"] == "knn"
    assert metadata["train_rows"] == 80
    state = json.loads((out / "quality" / "state.json").read_text())
    assert state["params"]["k"] == 8
    cost = json.loads((out / "cost.json").read_text())
    assert cost["source"] == ["data"] * 4
    assert list((cache / "embeddings").glob("*/*.emb.npy"))  # embeddings went to --cache-dir


def test_the_recorded_command_is_the_train_command(trained: tuple[Path, Result]) -> None:
    out, result = trained
    assert result.exit_code == 0, result.output
    command = json.loads((out / "router.json").read_text())["metadata"]["command"]
    assert command.startswith("switchyard train") and "--router knn" in command, (
        command,
        sys.argv,
    )


def test_train_stores_the_cost_weight(routing_jsonl: Path, cache: Path, tmp_path: Path) -> None:
    result = invoke(
        "train", "--router", "best-single", "--data", str(routing_jsonl), "--out",
        str(tmp_path), "--cost-weight", "2.5", "--cache-dir", str(cache),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "router.json").read_text())["cost_weight"] == 2.5


def test_unknown_router_name_exits_2_with_the_choices(
    routing_jsonl: Path, cache: Path, tmp_path: Path
) -> None:
    result = invoke(
        "train", "--router", "no-such-router", "--data", str(routing_jsonl),
        "--out", str(tmp_path / "r"), "--cache-dir", str(cache),
    )  # fmt: skip
    assert result.exit_code == 2
    assert "unknown router 'no-such-router'" in result.output
    assert "choose one of" in result.output and "knn" in result.output
    assert not (tmp_path / "r").exists()


def test_missing_data_path_exits_2(cache: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "data.jsonl"
    result = invoke(
        "train", "--router", "knn", "--data", str(missing), "--out", str(tmp_path / "r"),
        "--cache-dir", str(cache),
    )  # fmt: skip
    assert result.exit_code == 2
    assert "error:" in result.output and "not found" in result.output
    assert "data.jsonl" in result.output


def test_bad_param_exits_2(routing_jsonl: Path, cache: Path, tmp_path: Path) -> None:
    result = invoke(
        "train", "--router", "knn", "--param", "k", "--data", str(routing_jsonl),
        "--out", str(tmp_path / "r"), "--cache-dir", str(cache),
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--param wants KEY=VALUE" in result.output


# -- route --------------------------------------------------------------------------------------


def test_route_writes_one_decision_per_input_line(
    trained: tuple[Path, Result], cache: Path, tmp_path: Path, new_prompts: list[str]
) -> None:
    router, _ = trained
    items: list[dict[str, Any]] = [
        {"id": "plain", "prompt": new_prompts[0]},
        {"id": 7, "messages": [{"role": "user", "content": new_prompts[1]}]},
        {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]},
        {"id": "parts", "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]},
    ]
    prompts = _write_jsonl(tmp_path / "prompts.jsonl", items)
    out = tmp_path / "decisions.jsonl"
    result = _route(router, cache, prompts, out, "--cost-weight", "0")
    assert result.exit_code == 0, result.output
    assert f"wrote 4 decisions to {out}" in result.output
    records = _read_jsonl(out)
    assert [r["id"] for r in records] == ["plain", 7, 3, "parts"]  # default id: the line number
    for record in records:
        assert set(record) == {"id", "model", "quality", "cost"}
        assert list(record["quality"]) == list(record["cost"]) == MODELS
        assert all(0.0 <= q <= 1.0 for q in record["quality"].values())
        assert all(c > 0.0 for c in record["cost"].values())
        assert record["quality"][record["model"]] == max(record["quality"].values())


def test_a_chat_prompt_routes_like_its_text(
    trained: tuple[Path, Result], cache: Path, tmp_path: Path, new_prompts: list[str]
) -> None:
    router, _ = trained
    text = new_prompts[2]
    messages = [{"role": "assistant", "content": "?"}, {"role": "user", "content": text}]
    items: list[dict[str, Any]] = [
        {"id": "text", "prompt": text},
        {"id": "chat", "messages": messages},
    ]
    out = tmp_path / "out.jsonl"
    assert _route(router, cache, _write_jsonl(tmp_path / "p.jsonl", items), out).exit_code == 0
    plain, chat = _read_jsonl(out)
    assert (plain["model"], plain["quality"], plain["cost"]) == (
        chat["model"],
        chat["quality"],
        chat["cost"],
    )


@pytest.mark.parametrize("weight", ["1e9", "inf"])
def test_a_very_large_or_infinite_cost_weight_picks_the_cheapest_model(
    trained: tuple[Path, Result], cache: Path, tmp_path: Path, new_prompts: list[str], weight: str
) -> None:
    router, _ = trained
    prompts = _write_jsonl(tmp_path / "p.jsonl", [{"prompt": p} for p in new_prompts])
    out = tmp_path / "out.jsonl"
    result = _route(router, cache, prompts, out, "--cost-weight", weight)
    assert result.exit_code == 0, result.output
    records = _read_jsonl(out)
    assert len(records) == len(new_prompts)
    for record in records:
        assert record["model"] == min(record["cost"], key=record["cost"].__getitem__) == CHEAP


def test_allow_restricts_the_choice(
    trained: tuple[Path, Result], cache: Path, tmp_path: Path, new_prompts: list[str]
) -> None:
    router, _ = trained
    prompts = _write_jsonl(tmp_path / "p.jsonl", [{"prompt": p} for p in new_prompts])
    out = tmp_path / "out.jsonl"
    allowed = {"claude-v2", "gpt-3.5-turbo-1106"}
    result = _route(
        router, cache, prompts, out, "--allow", "claude-v2", "--allow", "gpt-3.5-turbo-1106"
    )
    assert result.exit_code == 0, result.output
    records = _read_jsonl(out)
    assert all(r["model"] in allowed for r in records)
    for r in records:  # the best allowed model by predicted quality (cost weight 0)
        assert r["quality"][r["model"]] == max(r["quality"][m] for m in allowed)


def test_allowing_no_known_model_exits_2(
    trained: tuple[Path, Result], cache: Path, tmp_path: Path
) -> None:
    router, _ = trained
    prompts = _write_jsonl(tmp_path / "p.jsonl", [{"prompt": "hello"}])
    result = _route(router, cache, prompts, tmp_path / "o.jsonl", "--allow", "gpt-5")
    assert result.exit_code == 2
    assert "exclude every model" in result.output


def test_negative_cost_weight_exits_2(
    trained: tuple[Path, Result], cache: Path, tmp_path: Path
) -> None:
    router, _ = trained
    prompts = _write_jsonl(tmp_path / "p.jsonl", [{"prompt": "hello"}])
    result = _route(router, cache, prompts, tmp_path / "o.jsonl", "--cost-weight", "-1")
    assert result.exit_code == 2
    assert "cost weight must be a number ≥ 0" in result.output


@pytest.mark.parametrize(
    "bad_line",
    ['{"id": 2, "prompt": "unterminated', '{"id": 2}', '"just a string"', '{"prompt": 5}'],
    ids=["malformed-json", "no-prompt", "not-an-object", "prompt-not-text"],
)
def test_a_bad_input_line_exits_2_naming_the_line(
    bad_line: str, trained: tuple[Path, Result], cache: Path, tmp_path: Path
) -> None:
    router, _ = trained
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": 1, "prompt": "fine"}) + "\n\n" + bad_line + "\n")
    result = _route(router, cache, prompts, tmp_path / "out.jsonl")
    assert result.exit_code == 2, result.output
    assert f"{prompts}:3:" in result.output  # the blank line still counts
    assert "error:" in result.output


def test_a_prompt_list_of_strings_exits_2_naming_the_line(
    trained: tuple[Path, Result], cache: Path, tmp_path: Path
) -> None:
    router, _ = trained
    prompts = _write_jsonl(tmp_path / "p.jsonl", [{"prompt": ["a", "b"]}])
    result = _route(router, cache, prompts, tmp_path / "out.jsonl")
    assert result.exit_code == 2, repr(result.exception)
    assert f"{prompts}:1:" in result.output


def test_a_router_dir_that_is_not_a_router_exits_2(cache: Path, tmp_path: Path) -> None:
    prompts = _write_jsonl(tmp_path / "p.jsonl", [{"prompt": "hello"}])
    (tmp_path / "empty").mkdir()
    result = _route(tmp_path / "empty", cache, prompts, tmp_path / "o.jsonl")
    assert result.exit_code == 2
    assert "cannot load router" in result.output
    assert "not a saved router directory" in result.output


def test_a_router_json_that_is_not_an_object_exits_2(cache: Path, tmp_path: Path) -> None:
    prompts = _write_jsonl(tmp_path / "p.jsonl", [{"prompt": "hello"}])
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "router.json").write_text("[]")
    result = _route(tmp_path / "r", cache, prompts, tmp_path / "o.jsonl")
    assert result.exit_code == 2, repr(result.exception)
    assert "cannot load router" in result.output


# -- eval ---------------------------------------------------------------------------------------


def _copy_csv(source: Path, target: Path, start: int, count: int) -> None:
    """Header and ``count`` rows from ``start`` (prompts hold newlines: csv, not lines)."""
    csv.field_size_limit(2**31 - 1)
    with source.open(newline="", encoding="utf-8") as fin:
        reader = csv.reader(fin)
        header = next(reader)
        rows = [row for i, row in enumerate(reader) if start <= i < start + count]
    with target.open("w", newline="", encoding="utf-8") as fout:
        writer = csv.writer(fout)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture(scope="module")
def routerbench_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two small RouterBench CSVs: 60 train and 40 test rows of MBPP."""
    source = reference_data("routing", "routerbench")
    folder = tmp_path_factory.mktemp("routerbench")
    _copy_csv(source / "mbpp_train.csv", folder / "mbpp_train.csv", 0, 60)
    _copy_csv(source / "mbpp_test.csv", folder / "mbpp_test.csv", 0, 40)
    return folder


def test_eval_routerbench_writes_the_report(
    routerbench_folder: Path, cache: Path, tmp_path: Path
) -> None:
    router = tmp_path / "router"
    train = invoke(
        "train", "--router", "knn", "--param", "k=8", "--data", str(routerbench_folder),
        "--out", str(router), "--cache-dir", str(cache),
    )  # fmt: skip
    assert train.exit_code == 0, train.output
    assert "on 60 prompts × 11 models" in train.output  # the train split only
    report_dir = tmp_path / "report"
    result = invoke(
        "eval", "--router", str(router), "--protocol", "routerbench",
        "--data", str(routerbench_folder), "--out", str(report_dir),
        "--compare", "best-single", "--cache-dir", str(cache),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for name in ("report.json", "report.md", "pareto.png"):
        assert (report_dir / name).is_file()
        assert f"wrote {report_dir / name}" in result.output
    assert (report_dir / "pareto.png").read_bytes().startswith(b"\x89PNG")
    report = json.loads((report_dir / "report.json").read_text())
    assert report["protocol"] == "routerbench"
    names = [row["name"] for row in report["rows"]]
    assert {"knn", "best-single", "oracle", "random"} <= set(names)
    assert report["metadata"]["test rows"] == 40
    assert report["metadata"]["train rows"] == 60
    assert report["metadata"]["router"] == str(router)
    knn = next(row for row in report["rows"] if row["name"] == "knn")
    assert 0.0 < knn["metrics"]["AIQ"] <= 1.0
    assert "knn" in (report_dir / "report.md").read_text()


def test_eval_with_an_unknown_protocol_exits_2(
    trained: tuple[Path, Result], routerbench_folder: Path, cache: Path, tmp_path: Path
) -> None:
    router, _ = trained
    result = invoke(
        "eval", "--router", str(router), "--protocol", "mmlu", "--data",
        str(routerbench_folder), "--out", str(tmp_path / "r"), "--cache-dir", str(cache),
    )  # fmt: skip
    assert result.exit_code == 2
    assert "unknown protocol 'mmlu'" in result.output
    assert "routerbench" in result.output
    assert not (tmp_path / "r").exists()


def test_eval_without_a_test_split_exits_2(
    trained: tuple[Path, Result], routing_jsonl: Path, cache: Path, tmp_path: Path
) -> None:
    router, _ = trained
    result = invoke(
        "eval", "--router", str(router), "--protocol", "routerbench", "--data",
        str(routing_jsonl), "--out", str(tmp_path / "r"), "--cache-dir", str(cache),
    )  # fmt: skip
    assert result.exit_code == 2
    assert "no test rows" in result.output


# -- help ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("train", ["--router", "--data", "--out", "--param", "--cost-weight", "--cache-dir"]),
        ("route", ["--router", "--input", "--out", "--cost-weight", "--allow", "--max-cost"]),
        ("eval", ["--router", "--protocol", "--data", "--out", "--compare", "--folds"]),
        ("embedder", ["export", "info"]),
    ],
)
def test_help_describes_the_options(command: str, expected: list[str]) -> None:
    result = runner.invoke(app, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for option in expected:
        assert option in result.output


# -- replay -------------------------------------------------------------------------------------


def test_replay_writes_its_report_and_prints_each_strategys_regret(
    trained: tuple[Path, Result], routing_jsonl: Path, cache: Path, tmp_path: Path
) -> None:
    router, _ = trained
    out = tmp_path / "replay"
    result = invoke(
        "replay", "--data", str(routing_jsonl), "--router", str(router), "--out", str(out),
        "--split", "all", "--seeds", "2", "--drift", f"{CHEAP}:-0.3@0.5",
        "--bandit-param", "dim=16", "--cache-dir", str(cache),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "replaying 80 requests × 2 seeds, 4 models" in result.output
    for strategy in ("offline", "bandit", "oracle", "random"):
        assert f"{strategy} " in result.output
    report = json.loads((out / "replay.json").read_text())
    assert report["metadata"]["drift"] == f"{CHEAP}:-0.3@0.5"
    assert report["steps"] == 80 and report["drift"]["model"] == CHEAP
    assert report["bandit_params"] == {"dim": 16}
    assert (out / "regret.png").stat().st_size > 0 and (out / "replay.md").is_file()


def test_replay_refuses_a_malformed_drift_and_a_missing_split(
    trained: tuple[Path, Result], routing_jsonl: Path, cache: Path, tmp_path: Path
) -> None:
    router, _ = trained
    base = ["replay", "--data", str(routing_jsonl), "--router", str(router),
            "--out", str(tmp_path / "r"), "--cache-dir", str(cache)]  # fmt: skip
    bad = invoke(*base, "--split", "all", "--drift", "nonsense")
    assert bad.exit_code == 2 and "error:" in bad.output
    no_split = invoke(*base)  # the JSONL file has no test split
    assert no_split.exit_code == 2 and "--split all" in no_split.output
    wrong = invoke(*base, "--split", "all", "--bandit-param", "alpha=1")
    assert wrong.exit_code == 2 and "--bandit-param" in wrong.output
