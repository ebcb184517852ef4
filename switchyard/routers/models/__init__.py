"""The router zoo. ``make_router(name)`` builds one by name; ``default`` is the recommended one."""

from __future__ import annotations

from typing import Any

from switchyard.routers.models.base import (
    REGISTRY,
    NotFittedError,
    QualityRouter,
    RouterFormatError,
    check_features,
    check_targets,
)
from switchyard.routers.models.cost import CostPredictor
from switchyard.routers.models.dc import DualContrastiveRouter
from switchyard.routers.models.ensemble import EnsembleRouter
from switchyard.routers.models.knn import KNNRouter, TaskPriorKNNRouter
from switchyard.routers.models.mf import MFRouter
from switchyard.routers.models.mlp import MLPRouter
from switchyard.routers.models.simple import BestSingleRouter, RandomRouter
from switchyard.routers.models.stacked import KNNResidualRouter

# The project's recommended router and its hyperparameters (see docs/BENCHMARKS.md).
DEFAULT_ROUTER: tuple[str, dict[str, Any]] = ("knn-prior", {})


def router_names() -> list[str]:
    return ["default", *sorted(REGISTRY)]


def make_router(name: str, **params: Any) -> QualityRouter:
    """A fresh router by registry name (``default`` = the recommended one)."""
    if name == "default":
        kind, defaults = DEFAULT_ROUTER
        return REGISTRY[kind](**{**defaults, **params})
    if name not in REGISTRY:
        raise ValueError(f"unknown router {name!r}; choose one of: {', '.join(router_names())}")
    return REGISTRY[name](**params)


__all__ = [
    "DEFAULT_ROUTER",
    "BestSingleRouter",
    "CostPredictor",
    "DualContrastiveRouter",
    "EnsembleRouter",
    "KNNResidualRouter",
    "KNNRouter",
    "MFRouter",
    "MLPRouter",
    "NotFittedError",
    "QualityRouter",
    "RandomRouter",
    "RouterFormatError",
    "TaskPriorKNNRouter",
    "check_features",
    "check_targets",
    "make_router",
    "router_names",
]
