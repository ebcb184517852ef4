"""What the evaluation protocols evaluate: a router's interface and its predictions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Self

import numpy as np
import numpy.typing as npt

from switchyard.routers.datasets.core import FloatArray, RoutingDataset

IntArray = npt.NDArray[np.int64]

__all__ = ["FloatArray", "IntArray", "Prediction", "Router", "choose"]


@dataclass(frozen=True)
class Prediction:
    """A router's per-(prompt, model) estimates; columns follow ``Router.models``.

    ``quality[i, j]`` is the predicted quality of model j on prompt i; ``cost[i, j]`` the
    predicted USD cost of that call (zeros where the data has no prices)."""

    quality: FloatArray
    cost: FloatArray

    def __post_init__(self) -> None:
        if self.quality.ndim != 2:
            raise ValueError(f"quality must be 2-D (prompts, models), got {self.quality.shape}")
        if self.cost.shape != self.quality.shape:
            raise ValueError(f"cost has shape {self.cost.shape}, quality has {self.quality.shape}")

    def __len__(self) -> int:
        return int(self.quality.shape[0])


class Router(Protocol):
    """A learned router as the protocols see it."""

    @property
    def models(self) -> list[str]:
        """The model names, in the order of the prediction columns."""
        ...

    def fit(self, data: RoutingDataset) -> Self:
        """Learn from ``data`` (its columns are ``data.models``); returns the router."""
        ...

    def predict(self, data: RoutingDataset) -> Prediction:
        """Predicted quality and cost for each of ``data.prompts`` and each model."""
        ...

    def clone(self) -> Router:
        """An unfitted copy with the same hyperparameters."""
        ...


def choose(pred: Prediction, lam: float) -> IntArray:
    """Per row, ``argmax_j quality[i, j] - lam * cost[i, j]``; ties go to the cheaper model.

    ``lam = inf`` picks the cheapest model (ties to the higher predicted quality). NaN
    utilities never win unless the whole row is NaN (then the cheapest model is chosen)."""
    quality = np.asarray(pred.quality, dtype=np.float64)
    cost = np.asarray(pred.cost, dtype=np.float64)
    if quality.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    if np.isinf(lam):
        utility = -cost
        tiebreak = -np.nan_to_num(quality, nan=-np.inf)
    else:
        utility = quality - lam * cost if lam != 0 else quality.copy()
        tiebreak = cost
    utility = np.where(np.isnan(utility), -np.inf, utility)
    best = utility.max(axis=1, keepdims=True)
    tied = utility >= best  # exact ties only, as the policy
    masked = np.where(tied, tiebreak, np.inf)
    return np.asarray(np.argmin(masked, axis=1), dtype=np.int64)
