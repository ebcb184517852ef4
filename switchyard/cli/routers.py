"""``switchyard train | route | eval``: offline router work from the command line.

Paths come from options (``--data-dir``, ``--cache-dir``) or their environment variables
(``SWITCHYARD_DATA_DIR``, ``SWITCHYARD_CACHE_DIR``); the ``routers`` package reads none.

Heavy imports (numpy, onnxruntime, torch) happen inside the commands, so ``switchyard --help``
stays fast."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from switchyard.cli.common import (
    CacheOpt,
    DataDirOpt,
    DataOpt,
    EmbedderOpt,
    fail,
    load_data,
    load_embedder,
    load_pipeline,
)

if TYPE_CHECKING:
    from switchyard.routers.datasets.core import RoutingDataset
    from switchyard.routers.embedding import Embedder
    from switchyard.routers.pipeline import RoutingPipeline

PROTOCOLS = ("routerdc", "routellm", "routerbench")


def _parse_params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise fail(f"--param wants KEY=VALUE, got {item!r}")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


PricesOpt = Annotated[
    Path | None,
    typer.Option(help="YAML/JSON {model: {input_per_mtok, output_per_mtok}} (USD)."),
]
BudgetOpt = Annotated[
    float | None,
    typer.Option(help="Instead of --cost-weight: calibrate λ to this USD per 1k requests."),
]
StrongShareOpt = Annotated[
    float | None,
    typer.Option(
        help="Instead of --cost-weight: calibrate λ so the strongest model takes "
        "at most this share of calls (0-1)."
    ),
]
LabelFreeOpt = Annotated[
    bool,
    typer.Option(
        "--label-free",
        help="Train on quality estimated from the models' outputs (Smoothie, answers compared "
        "by int8 MiniLM), not on labels: --data gives RouterBench CSVs or outputs JSONL (see "
        "the README).",
    ),
]
NeighborsOpt = Annotated[
    int,
    typer.Option(min=0, help="--label-free: prompts per Smoothie neighbourhood (0: one per task)."),
]
CascadeOpt = Annotated[
    list[str],
    typer.Option(
        "--cascade",
        help="Train a cascade router over these models, cheapest first (repeat the option); "
        "--data gives model outputs with labels (RouterBench CSVs).",
    ),
]


RouterNameOpt = Annotated[
    str, typer.Option("--router", help="Router name: default, knn, mlp, mf, routerdc, ...")
]
TrainOutOpt = Annotated[Path, typer.Option("--out", help="Directory to write the trained router.")]
SplitOpt = Annotated[
    str, typer.Option(help="Train on rows of this split when the data has splits; 'all'.")
]
ParamOpt = Annotated[
    list[str], typer.Option("--param", help="Hyperparameter KEY=VALUE (JSON value).")
]
CostWeightOpt = Annotated[float, typer.Option(help="Default cost weight λ stored with the router.")]


def train(
    router: RouterNameOpt,
    data: DataOpt,
    out: TrainOutOpt,
    prices: PricesOpt = None,
    split: SplitOpt = "train",
    param: ParamOpt = [],  # noqa: B006 - typer needs a literal default
    cost_weight: CostWeightOpt = 0.0,
    budget_per_1k: BudgetOpt = None,
    strong_share: StrongShareOpt = None,
    label_free: LabelFreeOpt = False,
    neighbors: NeighborsOpt = 3,
    cascade: CascadeOpt = [],  # noqa: B006 - typer needs a literal default
    embedder_kind: EmbedderOpt = "static",
    cache_dir: CacheOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Train a router on routing data and save it to --out.

    λ (the cost weight) can be calibrated on the training prompts from a budget or a
    strong-model share; it is stored as the router's default and can be overridden per call."""
    from switchyard.routers.models import make_router
    from switchyard.routers.pipeline import RoutingPipeline

    embedder = load_embedder(cache_dir, embedder_kind)
    if cascade:  # a cascade router (switchyard.routers.cascade)
        return _cascade(cascade, data, data_dir, out, router, split, prices, cost_weight,
                        (embedder, cache_dir))  # fmt: skip
    if label_free:  # answers are compared by MiniLM, whatever the router embeds with
        judge = load_embedder(cache_dir, "onnx-int8")
        dataset = _label_free_data(data, data_dir, split, neighbors, judge, cache_dir)
    else:
        dataset = load_data(data, prices, data_dir, split=split)
    try:
        quality = make_router(router, **_parse_params(param))
        price_map = _price_map(prices)
    except (TypeError, ValueError, OSError) as err:
        raise fail(str(err)) from None
    typer.echo(f"training {quality!r} on {len(dataset)} prompts × {len(dataset.models)} models")
    pipe = RoutingPipeline(
        quality,
        embedder,
        prices=price_map,
        cost_weight=cost_weight,
        cache=cache_dir,
    )
    pipe.fit(dataset, progress=True)
    _set_cost_weight(pipe, dataset, budget_per_1k, strong_share)
    command = _command_line(
        router=router, data=data, prices=prices, split=None if split == "train" else split,
        param=param, cost_weight=cost_weight or None, budget_per_1k=budget_per_1k,
        strong_share=strong_share, label_free=label_free,
        neighbors=neighbors if label_free else None, out=out,
        embedder=None if embedder_kind == "static" else embedder_kind,
    )  # fmt: skip
    pipe.save(out, _train_metadata(command, data, router, split))
    typer.echo(f"saved to {out} ({pipe.metadata['train_seconds']} s)")


