"""Baselines: random choice and the best single model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from switchyard.routers.models.base import FloatArray, QualityRouter, nan_column_means


class RandomRouter(QualityRouter):
    """Uniform random quality per (prompt, model): argmax picks a model uniformly at random.

    Deterministic for a given ``seed`` and input order."""

    kind = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _fit(self, X: FloatArray, Y: FloatArray, tasks: Sequence[str] | None) -> None:
        del X, tasks
        self.models_seen_ = int(Y.shape[1])

    def _predict(self, X: FloatArray) -> FloatArray:
        rng = np.random.default_rng(self.seed)
        return rng.random((X.shape[0], self.models_seen_))


class BestSingleRouter(QualityRouter):
    """Every prompt gets each model's average training quality: argmax is the best single model."""

    kind = "best-single"

    def __init__(self) -> None:
        pass

    def _fit(self, X: FloatArray, Y: FloatArray, tasks: Sequence[str] | None) -> None:
        del X, tasks
        self.mean_quality_ = nan_column_means(Y)

    def _predict(self, X: FloatArray) -> FloatArray:
        return np.tile(self.mean_quality_, (X.shape[0], 1))
