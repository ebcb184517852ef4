"""RouteLLM's protocol (lm-sys/RouteLLM evals): strong-vs-weak routing, APGR and CPT."""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Mapping

import numpy as np

from switchyard.routers.datasets.core import RoutingDataset
from switchyard.routers.evaluation._common import data_metadata, predict_aligned, progress_bar
from switchyard.routers.evaluation.metrics import (
    apgr,
    apgr_routellm,
    cpt_routellm,
    routellm_sweep,
    threshold_curve,
)
from switchyard.routers.evaluation.report import Curve, Kind, Report, ReportRow
from switchyard.routers.evaluation.types import FloatArray, IntArray, Router

__all__ = ["ROUTELLM_STRONG", "ROUTELLM_WEAK", "evaluate_routellm", "routellm_folds"]

log = logging.getLogger(__name__)

ROUTELLM_WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
ROUTELLM_STRONG = "gpt-4-1106-preview"
CURVE_POINTS = 201


def routellm_folds(data: RoutingDataset, *, folds: int = 5, seed: int = 0) -> list[IntArray]:
    """Held-out row indices of each fold, deterministic for a ``seed``.

    With ``data.groups`` holding at least ``folds`` distinct groups (MMLU subjects) whole
    groups are assigned to folds: groups in a seeded random order, then by size (largest
    first), each to the fold with the fewest rows so far, so no group spans two folds and
    the folds are balanced by rows. Otherwise rows are dealt to folds in a seeded random
    order (KFold with shuffling)."""
    n = len(data)
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    rng = np.random.default_rng(seed)
    groups = data.groups
    if groups is not None and len(set(groups)) >= folds:
        sizes = Counter(groups)
        names = sorted(sizes)
        shuffled = [names[i] for i in rng.permutation(len(names))]
        load = np.zeros(folds, dtype=np.int64)
        assign: dict[str, int] = {}
        for g in sorted(shuffled, key=lambda g: -sizes[g]):
            f = int(np.argmin(load))
            assign[g] = f
            load[f] += sizes[g]
        fold_of = np.array([assign[g] for g in groups], dtype=np.int64)
    else:
        if n < folds:
            raise ValueError(f"{n} rows cannot be split into {folds} folds")
        fold_of = np.empty(n, dtype=np.int64)
        fold_of[rng.permutation(n)] = np.arange(n) % folds
    return [np.flatnonzero(fold_of == f).astype(np.int64) for f in range(folds)]


def _curve_row(name: str, kind: Kind) -> ReportRow:
    return ReportRow(name=name, kind=kind, metrics={})


def _record(
    row: ReportRow, task: str, scores: FloatArray, weak: FloatArray, strong: FloatArray
) -> None:
    """RouteLLM's APGR, CPT(50%), CPT(80%) (their 10-quantile sweep), the APGR of the full
    curve (every possible strong share), and a thinned copy of the full curve under ``task``."""
    points = routellm_sweep(scores, weak, strong)
    curve = threshold_curve(scores, weak, strong)
    row.metrics[f"{task} APGR"] = apgr_routellm(points)
    row.metrics[f"{task} CPT(50%)"] = cpt_routellm(points, 50)
    row.metrics[f"{task} CPT(80%)"] = cpt_routellm(points, 80)
    row.metrics[f"{task} APGR (full curve)"] = apgr(curve)
    if len(curve.share) > CURVE_POINTS:
        x = np.linspace(0.0, 1.0, CURVE_POINTS)
        y = np.interp(x, curve.share, curve.quality)
    else:
        x, y = curve.share, curve.quality
    row.curves[task] = Curve(x=x.tolist(), y=y.tolist())


def _oof_scores(
    name: str,
    router: Router,
    data: RoutingDataset,
    fold_rows: list[IntArray],
    *,
    pair: tuple[str, str],
    lam: float,
    bar: bool,
) -> FloatArray:
    """Out-of-fold router scores: predicted strong - weak quality (minus lam x cost gap)."""
    weak, strong = pair
    scores = np.full(len(data), np.nan)
    everything = np.arange(len(data))
    for test_rows in progress_bar(fold_rows, desc=f"routellm {name}", enabled=bar):
        train_rows = np.setdiff1d(everything, test_rows)
        model = router.clone().fit(data.subset(train_rows))
        pred, cols = predict_aligned(name, model, data.subset(test_rows))
        if weak not in cols.models or strong not in cols.models:
            raise ValueError(f"router {name!r} must predict both {weak!r} and {strong!r}")
        w, s = cols.models.index(weak), cols.models.index(strong)
        gap = pred.quality[:, s] - pred.quality[:, w]
        if lam:
            gap = gap - lam * (pred.cost[:, s] - pred.cost[:, w])
        scores[test_rows] = gap
    return scores


