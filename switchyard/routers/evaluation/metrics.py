"""The published routing metrics: RouteLLM's APGR/CPT, RouterBench's AIQ, RouterDC's task means.

All functions are pure NumPy on arrays; the protocols (``protocols.py``) feed them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from switchyard.routers.evaluation.types import FloatArray, IntArray, Prediction
from switchyard.routers.policy import choose

__all__ = [
    "ThresholdCurve",
    "aiq",
    "apgr",
    "breakpoint_lambdas",
    "cpt",
    "nondecreasing_convex_hull",
    "per_task_means",
    "picked",
    "routerdc_averages",
    "sweep_points",
    "threshold_curve",
]

# ---------------------------------------------------------------- RouteLLM (APGR, CPT)


@dataclass(frozen=True)
class ThresholdCurve:
    """Quality against the share of calls sent to the strong model (RouteLLM's sweep).

    ``share[k] = k / n`` for k = 0..n: the k prompts with the highest router score go to the
    strong model, the others to the weak one; ``quality[k]`` is the mean result."""

    share: FloatArray
    quality: FloatArray
    weak: float
    strong: float

    @property
    def pgr(self) -> FloatArray:
        """Performance gap recovered, ``(q - q_weak) / (q_strong - q_weak)``; NaN if no gap."""
        gap = self.strong - self.weak
        if gap == 0 or not np.isfinite(gap):
            return np.full_like(self.quality, np.nan)
        return (self.quality - self.weak) / gap


def threshold_curve(
    scores: FloatArray, weak_quality: FloatArray, strong_quality: FloatArray
) -> ThresholdCurve:
    """The full strong-share sweep for per-prompt ``scores`` (higher = send to strong).

    Prompts are taken in descending score order. Prompts with equal scores form a block
    whose order is arbitrary, so the curve inside a block is the expectation over that
    order: a straight line between the block's end points (a constant scorer therefore
    traces exactly the random-routing diagonal). NaN scores rank last."""
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    weak = np.asarray(weak_quality, dtype=np.float64)
    strong = np.asarray(strong_quality, dtype=np.float64)
    n = s.shape[0]
    if n == 0 or weak.shape != (n,) or strong.shape != (n,):
        raise ValueError("scores, weak and strong qualities must be non-empty and equally long")
    if np.isnan(weak).any() or np.isnan(strong).any():
        raise ValueError("weak and strong qualities must be fully scored (no NaN)")
    order = np.argsort(-s, kind="stable")
    cum = np.concatenate([[0.0], np.cumsum((strong - weak)[order])])
    sorted_s = s[order]
    change = np.flatnonzero(sorted_s[1:] != sorted_s[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [n]])
    k = np.arange(n + 1)
    block = np.searchsorted(ends, k, side="left")
    start, end = starts[block], ends[block]
    frac = (k - start) / (end - start)
    gained = cum[start] + frac * (cum[end] - cum[start])
    return ThresholdCurve(
        share=k / n,
        quality=(weak.sum() + gained) / n,
        weak=float(weak.mean()),
        strong=float(strong.mean()),
    )


def apgr(curve: ThresholdCurve) -> float:
    """Average performance gap recovered: the trapezoid area under PGR over share in [0, 1].

    Equal to RouteLLM's ``(AUC_router - AUC_weak) / (AUC_strong - AUC_weak)`` with constant
    weak/strong lines over the full share range. Random routing gives 0.5."""
    return float(np.trapezoid(curve.pgr, curve.share))


def cpt(curve: ThresholdCurve, percent: float) -> float:
    """Call-performance threshold: the smallest strong share where PGR reaches ``percent``%.

    The curve is read as piecewise linear between its points (as RouteLLM's ``np.interp``),
    so the answer is the first crossing of that line; NaN when it is never reached."""
    pgr = curve.pgr
    target = percent / 100.0
    hits = np.flatnonzero(pgr >= target - 1e-12)
    if hits.size == 0:
        return float("nan")
    k = int(hits[0])
    if k == 0:
        return float(curve.share[0])
    p0, p1 = float(pgr[k - 1]), float(pgr[k])
    x0, x1 = float(curve.share[k - 1]), float(curve.share[k])
    return x0 + (target - p0) / (p1 - p0) * (x1 - x0)


def routellm_sweep(
    scores: FloatArray, weak_quality: FloatArray, strong_quality: FloatArray, num_results: int = 10
) -> ThresholdCurve:
    """RouteLLM's own evaluation points (``evals/benchmarks.py``): thresholds are the bin edges
    of ``pd.qcut(scores, num_results)`` (the 0, 1/n, ..., 1 quantiles); at each threshold a
    prompt goes to the strong model when its score is ``>=`` it (``>`` for the last edge), giving
    ``num_results + 1`` points, sorted by strong share as their ``evaluate.py`` does."""
    s = np.asarray(scores, dtype=np.float64)
    weak = np.asarray(weak_quality, dtype=np.float64)
    strong = np.asarray(strong_quality, dtype=np.float64)
    edges = np.quantile(s, np.linspace(0.0, 1.0, num_results + 1))
    shares, quality = [], []
    for i, threshold in enumerate(edges):
        chosen = s >= threshold if i < len(edges) - 1 else s > threshold
        shares.append(float(chosen.mean()))
        quality.append(float(np.where(chosen, strong, weak).mean()))
    order = np.argsort(shares, kind="stable")
    return ThresholdCurve(
        share=np.asarray(shares)[order],
        quality=np.asarray(quality)[order],
        weak=float(weak.mean()),
        strong=float(strong.mean()),
    )


def apgr_routellm(curve: ThresholdCurve) -> float:
    """RouteLLM's APGR: ``(AUC_router - AUC_weak) / (AUC_strong - AUC_weak)``, each AUC the
    trapezoid over the curve's strong shares (``np.trapz`` in their ``evaluate.py``)."""
    width = float(curve.share.max() - curve.share.min())
    auc = float(np.trapezoid(curve.quality, curve.share))
    return (auc - curve.weak * width) / ((curve.strong - curve.weak) * width)


def cpt_routellm(curve: ThresholdCurve, percent: float) -> float:
    """RouteLLM's CPT(x%): ``np.interp(weak + x% * (strong - weak), quality, share)`` over the
    points sorted by share, exactly as their ``evaluate.py`` computes it."""
    target = curve.weak + percent / 100.0 * (curve.strong - curve.weak)
    return float(np.interp(target, curve.quality, curve.share))


# ------------------------------------------------------------- RouterBench (AIQ, hull)


def nondecreasing_convex_hull(
    cost: Sequence[float] | FloatArray, quality: Sequence[float] | FloatArray
) -> tuple[FloatArray, FloatArray]:
    """RouterBench's non-decreasing convex hull of (cost, quality) points, by rising cost.

    A point is kept only if it beats every cheaper (or equally cheap) point on quality,
    then the upper convex hull of those is taken (collinear middle points dropped). The
    result rises in both cost and quality and is concave; its segments are exactly what
    randomly mixing two operating points achieves. NaN points are ignored."""
    c = np.asarray(cost, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    ok = np.isfinite(c) & np.isfinite(q)
    c, q = c[ok], q[ok]
    order = np.lexsort((-q, c))
    c, q = c[order], q[order]
    best = -np.inf
    pareto: list[tuple[float, float]] = []
    for ci, qi in zip(c.tolist(), q.tolist(), strict=True):
        if qi > best:
            pareto.append((ci, qi))
            best = qi
    hull: list[tuple[float, float]] = []
    for p in pareto:
        while len(hull) >= 2:
            (x0, y0), (x1, y1) = hull[-2], hull[-1]
            if (x1 - x0) * (p[1] - y0) - (y1 - y0) * (p[0] - x0) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    arr = np.asarray(hull, dtype=np.float64).reshape(-1, 2)
    return arr[:, 0].copy(), arr[:, 1].copy()


def aiq(hull_cost: FloatArray, hull_quality: FloatArray, c_min: float, c_max: float) -> float:
    """Average improvement in quality: area under the hull over [c_min, c_max] / the range.

    The hull curve R(c) is 0 below its first (cheapest) point -- no operating point of the
    router is that cheap --, linear between hull points, and flat at its last quality
    after its last point (spending more never lowers quality). The parts of the hull
    outside [c_min, c_max] are cut off. A single point (c, q) with c <= c_min scores q."""
    if not c_max > c_min:
        raise ValueError(f"AIQ needs a cost range with c_max > c_min, got [{c_min}, {c_max}]")
    hc = np.asarray(hull_cost, dtype=np.float64)
    hq = np.asarray(hull_quality, dtype=np.float64)
    if hc.size == 0:
        return 0.0
    lo = max(c_min, float(hc[0]))
    if lo >= c_max:
        return 0.0
    inner = hc[(hc > lo) & (hc < c_max)]
    knots = np.unique(np.concatenate([[lo, c_max], inner]))
    values = np.interp(knots, hc, hq)
    return float(np.trapezoid(values, knots)) / (c_max - c_min)


def breakpoint_lambdas(pred: Prediction, num: int = 100, max_cells: int = 500_000) -> FloatArray:
    """The sweep grid: cost weights placed where the rule (``switchyard.routers.policy``)
    changes its decisions, from best quality (0) to the cheapest model (+inf).

    The decision for a prompt only changes at ``lam = (q_j - q_k) / (c_j - c_k)`` for a
    model j both better and costlier than k. The grid is 0, ``num`` geometric steps from
    half the 0.1% quantile to twice the 99.9% quantile of those break points (on evenly
    spaced prompts, at most ``max_cells`` model pairs), and +inf (always the cheapest
    model with a predicted quality). Calibration searches its own finite grid instead
    (``policy.lambda_grid``), as it looks for the smallest λ meeting a target."""
    q, c = pred.quality, pred.cost
    max_rows = max(1, max_cells // max(1, q.shape[1] ** 2))
    if q.shape[0] > max_rows:
        rows = np.linspace(0, q.shape[0] - 1, max_rows).astype(np.int64)
        q, c = q[rows], c[rows]
    dq = q[:, :, None] - q[:, None, :]
    dc = c[:, :, None] - c[:, None, :]
    valid = (dq > 0) & (dc > 0)
    breaks = dq[valid] / dc[valid]
    breaks = breaks[np.isfinite(breaks) & (breaks > 0)]
    if breaks.size == 0:
        return np.array([0.0, np.inf])
    lo, hi = np.quantile(breaks, [0.001, 0.999])
    inner = np.geomspace(lo / 2.0, hi * 2.0, num)
    return np.concatenate([[0.0], inner, [np.inf]])


def picked(matrix: FloatArray, choice: IntArray) -> FloatArray:
    """``matrix[i, choice[i]]`` for every row i."""
    return np.asarray(matrix[np.arange(matrix.shape[0]), choice], dtype=np.float64)


def sweep_points(
    pred: Prediction, quality: FloatArray, cost: FloatArray, lambdas: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """(total actual cost, mean actual quality) of the models chosen at each ``lam``.

    Unscored cells of ``quality`` (NaN) are left out of the mean."""
    totals = np.empty(len(lambdas))
    means = np.empty(len(lambdas))
    for i, lam in enumerate(lambdas):
        choice = choose(pred.quality, pred.cost, float(lam))
        totals[i] = float(picked(cost, choice).sum())
        got = picked(quality, choice)
        means[i] = float(np.nanmean(got)) if np.isfinite(got).any() else float("nan")
    return totals, means


# --------------------------------------------------------------------- RouterDC


def per_task_means(
    values: FloatArray, tasks: Sequence[str], *, scale: float = 100.0
) -> dict[str, float]:
    """Mean of ``values`` per task (NaN ignored) times ``scale``, tasks in first-seen order."""
    v = np.asarray(values, dtype=np.float64)
    labels = np.asarray(tasks, dtype=object)
    out: dict[str, float] = {}
    for task in dict.fromkeys(tasks):
        sel = v[labels == task]
        sel = sel[np.isfinite(sel)]
        out[task] = float(sel.mean()) * scale if sel.size else float("nan")
    return out


def routerdc_averages(
    per_task: Mapping[str, float], id_tasks: Sequence[str], ood_tasks: Sequence[str]
) -> dict[str, float]:
    """RouterDC's unweighted averages of the per-task scores (tasks absent are skipped)."""

    def mean(names: Sequence[str]) -> float:
        vals = [per_task[t] for t in names if t in per_task]
        return float(np.mean(vals)) if vals else float("nan")

    return {"ID avg": mean(id_tasks), "OOD avg": mean(ood_tasks)}
