"""The three published evaluation protocols (one module each, gathered here)."""

from __future__ import annotations

from routers.evaluation.routellm import (
    ROUTELLM_STRONG,
    ROUTELLM_WEAK,
    evaluate_routellm,
    routellm_folds,
)
from routers.evaluation.routerbench import evaluate_routerbench
from routers.evaluation.routerdc import ROUTERDC_ID_TASKS, ROUTERDC_OOD_TASKS, evaluate_routerdc

__all__ = [
    "ROUTELLM_STRONG",
    "ROUTELLM_WEAK",
    "ROUTERDC_ID_TASKS",
    "ROUTERDC_OOD_TASKS",
    "evaluate_routellm",
    "evaluate_routerbench",
    "evaluate_routerdc",
    "routellm_folds",
]