def evaluate_routellm(
    routers: Mapping[str, Router],
    data: RoutingDataset,
    *,
    folds: int = 5,
    seed: int = 0,
    weak: str = ROUTELLM_WEAK,
    strong: str = ROUTELLM_STRONG,
    lam: float = 0.0,
    progress: bool = True,
) -> Report:
    """Per task, cross-validated APGR, CPT(50%) and CPT(80%) of each router's score.

    ``data`` keeps only the ``weak`` and ``strong`` columns. For each task (e.g. ``mmlu``
    grouped by subject, ``gsm8k``) rows are split with :func:`routellm_folds`; each router
    is cloned, fitted on the other folds of that task and scores the held-out fold with
    predicted ``quality[strong] - quality[weak]`` (minus ``lam`` times the predicted cost
    gap). The pooled out-of-fold scores give the task's threshold curve. Baselines: random
    (a seeded uniform scorer; analytically APGR 0.5 and CPT(x%) = x%), weak only, strong
    only (their qualities) and the oracle (score = actual strong - weak result)."""
    try:
        pair_data = data.select_models([weak, strong])
    except KeyError as exc:
        raise ValueError(f"RouteLLM needs models {weak!r} and {strong!r}: {exc}") from None
    tasks = list(dict.fromkeys(pair_data.tasks))
    rows = {name: _curve_row(name, "router") for name in routers}
    base = {n: _curve_row(n, "baseline") for n in ("random", "weak only", "strong only", "oracle")}
    base["weak only"].info["model"], base["strong only"].info["model"] = weak, strong
    base["random"].info["analytic"] = "APGR 0.5, CPT(x%) = x%"
    report = _empty_report(data, tasks, folds=folds, seed=seed, lam=lam)
    labels = np.asarray(pair_data.tasks, dtype=object)
    for task in tasks:
        sub = pair_data.subset(np.flatnonzero(labels == task))
        fold_rows = routellm_folds(sub, folds=folds, seed=seed)
        grouped = sub.groups is not None and len(set(sub.groups)) >= folds
        report.metadata[f"{task} rows"] = len(sub)
        report.metadata[f"{task} folds"] = "by group (subject)" if grouped else "random rows"
        w, s = sub.quality[:, 0], sub.quality[:, 1]
        for name, router in routers.items():
            scores = _oof_scores(
                name, router, sub, fold_rows, pair=(weak, strong), lam=lam, bar=progress
            )
            _record(rows[name], task, scores, w, s)
            log.info("routellm %s %s: APGR %.4f", task, name, rows[name].metrics[f"{task} APGR"])
        random_scores = np.random.default_rng(seed).random(len(sub))
        _record(base["random"], task, random_scores, w, s)
        _record(base["oracle"], task, s - w, w, s)
        base["weak only"].metrics[f"{task} quality"] = float(w.mean())
        base["strong only"].metrics[f"{task} quality"] = float(s.mean())
        base["oracle"].metrics[f"{task} quality"] = float(np.maximum(w, s).mean())
    report.rows += [*rows.values(), *base.values()]
    return report


def _empty_report(
    data: RoutingDataset, tasks: list[str], *, folds: int, seed: int, lam: float
) -> Report:
    names = ("APGR", "CPT(50%)", "CPT(80%)", "APGR (full curve)", "quality")
    columns = [f"{t} {m}" for t, m in itertools.product(tasks, names)]
    formats = {c: "{:.3f}" if "APGR" in c else "{:.1%}" for c in columns}
    return Report(
        protocol="routellm",
        columns=columns,
        formats=formats,
        notes=[
            "APGR, CPT(50%), CPT(80%) as RouteLLM's evals compute them: 11 thresholds at the"
            " deciles of the router's scores (pd.qcut edges), APGR = (AUC - AUC_weak) /"
            " (AUC_strong - AUC_weak) by trapezoids over strong share, CPT(x%) = np.interp of"
            " weak + x% (strong - weak) on (quality, share).",
            "APGR (full curve): the same area over every possible strong share (k/n).",
            "Out-of-fold scores of all folds are pooled into one curve per task; equal scores"
            " are routed in expectation (straight line across a tie).",
            "random: analytic APGR 0.5 and CPT(x%) = x%; the row shows one seeded draw.",
            "quality column: mean result of weak only / strong only / per-query best (oracle).",
        ],
        metadata={
            "title": "RouteLLM protocol: strong-vs-weak routing (cross-validated)",
            **data_metadata(data),
            "rows": len(data),
            "folds": folds,
            "seed": seed,
            "lambda": lam,
        },
    )