def _cascade(
    stages: list[str],
    data: list[str],
    data_dir: Path | None,
    out: Path,
    router: str,
    split: str,
    prices: Path | None,
    cost_weight: float,
    embedding: tuple[Embedder, Path | None],
) -> None:
    """``--cascade``: a cascade router over ``stages`` (cheapest first) on labelled model
    outputs: the stage router, the verifiers, the thresholds; saved to ``out``."""
    from switchyard.routers.cascade.training import train_cascade as fit
    from switchyard.routers.datasets.outputs import load_outputs

    if len(stages) < 2 or len(set(stages)) != len(stages):
        raise fail("--cascade needs two or more distinct models, cheapest first")
    line = _command_line(router=router, data=data, cascade=stages, out=out,
                         cost_weight=cost_weight or None)  # fmt: skip
    metadata = _train_metadata(line, data, router, split)
    try:
        outputs = load_outputs(data, data_dir)
        if split != "all" and outputs.data.splits and split in outputs.data.splits:
            outputs = outputs.where(split=split)
        missing = [s for s in stages if s not in outputs.data.models]
        if missing:
            raise ValueError(f"the data has no outputs of {', '.join(missing)}")
        typer.echo(f"training a cascade {' -> '.join(stages)} on {len(outputs)} prompts")
        trained = fit(
            outputs, stages, embedding[0], router=router, prices=_price_map(prices),
            cost_weight=cost_weight, max_escalations=len(stages) - 1, cache=embedding[1],
            progress=True,
        )  # fmt: skip
    except (OSError, ValueError, KeyError) as err:
        raise fail(str(err)) from None
    cascade = trained.cascade
    trained.pipeline.save(out, metadata)
    cascade.metadata.update(metadata)
    cascade.save(out)
    typer.echo(
        f"skip below {_thresholds(cascade.skip_below)}, accept at {_thresholds(cascade.accept_at)}"
    )
    typer.echo(f"saved to {out}")


def _thresholds(values: list[float]) -> str:
    return ", ".join(f"{v:.3g}" for v in values)


def _label_free_data(
    paths: list[str],
    root: Path | None,
    split: str,
    neighbors: int,
    embedder: Embedder,
    cache_dir: Path | None,
) -> RoutingDataset:
    """The prompts of the model outputs in ``paths`` with Smoothie's estimated quality in
    place of any labels (only the outputs' texts are read for quality). ``embedder`` compares
    the answers: int8 MiniLM, since a static table barely tells "the capital is Paris" from
    "the capital is Rome"."""
    from switchyard.routers.datasets.outputs import load_outputs
    from switchyard.routers.labelfree import estimate_quality

    try:
        outputs = load_outputs(paths, root)
        if split != "all" and outputs.data.splits and split in outputs.data.splits:
            outputs = outputs.where(split=split)
        typer.echo(f"estimating quality label-free from {len(outputs)} prompts' outputs")
        estimated, _ = estimate_quality(
            outputs, embedder, n_neighbors=neighbors or None, cache=cache_dir, progress=True
        )
    except (OSError, ValueError) as err:
        raise fail(str(err)) from None
    return estimated


def _price_map(path: Path | None) -> dict[str, tuple[float, float]]:
    from switchyard.routers.datasets import load_prices

    prices = load_prices(path) if path else {}
    return {m: (p.input_per_mtok, p.output_per_mtok) for m, p in prices.items()}


def _set_cost_weight(
    pipe: RoutingPipeline, data: RoutingDataset, budget: float | None, share: float | None
) -> None:
    """Calibrate λ to the budget or strong-share target on up to 2,000 training prompts."""
    import numpy as np

    from switchyard.routers.policy import calibrate_lambda

    if budget is None and share is None:
        return
    rows = np.random.default_rng(0).permutation(len(data))[:2000]
    pred = pipe.predict(data.subset(rows))
    try:
        pipe.cost_weight = calibrate_lambda(
            pred.quality, pred.cost, budget_per_1k=budget, strong_share=share
        )
    except ValueError as err:
        raise fail(str(err)) from None
    typer.echo(f"calibrated cost weight λ = {pipe.cost_weight:.4g}")


