"""The one decision rule: per prompt, the model with the highest ``quality − λ·cost − penalty``.

The gateway (through ``RoutingPipeline.decide`` and ``RouterService``), ``switchyard route``,
the online replay and the evaluation protocols all decide with :func:`choose`, :func:`rank`
or :func:`decide` here, so an evaluation measures what production runs.

``quality`` is a predicted score in [0, 1] (share of answers judged correct), ``cost`` is the
expected USD of the call, so λ is "quality points given up per dollar". ``load_penalty``
(optional, quality points) is how the gateway makes the decision load-aware: ``μ ·
expected_delay`` of each model's best replica, so a saturated cheap model loses to the next
best one. The rule, per prompt, over the candidates the constraints allow:

* a candidate without an estimate (NaN quality or cost) is never chosen while one with an
  estimate is allowed; when none has one, the cheapest allowed candidate is (NaN cost counts
  as the most expensive), ties in candidate order;
* equal utilities (exactly equal floats) go to the lower predicted cost, then to the
  earlier candidate;
* λ = 0 ranks by ``quality − penalty`` alone (an infinite cost cannot turn it into NaN);
  λ = ∞ ranks by cost alone: the cheapest candidate with an estimate, ties to the higher
  ``quality − penalty``, then candidate order; λ < 0 and NaN are rejected.

Every function is vectorised over rows (prompts). ``calibrate_lambda`` turns a target a user
can reason about — a budget in USD per 1,000 requests, or the share of calls the strongest
model may take — into λ, measured on a sample of prompts."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Rank groups, best first: allowed with an estimate, allowed without one, not allowed.
_SCORED, _UNSCORED, _EXCLUDED = 0, 1, 2


class NoModelAllowedError(ValueError):
    """The constraints leave no model to choose from."""


@dataclass(frozen=True)
class Constraints:
    """Which models may be chosen: an allow-list, a ceiling on the expected USD of the call,
    and a ceiling on the list price (USD per million output tokens; a model without a known
    price is excluded when this ceiling is set)."""

    allowed: frozenset[str] | None = None
    max_cost: float | None = None
    max_price_per_mtok: float | None = None

    def mask(
        self,
        models: Sequence[str],
        cost: FloatArray,
        prices: Mapping[str, tuple[float, float]] | None = None,
    ) -> BoolArray:
        """(n, m) boolean: may prompt i go to model j. ``prices``: (input, output) per Mtok."""
        ok = np.ones(cost.shape, dtype=bool)
        if self.allowed is not None:
            ok &= np.array([m in self.allowed for m in models], dtype=bool)[None, :]
        if self.max_cost is not None:
            ok &= cost <= self.max_cost
        if self.max_price_per_mtok is not None:
            known = prices or {}
            cheap = [m in known and known[m][1] <= self.max_price_per_mtok for m in models]
            ok &= np.array(cheap, dtype=bool)[None, :]
        return ok


@dataclass(frozen=True)
class Decision:
    """One prompt's choice with the full ranking (best first; excluded models last, in
    candidate order).

    ``utility`` is what the rule ranks by first: ``quality − λ·cost − penalty`` (``−cost``
    at λ = ∞), NaN without an estimate, −inf where the constraints exclude the model."""

    model: str
    ranking: list[str]
    quality: dict[str, float]
    cost: dict[str, float]
    utility: dict[str, float]


@dataclass(frozen=True)
class _Keys:
    """The rule as sort keys: a candidate ranks above another by a lower ``group``, then a
    lower ``first``, then a lower ``second``, then a lower column index. ``group`` is None
    when every candidate is allowed and has an estimate (the common case, kept cheap)."""

    utility: FloatArray
    group: IntArray | None
    first: FloatArray
    second: FloatArray

    def sort_keys(self) -> tuple[npt.NDArray[np.generic], ...]:
        """For ``np.lexsort``: least significant first."""
        keys = (self.second, self.first)
        return keys if self.group is None else (*keys, self.group)


def _check_cost_weight(lam: float) -> None:
    if math.isnan(lam) or lam < 0:
        raise ValueError(f"cost weight must be a number ≥ 0 (inf: the cheapest), got {lam}")


def _penalised(quality: FloatArray, load_penalty: FloatArray | None) -> FloatArray:
    if load_penalty is None:
        return quality
    penalty = np.asarray(load_penalty, dtype=np.float64)
    if not (np.isfinite(penalty).all() and (penalty >= 0).all()):
        raise ValueError("load penalties must be finite numbers ≥ 0")
    return quality - penalty


def _keys(
    quality: FloatArray,
    cost: FloatArray,
    lam: float,
    allowed: BoolArray | None,
    load_penalty: FloatArray | None,
) -> _Keys:
    _check_cost_weight(lam)
    q = np.asarray(quality, dtype=np.float64)
    c = np.asarray(cost, dtype=np.float64)
    if q.ndim != 2 or c.shape != q.shape:
        raise ValueError(f"quality {q.shape} and cost {c.shape} must both be (prompts, models)")
    adjusted = _penalised(q, load_penalty)
    if math.isinf(lam):
        utility, second = -c, -adjusted
    else:
        utility = adjusted if lam == 0 else adjusted - lam * c
        second = c
    unscored = np.isnan(utility) | np.isnan(second)  # a NaN quality or cost reaches one
    ok = None if allowed is None else np.asarray(allowed, dtype=bool)
    if ok is not None and not ok.any(axis=1).all():
        raise NoModelAllowedError("the constraints exclude every model for some prompt")
    if unscored.any():
        return _keys_without_estimates(utility, second, c, ok, ~unscored)
    if ok is None:
        return _Keys(utility=utility, group=None, first=-utility, second=second)
    return _Keys(
        utility=np.where(ok, utility, -np.inf),
        group=np.where(ok, _SCORED, _EXCLUDED),
        first=np.where(ok, -utility, 0.0),  # excluded models: in candidate order
        second=np.where(ok, second, 0.0),
    )


def _keys_without_estimates(
    utility: FloatArray,
    second: FloatArray,
    cost: FloatArray,
    ok: BoolArray | None,
    scored: BoolArray,
) -> _Keys:
    """The keys when some candidates have no estimate: those rank after every candidate with
    one, cheapest first (a NaN cost last), so a row without any estimate falls back to them."""
    if ok is None:
        ok = np.ones(utility.shape, dtype=bool)
    group = np.where(ok, np.where(scored, _SCORED, _UNSCORED), _EXCLUDED).astype(np.int64)
    first = np.where(scored, -utility, np.where(np.isnan(cost), np.inf, cost))
    return _Keys(
        utility=np.where(ok, np.where(scored, utility, np.nan), -np.inf),
        group=group,
        first=np.where(ok, first, 0.0),  # excluded models: in candidate order
        second=np.where(ok & scored, second, 0.0),
    )


def utilities(
    quality: FloatArray,
    cost: FloatArray,
    lam: float,
    allowed: BoolArray | None = None,
    load_penalty: FloatArray | None = None,
) -> FloatArray:
    """(n, m) quality − λ·cost − load_penalty (−cost at λ = ∞); −inf where not allowed.

    ``load_penalty``: (n, m) or (m,) quality points, finite and ≥ 0."""
    return _keys(quality, cost, lam, allowed, load_penalty).utility.copy()


def rank(
    quality: FloatArray,
    cost: FloatArray,
    lam: float,
    allowed: BoolArray | None = None,
    load_penalty: FloatArray | None = None,
) -> IntArray:
    """(n, m) column indices per prompt, best first by the rule (excluded models last)."""
    k = _keys(quality, cost, lam, allowed, load_penalty)
    return np.asarray(np.lexsort(k.sort_keys(), axis=-1), dtype=np.int64)


def choose(
    quality: FloatArray,
    cost: FloatArray,
    lam: float,
    allowed: BoolArray | None = None,
    load_penalty: FloatArray | None = None,
) -> IntArray:
    """(n,) index of the chosen model per prompt: the first column of :func:`rank`, found
    in linear time (the evaluation sweeps call this for every λ of a grid)."""
    k = _keys(quality, cost, lam, allowed, load_penalty)
    if k.group is None:
        best = k.first == k.first.min(axis=1, keepdims=True)
    else:
        best = k.group == k.group.min(axis=1, keepdims=True)
        masked = np.where(best, k.first, np.inf)
        best &= masked == masked.min(axis=1, keepdims=True)
    masked = np.where(best, k.second, np.inf)
    best &= masked == masked.min(axis=1, keepdims=True)
    return np.asarray(np.argmax(best, axis=1), dtype=np.int64)


def decide(
    models: Sequence[str],
    quality: FloatArray,
    cost: FloatArray,
    lam: float,
    constraints: Constraints | None = None,
    prices: Mapping[str, tuple[float, float]] | None = None,
    load_penalty: FloatArray | None = None,
) -> list[Decision]:
    """A full Decision per prompt (``prices`` for a list-price constraint)."""
    allowed = None if constraints is None else constraints.mask(models, cost, prices)
    k = _keys(quality, cost, lam, allowed, load_penalty)
    order = np.lexsort(k.sort_keys(), axis=-1)
    q_rows = np.asarray(quality, dtype=np.float64).tolist()
    c_rows = np.asarray(cost, dtype=np.float64).tolist()
    rows = zip(order.tolist(), q_rows, c_rows, k.utility.tolist(), strict=True)
    decisions = []
    for ranked, q, c, u in rows:  # tolist(): Python floats, as float() of each cell gives
        ranking = [models[j] for j in ranked]
        decisions.append(
            Decision(
                model=ranking[0],
                ranking=ranking,
                quality=dict(zip(models, q, strict=True)),
                cost=dict(zip(models, c, strict=True)),
                utility=dict(zip(models, u, strict=True)),
            )
        )
    return decisions


def lambda_grid(quality: FloatArray, cost: FloatArray, points: int = 200) -> FloatArray:
    """The calibration grid: λ from 0 up to where the cheapest model always wins, geometric
    in between, all finite (evaluation sweeps use ``evaluation.metrics.breakpoint_lambdas``,
    placed at the λ where decisions change, and ∞)."""
    spread = np.fmax.reduce(quality, axis=1) - np.fmin.reduce(quality, axis=1)  # NaN skipped
    spread_q = float(np.nanmax(spread, initial=0.0)) or 1.0
    diffs = np.abs(np.diff(np.sort(cost, axis=1), axis=1))
    positive = diffs[diffs > 0]
    if positive.size == 0:
        return np.zeros(1)
    lo = spread_q / float(np.nanmax(np.abs(cost))) * 1e-3
    hi = spread_q / float(positive.min()) * 10
    return np.concatenate([[0.0], np.geomspace(lo, hi, points - 1)])


def calibrate_lambda(
    quality: FloatArray,
    cost: FloatArray,
    *,
    budget_per_1k: float | None = None,
    strong_share: float | None = None,
    strong_index: int | None = None,
) -> float:
    """The smallest λ meeting the target on this sample of prompts.

    ``budget_per_1k``: mean predicted USD per 1,000 requests ≤ the budget.
    ``strong_share``: share of prompts sent to the strongest model (``strong_index``, by
    default the one with the highest mean predicted quality) ≤ the share."""
    if (budget_per_1k is None) == (strong_share is None):
        raise ValueError("give exactly one of budget_per_1k or strong_share")
    strong = int(np.argmax(quality.mean(axis=0))) if strong_index is None else strong_index
    rows = np.arange(quality.shape[0])
    for lam in lambda_grid(quality, cost):
        picks = choose(quality, cost, float(lam))
        if budget_per_1k is not None:
            if cost[rows, picks].mean() * 1000 <= budget_per_1k:
                return float(lam)
        elif strong_share is not None and (picks == strong).mean() <= strong_share:
            return float(lam)
    raise ValueError("no cost weight meets the target: even the cheapest models exceed it")
