"""The one in-memory shape of routing data: prompts x models quality, optional cost."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class RoutingDataset:
    """Rows are prompts, columns are models.

    ``quality[i, j]`` is model j's score on prompt i (NaN where it was not scored);
    ``cost[i, j]`` is the USD cost of that call where the data records it (NaN where not).
    ``tasks`` labels each row with its task (``mmlu``, ``gsm8k``...); ``groups`` with a finer
    group used for grouped cross-validation (the MMLU subject); ``splits`` with the split the
    row came from (``train``, ``test`` or ``""``); ``prompt_tokens``/``output_tokens`` are
    optional per-row and per-(row, model) token counts used by the cost predictor."""

    prompts: list[str]
    models: list[str]
    quality: FloatArray
    tasks: list[str]
    cost: FloatArray | None = None
    groups: list[str] | None = None
    splits: list[str] | None = None
    output_tokens: FloatArray | None = None
    name: str = ""
    meta: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, m = len(self.prompts), len(self.models)
        if self.quality.shape != (n, m):
            raise ValueError(f"quality has shape {self.quality.shape}, expected {(n, m)}")
        for label, arr in (("cost", self.cost), ("output_tokens", self.output_tokens)):
            if arr is not None and arr.shape != (n, m):
                raise ValueError(f"{label} has shape {arr.shape}, expected {(n, m)}")
        for label, seq in (("tasks", self.tasks), ("groups", self.groups), ("splits", self.splits)):
            if seq is not None and len(seq) != n:
                raise ValueError(f"{label} has {len(seq)} entries for {n} prompts")
        if len(set(self.models)) != m:
            raise ValueError("model names must be unique")

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(
        self, rows: Sequence[int] | npt.NDArray[np.int64] | npt.NDArray[np.bool_]
    ) -> RoutingDataset:
        """The rows picked by integer indices or a boolean mask, in that order."""
        sel = np.asarray(rows)
        if sel.size == 0 and sel.dtype != np.bool_:
            sel = sel.astype(np.int64)  # ``[]`` comes out as float64, which cannot index
        idx = np.arange(len(self))[sel] if len(self) else np.zeros(0, np.int64)

        def pick(seq: list[str] | None) -> list[str] | None:
            return None if seq is None else [seq[i] for i in idx]

        return RoutingDataset(
            prompts=[self.prompts[i] for i in idx],
            models=list(self.models),
            quality=self.quality[idx],
            tasks=[self.tasks[i] for i in idx],
            cost=None if self.cost is None else self.cost[idx],
            groups=pick(self.groups),
            splits=pick(self.splits),
            output_tokens=None if self.output_tokens is None else self.output_tokens[idx],
            name=self.name,
            meta=dict(self.meta),
        )

    def where(
        self, *, tasks: Sequence[str] | None = None, split: str | None = None
    ) -> RoutingDataset:
        """Rows whose task is in ``tasks`` and whose split is ``split`` (either may be None)."""
        keep = np.ones(len(self), dtype=bool)
        if tasks is not None:
            wanted = set(tasks)
            keep &= np.array([t in wanted for t in self.tasks], dtype=bool)
        if split is not None:
            splits = self.splits or [""] * len(self)
            keep &= np.array([s == split for s in splits], dtype=bool)
        return self.subset(keep)

    def select_models(self, models: Sequence[str]) -> RoutingDataset:
        """Only these model columns, in this order; unknown names raise KeyError."""
        missing = [m for m in models if m not in self.models]
        if missing:
            raise KeyError(f"models not in dataset {self.name!r}: {', '.join(missing)}")
        cols = [self.models.index(m) for m in models]
        return RoutingDataset(
            prompts=list(self.prompts),
            models=list(models),
            quality=self.quality[:, cols],
            tasks=list(self.tasks),
            cost=None if self.cost is None else self.cost[:, cols],
            groups=self.groups,
            splits=self.splits,
            output_tokens=None if self.output_tokens is None else self.output_tokens[:, cols],
            name=self.name,
            meta=dict(self.meta),
        )


def _merge_meta(parts: Sequence[RoutingDataset]) -> dict[str, object]:
    """Dict values merged key by key, list values concatenated, anything else: last wins."""
    merged: dict[str, object] = {}
    for ds in parts:
        for key, value in ds.meta.items():
            before = merged.get(key)
            if isinstance(before, dict) and isinstance(value, dict):
                merged[key] = {**before, **value}
            elif isinstance(before, list) and isinstance(value, list):
                merged[key] = before + value
            elif isinstance(value, dict | list):
                merged[key] = type(value)(value)  # a copy, so later merges never alias it
            else:
                merged[key] = value
    return merged


def _stack(
    parts: Sequence[RoutingDataset], arrays: Sequence[FloatArray | None], models: list[str]
) -> FloatArray:
    """One (rows x models) matrix from the parts' arrays, NaN where a part lacks a model
    or the whole array."""
    col = {m: j for j, m in enumerate(models)}
    out = np.full((sum(len(ds) for ds in parts), len(models)), np.nan, dtype=np.float64)
    start = 0
    for ds, arr in zip(parts, arrays, strict=True):
        if arr is not None:
            out[start : start + len(ds), [col[m] for m in ds.models]] = arr
        start += len(ds)
    return out


def _stack_optional(
    parts: Sequence[RoutingDataset], arrays: Sequence[FloatArray | None], models: list[str]
) -> FloatArray | None:
    """As ``_stack``, but None when no part has the array."""
    return None if all(a is None for a in arrays) else _stack(parts, arrays, models)


def concat(datasets: Sequence[RoutingDataset], *, name: str | None = None) -> RoutingDataset:
    """The rows of all ``datasets`` in order, over the union of their models (first-seen
    order). Quality/cost/output_tokens are NaN where a part lacks a model (cost and
    output_tokens stay None only when no part has them); groups default to the task and
    splits to ``""`` for parts without them; meta is merged (see ``_merge_meta``); the
    name is ``name`` or the distinct part names joined by ``+``."""
    parts = list(datasets)
    if not parts:
        raise ValueError("concat needs at least one dataset")
    models: dict[str, None] = {}
    for ds in parts:
        models.update(dict.fromkeys(ds.models))
    model_list = list(models)
    has_groups = any(ds.groups is not None for ds in parts)
    has_splits = any(ds.splits is not None for ds in parts)
    names = [n for n in dict.fromkeys(ds.name for ds in parts) if n]
    return RoutingDataset(
        prompts=[p for ds in parts for p in ds.prompts],
        models=model_list,
        quality=_stack(parts, [ds.quality for ds in parts], model_list),
        tasks=[t for ds in parts for t in ds.tasks],
        cost=_stack_optional(parts, [ds.cost for ds in parts], model_list),
        groups=[g for ds in parts for g in (ds.groups or ds.tasks)] if has_groups else None,
        splits=([s for ds in parts for s in (ds.splits or [""] * len(ds))] if has_splits else None),
        output_tokens=_stack_optional(parts, [ds.output_tokens for ds in parts], model_list),
        name=name if name is not None else "+".join(names),
        meta=_merge_meta(parts),
    )