def _command_line(**options: object) -> str:
    """The ``switchyard train`` command that reproduces this run (unset options left out)."""
    parts = ["switchyard", "train"]
    for key, value in options.items():
        for item in value if isinstance(value, list) else [value]:
            if item is True:  # a flag
                parts.append("--" + key.replace("_", "-"))
            elif item is not None and item is not False:
                parts += ["--" + key.replace("_", "-"), str(item)]
    return shlex.join(parts)


def _train_metadata(command: str, data: list[str], name: str, split: str) -> dict[str, Any]:
    from datetime import UTC, datetime
    from importlib.metadata import version

    return {
        "command": command,
        "data": data,
        "name": name,
        "split": split,
        "switchyard_version": version("switchyard"),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _read_prompts(path: Path) -> Iterator[tuple[object, str]]:
    from switchyard.routers.embedding import prompt_text

    with path.open() as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                prompt = item["prompt"] if "prompt" in item else item["messages"]
                yield item.get("id", lineno), prompt_text(prompt)
            except (ValueError, KeyError, TypeError, AttributeError) as err:
                raise fail(f"{path}:{lineno}: expected {{'id', 'prompt'}}: {err}") from None


def route(
    router: Annotated[Path, typer.Option("--router", help="Trained router directory.")],
    input: Annotated[Path, typer.Option("--input", help="JSONL lines {id, prompt}.")],
    out: Annotated[Path, typer.Option("--out", help="JSONL decisions to write.")],
    cost_weight: Annotated[
        float | None,
        typer.Option(help="λ in quality − λ·USD (inf: the cheapest).", show_default="the router's"),
    ] = None,
    allow: Annotated[
        list[str], typer.Option("--allow", help="Only these models (repeatable).")
    ] = [],  # noqa: B006
    max_cost: Annotated[
        float | None, typer.Option(help="Exclude models expected to cost more (USD per call).")
    ] = None,
    max_price: Annotated[
        float | None,
        typer.Option(
            help="Exclude models whose list price exceeds this (USD per M output tokens)."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 256,
    cache_dir: CacheOpt = None,
) -> None:
    """Route each prompt of --input and write one decision per line."""
    from tqdm import tqdm

    from switchyard.routers.policy import Constraints, NoModelAllowedError

    pipe = load_pipeline(router, cache_dir)
    rows = list(_read_prompts(input))
    constraints = Constraints(frozenset(allow) if allow else None, max_cost, max_price)
    with out.open("w") as fh, tqdm(total=len(rows), unit="prompt", desc="route") as bar:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            try:
                decisions = pipe.decide(
                    [p for _, p in chunk], cost_weight=cost_weight, constraints=constraints
                )
            except (NoModelAllowedError, ValueError) as err:
                raise fail(str(err)) from None
            for (row_id, _), d in zip(chunk, decisions, strict=True):
                record = {"id": row_id, "model": d.model, "quality": d.quality, "cost": d.cost}
                fh.write(json.dumps(record) + "\n")
            bar.update(len(chunk))
    typer.echo(f"wrote {len(rows)} decisions to {out}")


def evaluate(
    router: Annotated[Path, typer.Option("--router", help="Trained router directory.")],
    protocol: Annotated[str, typer.Option(help="routerdc | routellm | routerbench.")],
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Report directory (JSON, Markdown, PNG).")],
    compare: Annotated[
        list[str],
        typer.Option("--compare", help="Also train and report these routers (repeatable)."),
    ] = [],  # noqa: B006
    folds: Annotated[int, typer.Option(min=2, help="Cross-validation folds (routellm).")] = 5,
    cache_dir: CacheOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Evaluate a router with a published protocol, beside baselines and --compare routers."""
    from switchyard.routers.eval_runner import run_protocol
    from switchyard.routers.evaluation import write_report

    if protocol not in PROTOCOLS:
        raise fail(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    pipe = load_pipeline(router, cache_dir)
    dataset = load_data(data, None, data_dir)
    try:
        report = run_protocol(protocol, pipe, dataset, compare=compare, folds=folds)
    except (ValueError, KeyError) as err:
        raise fail(str(err)) from None
    report.metadata["data"] = data
    report.metadata["router"] = str(router)
    for path in write_report(report, out):
        typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add the offline router commands to the main ``switchyard`` app."""
    app.command()(train)
    app.command()(route)
    app.command("eval")(evaluate)
