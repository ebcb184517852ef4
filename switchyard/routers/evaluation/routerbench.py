"""RouterBench's protocol (Hu et al. 2024): cost-quality sweeps and AIQ."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from switchyard.routers.datasets.core import RoutingDataset
from switchyard.routers.evaluation._common import (
    data_metadata,
    fitted,
    predict_aligned,
    progress_bar,
)
from switchyard.routers.evaluation.metrics import (
    aiq,
    breakpoint_lambdas,
    nondecreasing_convex_hull,
    sweep_points,
)
from switchyard.routers.evaluation.report import Curve, Kind, Report, ReportRow
from switchyard.routers.evaluation.types import FloatArray, Prediction, Router

__all__ = ["evaluate_routerbench"]

log = logging.getLogger(__name__)

COLUMNS = ["AIQ", "AIQ/oracle", "max quality", "cost at max quality"]


def _row(
    name: str,
    kind: Kind,
    costs: FloatArray,
    qualities: FloatArray,
    c_range: tuple[float, float],
) -> ReportRow:
    """A row from the operating points: hull, AIQ and the best-quality point of the hull."""
    hc, hq = nondecreasing_convex_hull(costs, qualities)
    row = ReportRow(name=name, kind=kind, metrics={"AIQ": aiq(hc, hq, *c_range)})
    if hc.size:
        row.metrics["max quality"] = float(hq[-1])
        row.metrics["cost at max quality"] = float(hc[-1])
    row.curves["points"] = Curve(x=costs.tolist(), y=qualities.tolist())
    row.curves["hull"] = Curve(x=hc.tolist(), y=hq.tolist())
    return row


def _swept(
    name: str, kind: Kind, pred: Prediction, sub: RoutingDataset, c_range: tuple[float, float]
) -> ReportRow:
    assert sub.cost is not None
    lambdas = breakpoint_lambdas(pred)
    costs, qualities = sweep_points(pred, sub.quality, sub.cost, lambdas)
    row = _row(name, kind, costs, qualities, c_range)
    row.info["lambdas"] = f"{len(lambdas)} (0, {lambdas[1]:.3g} .. {lambdas[-2]:.3g}, inf)"
    return row


def _split(data: RoutingDataset, split: str) -> RoutingDataset:
    return data.where(split=split)


def evaluate_routerbench(
    routers: Mapping[str, Router],
    data: RoutingDataset,
    *,
    refit: bool,
    progress: bool = True,
) -> Report:
    """Sweep each router's cost weight on the test split and score the hull's AIQ.

    Train/test rows come from ``data.splits``; with ``refit`` each router is cloned and
    fitted on the train rows. For every lambda in :func:`breakpoint_lambdas` (derived from the
    router's predicted qualities and costs) the rule ``argmax q - lambda c`` picks a model
    per test prompt, giving the point (total actual cost, mean actual quality). AIQ is
    normalised over the same range for every row: from the cheapest to the most expensive
    single model's total test cost (see :func:`aiq`); AIQ/oracle divides by the oracle's.
    Baselines: each single model (a point), the best-single-model hull (mixtures of single
    models), random (expected point of a uniformly random model) and the oracle (true
    qualities and costs swept; at lambda = 0 the cheapest best model per prompt)."""
    test = _split(data, "test")
    if len(test) == 0:
        raise ValueError(f"no test rows in {data.name!r} (splits from data.splits)")
    if test.cost is None or not np.isfinite(test.cost).all():
        raise ValueError("RouterBench evaluation needs a finite actual cost for every test cell")
    train = _split(data, "train")
    single_cost = test.cost.sum(axis=0)
    single_quality = np.nanmean(test.quality, axis=0)
    c_range = (float(single_cost.min()), float(single_cost.max()))
    if not c_range[1] > c_range[0]:
        raise ValueError(f"single models' total costs span no range: {c_range}")
    rows: list[ReportRow] = []
    for name, router in progress_bar(routers.items(), desc="routerbench", enabled=progress):
        model = fitted(router, train, refit=refit, name=name)
        pred, sub = predict_aligned(name, model, test)
        rows.append(_swept(name, "router", pred, sub, c_range))
        log.info("routerbench %s: AIQ %.4f", name, rows[-1].metrics["AIQ"])
    oracle = _swept("oracle", "baseline", Prediction(test.quality, test.cost), test, c_range)
    rows.append(oracle)
    rows.append(_row("best single-model hull", "baseline", single_cost, single_quality, c_range))
    one = np.ones(1)
    rand_point = (one * single_cost.mean(), one * single_quality.mean())
    rows.append(_row("random", "baseline", *rand_point, c_range))
    for j, m in enumerate(test.models):
        point = (one * single_cost[j], one * single_quality[j])
        rows.append(_row(f"single: {m}", "baseline", *point, c_range))
        rows[-1].info["model"] = m
    for row in rows:
        row.metrics["AIQ/oracle"] = row.metrics["AIQ"] / oracle.metrics["AIQ"]
    return _report(data, test, train, rows, c_range, refit=refit)


def _report(
    data: RoutingDataset,
    test: RoutingDataset,
    train: RoutingDataset,
    rows: list[ReportRow],
    c_range: tuple[float, float],
    *,
    refit: bool,
) -> Report:
    return Report(
        protocol="routerbench",
        columns=list(COLUMNS),
        rows=rows,
        formats={
            "AIQ": "{:.4f}",
            "AIQ/oracle": "{:.1%}",
            "max quality": "{:.1%}",
            "cost at max quality": "${:.3f}",
        },
        notes=[
            "Points: (total actual USD on the test split, mean actual quality) of the models"
            " chosen by argmax q - lambda c over a lambda sweep; hull = non-decreasing convex"
            " hull (dominated points dropped, upper hull kept).",
            f"AIQ = area under the hull over [c_min, c_max] = [${c_range[0]:.4f},"
            f" ${c_range[1]:.4f}] (cheapest and most expensive single model) / (c_max - c_min);"
            " the hull counts 0 below its cheapest point and stays flat after its last one.",
            "max quality / cost at max quality: the hull's last point.",
            f"{int(np.isnan(test.quality).sum())} test cells are unscored (NaN): a row whose"
            " chosen model is unscored is left out of that point's quality mean (costs still"
            " count), as in the reference single-model numbers.",
        ],
        metadata={
            "title": "RouterBench protocol: AIQ of the cost-quality hull",
            **data_metadata(data),
            "test rows": len(test),
            "train rows": len(train),
            "refit": refit,
            "c_min": c_range[0],
            "c_max": c_range[1],
        },
    )
