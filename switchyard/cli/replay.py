"""``switchyard replay``: simulate online routing over a routing dataset and compare the
offline router, the contextual bandit on top of it, an oracle and random choice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from switchyard.cli.common import CacheOpt, DataDirOpt, fail, load_data, load_pipeline


def _bandit_params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or key not in ("dim", "prior_strength", "noise", "discount"):
            raise fail(f"--bandit-param wants dim|prior_strength|noise|discount=VALUE: {item!r}")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            raise fail(f"--bandit-param {item!r}: value is not a number") from None
    return params


def replay(
    data: Annotated[
        list[str], typer.Option("--data", help="Routing data with quality and cost (repeatable).")
    ],
    router: Annotated[Path, typer.Option("--router", help="Trained router directory.")],
    out: Annotated[Path, typer.Option("--out", help="Report directory (JSON, Markdown, PNG).")],
    drift: Annotated[
        str | None,
        typer.Option(help="MODEL:DELTA@AT, e.g. favourite:-0.3@0.5 (quality shift from AT)."),
    ] = None,
    seeds: Annotated[int, typer.Option(min=1, help="Number of shuffled streams.")] = 5,
    split: Annotated[str, typer.Option(help="Rows of this split (train, test, all).")] = "test",
    cost_weight: Annotated[
        float | None, typer.Option(help="λ in quality − λ·USD.", show_default="the router's")
    ] = None,
    bandit_param: Annotated[
        list[str], typer.Option("--bandit-param", help="Bandit hyperparameter KEY=VALUE.")
    ] = [],  # noqa: B006 - typer needs a literal default
    cache_dir: CacheOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Replay the data as a stream where only the chosen model's outcome is revealed, and
    report cumulative regret against the per-request oracle."""
    from tqdm import tqdm

    from switchyard.routers.online import DriftSpec, write_replay_report
    from switchyard.routers.online import replay as run_replay

    try:
        spec = DriftSpec.parse(drift) if drift else None
    except ValueError as err:
        raise fail(str(err)) from None
    params = _bandit_params(bandit_param)
    dataset = load_data(data, None, data_dir, split=split)
    if split != "all" and (not dataset.splits or split not in dataset.splits):
        raise fail(f"the data has no {split!r} split; use --split all")
    pipe = load_pipeline(router, cache_dir)
    try:
        dataset = dataset.select_models(pipe.models)
    except KeyError as err:
        raise fail(f"the router's models are not all in the data: {err}") from None
    typer.echo(f"replaying {len(dataset)} requests × {seeds} seeds, {len(pipe.models)} models")
    with tqdm(total=len(dataset) * seeds, unit="req", desc="replay") as bar:
        try:
            result = run_replay(
                dataset,
                pipe,
                seeds=list(range(seeds)),
                drift=spec,
                lam=cost_weight,
                bandit_params=params,
                progress=bar.update,
            )
        except ValueError as err:
            raise fail(str(err)) from None
    meta = {"data": data, "router": str(router), "split": split, "drift": drift}
    for path in write_replay_report(result, out, meta):
        typer.echo(f"wrote {path}")
    for s, v in result.summary()["final_cumulative_regret"].items():
        typer.echo(f"{s:8s} cumulative regret {v['mean']:.2f} ± {v['std']:.2f}")


def register(app: typer.Typer) -> None:
    """Add ``switchyard replay`` to the main app."""
    app.command()(replay)
