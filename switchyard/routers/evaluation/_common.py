"""Helpers the three protocols share: aligning a router with the data, progress bars."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from switchyard.routers.datasets.core import RoutingDataset
from switchyard.routers.evaluation.types import FloatArray, Prediction, Router

T = TypeVar("T")


def progress_bar(
    items: Iterable[T], *, desc: str, enabled: bool, total: int | None = None
) -> Iterator[T]:
    """``items`` behind a tqdm bar (on stderr) when ``enabled``."""
    if not enabled:
        yield from items
        return
    from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

    yield from tqdm(items, desc=desc, total=total, leave=False)


def check_models(name: str, router: Router, data: RoutingDataset) -> list[str]:
    """The router's models; ValueError when it predicts models the data has no results for."""
    models = list(router.models)
    if not models:
        raise ValueError(f"router {name!r} has no models (was it fitted?)")
    missing = [m for m in models if m not in data.models]
    if missing:
        raise ValueError(
            f"router {name!r} predicts models the data has no results for: {missing}; "
            f"data {data.name!r} has {data.models}"
        )
    return models


def predict_aligned(
    name: str, router: Router, data: RoutingDataset
) -> tuple[Prediction, RoutingDataset]:
    """The router's prediction on ``data`` and ``data`` with the router's columns, in order."""
    models = check_models(name, router, data)
    sub = data.select_models(models)
    pred = router.predict(sub)
    expected = (len(sub), len(models))
    if pred.quality.shape != expected:
        raise ValueError(
            f"router {name!r} predicted shape {pred.quality.shape}, expected {expected} "
            "(prompts, router.models)"
        )
    return pred, sub


def fitted(router: Router, train: RoutingDataset, *, refit: bool, name: str) -> Router:
    """A fresh clone fitted on ``train`` when ``refit``, else the router as given."""
    if not refit:
        return router
    if len(train) == 0:
        raise ValueError(f"cannot refit router {name!r}: no training rows")
    return router.clone().fit(train)


def row_mask(
    data: RoutingDataset, tasks: Sequence[str], *, split: str | None, not_split: str | None = None
) -> npt.NDArray[np.bool_]:
    """Rows of ``tasks`` whose split is ``split`` (if given) and is not ``not_split``."""
    splits = data.splits or [""] * len(data)
    wanted = set(tasks)
    return np.array(
        [
            t in wanted and (split is None or s == split) and (not_split is None or s != not_split)
            for t, s in zip(data.tasks, splits, strict=True)
        ],
        dtype=bool,
    )


def row_mean(quality: FloatArray) -> FloatArray:
    """Per-row mean over models, ignoring NaN (NaN where a row has no scores)."""
    counts = np.isfinite(quality).sum(axis=1)
    sums = np.nansum(quality, axis=1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def row_max(quality: FloatArray) -> FloatArray:
    """Per-row best score over models, ignoring NaN."""
    filled = np.where(np.isfinite(quality), quality, -np.inf)
    best = filled.max(axis=1)
    return np.where(np.isfinite(best), best, np.nan)


def data_metadata(data: RoutingDataset) -> dict[str, object]:
    """The dataset's name and, when the loader recorded its files, their common folder."""
    out: dict[str, object] = {"data": data.name or "(unnamed)"}
    sources = data.meta.get("sources")
    if isinstance(sources, list | tuple) and sources:
        paths = [str(s) for s in sources]
        out["data path"] = paths[0] if len(paths) == 1 else os.path.commonpath(paths)
        out["source files"] = len(paths)
    return out
