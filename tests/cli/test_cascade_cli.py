"""``switchyard train --cascade`` end to end on a tiny labelled outputs file built here: the
artifact it writes is one the gateway's settings accept as ``kind: cascade``; bad stage lists
are refused with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from switchyard.cli import app
from switchyard.gateway.settings import build_settings
from switchyard.routers.cascade import CascadeModel
from tests.support.embedders import link_embedders

runner = CliRunner()
CITIES = ["Paris", "Berlin", "Madrid", "Rome", "Vienna", "Lisbon", "Prague", "Oslo"]


@pytest.fixture(scope="module")
def cache(embedder_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return link_embedders(tmp_path_factory.mktemp("cascade-cache"), embedder_cache)


def outputs_file(path: Path) -> Path:
    """40 questions: "cheap" is right on even ones, "strong" on all; strong costs 10x."""
    lines = []
    for i in range(40):
        city = CITIES[i % len(CITIES)]
        wrong = "I do not know." if i % 2 else city
        lines.append(json.dumps({
            "prompt": f"Question {i}: which city is {city}?", "task": "cities",
            "outputs": {"cheap": wrong, "strong": city},
            "scores": {"cheap": float(i % 2 == 0), "strong": 1.0},
            "costs": {"cheap": 0.001, "strong": 0.01},
        }))  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def train(cache: Path, data: Path, out: Path, *stages: str) -> tuple[int, str]:
    args = ["train", "--router", "default", "--data", str(data), "--out", str(out),
            "--cache-dir", str(cache), "--cost-weight", "20"]  # fmt: skip
    for stage in stages:
        args += ["--cascade", stage]
    done = runner.invoke(app, args)
    return done.exit_code, done.output


def test_train_cascade_writes_an_artifact_the_gateway_accepts(cache: Path, tmp_path: Path) -> None:
    code, output = train(
        cache, outputs_file(tmp_path / "o.jsonl"), tmp_path / "c", "cheap", "strong"
    )
    assert code == 0, output
    assert "skip below" in output
    cascade = CascadeModel.load(tmp_path / "c")
    assert cascade.stages == ["cheap", "strong"]
    assert "--cascade cheap --cascade strong" in cascade.metadata["command"]
    url = [{"url": "http://127.0.0.1:9/v1"}]
    models = [{"name": m, "price_input_per_mtok": 1, "price_output_per_mtok": 1,
               "endpoints": url} for m in ("cheap", "strong")]  # fmt: skip
    settings = build_settings({"models": models, "routers": [
        {"name": "c", "artifact": str(tmp_path / "c"), "kind": "cascade"}]})  # fmt: skip
    assert settings.routers[0].kind == "cascade"


def test_train_cascade_refuses_one_stage_and_unknown_models(cache: Path, tmp_path: Path) -> None:
    data = outputs_file(tmp_path / "o.jsonl")
    code, output = train(cache, data, tmp_path / "c", "cheap")
    assert code == 2 and "two or more distinct models" in output
    code, output = train(cache, data, tmp_path / "c", "cheap", "gpt-9")
    assert code == 2 and "no outputs of gpt-9" in output
    assert not (tmp_path / "c").exists()
