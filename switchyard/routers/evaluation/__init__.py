"""Evaluating routers with the published protocols (RouterDC, RouteLLM, RouterBench).

A router is anything satisfying :class:`Router` (``models``, ``fit``, ``predict``,
``clone``); the protocols return a :class:`Report` that :func:`write_report` turns into
``report.json``, ``report.md`` and ``pareto.png``."""

from __future__ import annotations

from switchyard.routers.evaluation.metrics import (
    ThresholdCurve,
    aiq,
    apgr,
    apgr_routellm,
    breakpoint_lambdas,
    cpt,
    cpt_routellm,
    nondecreasing_convex_hull,
    per_task_means,
    routellm_sweep,
    routerdc_averages,
    sweep_points,
    threshold_curve,
)
from switchyard.routers.evaluation.report import Curve, Report, ReportRow, write_report
from switchyard.routers.evaluation.routellm import (
    ROUTELLM_STRONG,
    ROUTELLM_WEAK,
    evaluate_routellm,
    routellm_folds,
)
from switchyard.routers.evaluation.routerbench import evaluate_routerbench
from switchyard.routers.evaluation.routerdc import (
    ROUTERDC_ID_TASKS,
    ROUTERDC_OOD_TASKS,
    evaluate_routerdc,
)
from switchyard.routers.evaluation.types import Prediction, Router

__all__ = [
    "ROUTELLM_STRONG",
    "ROUTELLM_WEAK",
    "ROUTERDC_ID_TASKS",
    "ROUTERDC_OOD_TASKS",
    "Curve",
    "Prediction",
    "Report",
    "ReportRow",
    "Router",
    "ThresholdCurve",
    "aiq",
    "apgr",
    "apgr_routellm",
    "breakpoint_lambdas",
    "cpt",
    "cpt_routellm",
    "evaluate_routellm",
    "evaluate_routerbench",
    "evaluate_routerdc",
    "nondecreasing_convex_hull",
    "per_task_means",
    "routellm_folds",
    "routellm_sweep",
    "routerdc_averages",
    "sweep_points",
    "threshold_curve",
    "write_report",
]
