"""What the evaluation protocols evaluate: a router's interface (its predictions are a
:class:`~switchyard.routers.prediction.Prediction`, decided on by ``switchyard.routers.policy``)."""

from __future__ import annotations

from typing import Protocol, Self

import numpy as np
import numpy.typing as npt

from switchyard.routers.datasets.core import FloatArray, RoutingDataset
from switchyard.routers.prediction import Prediction

IntArray = npt.NDArray[np.int64]

__all__ = ["FloatArray", "IntArray", "Prediction", "Router"]


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
