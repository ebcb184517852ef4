"""What a trained router says about a batch of prompts: predicted quality and cost per model.

Shared by the routing pipeline (and so the gateway), the evaluation protocols and the
policy's callers; it lives outside ``evaluation`` so that serving never imports that package."""

from __future__ import annotations

from dataclasses import dataclass

from switchyard.routers.datasets.core import FloatArray

__all__ = ["Prediction"]


@dataclass(frozen=True)
class Prediction:
    """A router's per-(prompt, model) estimates; columns follow the router's ``models``.

    ``quality[i, j]`` is the predicted quality of model j on prompt i (NaN: no estimate);
    ``cost[i, j]`` the predicted USD cost of that call (zeros where the data has no prices)."""

    quality: FloatArray
    cost: FloatArray

    def __post_init__(self) -> None:
        if self.quality.ndim != 2:
            raise ValueError(f"quality must be 2-D (prompts, models), got {self.quality.shape}")
        if self.cost.shape != self.quality.shape:
            raise ValueError(f"cost has shape {self.cost.shape}, quality has {self.quality.shape}")

    def __len__(self) -> int:
        return int(self.quality.shape[0])
