"""Weighted average of several routers' quality predictions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from switchyard.routers.models.base import REGISTRY, FloatArray, QualityRouter


class EnsembleRouter(QualityRouter):
    """Averages the members' predicted quality (weights normalised to sum to 1).

    ``members`` is a list of ``[kind, params]`` pairs, so the ensemble stays JSON-describable;
    each member is saved in its own sub-directory."""

    kind = "ensemble"

    def __init__(
        self,
        members: Sequence[Sequence[Any]] = (("knn-prior", {"alpha": 20.0}), ("mlp", {})),
        weights: Sequence[float] | None = None,
    ) -> None:
        self.members: list[list[Any]] = [[str(k), dict(p)] for k, p in members]
        self.weights = None if weights is None else [float(w) for w in weights]

    def _build(self) -> list[QualityRouter]:
        unknown = [kind for kind, _ in self.members if kind not in REGISTRY]
        if unknown or not self.members:
            raise ValueError(f"ensemble members must be known router kinds, got {unknown}")
        return [REGISTRY[str(kind)](**dict(params)) for kind, params in self.members]

    def _weights(self) -> FloatArray:
        w = np.ones(len(self.members)) if self.weights is None else np.asarray(self.weights)
        if (
            w.shape != (len(self.members),)
            or not np.isfinite(w).all()
            or (w < 0).any()
            or w.sum() <= 0
        ):
            raise ValueError("weights must be non-negative, one per member, not all zero")
        return np.asarray(w / w.sum(), dtype=np.float64)

    def _fit(self, X: FloatArray, Y: FloatArray, tasks: Sequence[str] | None) -> None:
        members = self._build()
        self._weights()
        self._fitted_members = [m.fit(X, Y, tasks=tasks) for m in members]

    def _predict(self, X: FloatArray) -> FloatArray:
        w = self._weights()
        preds = [m.predict_quality(X) for m in self._fitted_members]
        return np.asarray(sum(wi * p for wi, p in zip(w, preds, strict=True)), dtype=np.float64)

    def _save_parts(self, path: Path) -> None:
        for i, member in enumerate(self._fitted_members):
            member.save(path / f"member-{i}")

    def _load_parts(self, path: Path) -> None:
        self._fitted_members = [
            QualityRouter.load(path / f"member-{i}") for i in range(len(self.members))
        ]
