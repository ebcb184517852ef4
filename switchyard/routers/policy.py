"""The cost-aware choice: ``argmax_j quality_j − λ · cost_j − penalty_j`` under constraints.

``quality`` is a predicted score in [0, 1] (share of answers judged correct), ``cost`` is the
expected USD of the call, so λ is "quality points given up per dollar". Ties go to the cheaper
model. ``load_penalty`` (optional, quality points) is how the gateway makes the decision
load-aware: ``μ · expected_delay`` of each model's best replica, so a saturated cheap model
loses to the next best one. ``calibrate_lambda`` turns a target a user can reason about —
a budget in USD per 1,000 requests, or the share of calls the strongest model may take —
into λ, measured on a sample of prompts."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


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
    ) -> npt.NDArray[np.bool_]:
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
    """One prompt's choice with the full ranking (best first; excluded models last)."""

    model: str
    ranking: list[str]
    quality: dict[str, float]
    cost: dict[str, float]
    utility: dict[str, float]


def utilities(
    quality: FloatArray,
    cost: FloatArray,
    lam: float,
    allowed: npt.NDArray[np.bool_] | None = None,
    load_penalty: FloatArray | None = None,
) -> FloatArray:
    """quality − λ·cost − load_penalty, with a tiny cost tie-break; −inf where not allowed.

    ``load_penalty``: (n, m) or (m,) quality points, finite and ≥ 0."""
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(f"cost weight must be a finite number ≥ 0, got {lam}")
    scale = max(float(np.abs(cost).max(initial=0.0)), 1e-12)
    u = quality - lam * cost - 1e-9 * cost / scale
    if load_penalty is not None:
        if not (np.isfinite(load_penalty).all() and (load_penalty >= 0).all()):
            raise ValueError("load penalties must be finite numbers ≥ 0")
        u = u - load_penalty
    if allowed is not None:
        if not allowed.any(axis=1).all():
            raise NoModelAllowedError("the constraints exclude every model for some prompt")
        u = np.where(allowed, u, -np.inf)
    return u


def choose(
    quality: FloatArray, cost: FloatArray, lam: float, allowed: npt.NDArray[np.bool_] | None = None
) -> IntArray:
    """Index of the chosen model per prompt."""
    return np.asarray(np.argmax(utilities(quality, cost, lam, allowed), axis=1), dtype=np.int64)


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
    u = utilities(quality, cost, lam, allowed, load_penalty)
    decisions = []
    for i in range(quality.shape[0]):
        order = np.argsort(-u[i], kind="stable")
        decisions.append(
            Decision(
                model=models[int(order[0])],
                ranking=[models[int(j)] for j in order],
                quality={m: float(quality[i, j]) for j, m in enumerate(models)},
                cost={m: float(cost[i, j]) for j, m in enumerate(models)},
                utility={m: float(u[i, j]) for j, m in enumerate(models)},
            )
        )
    return decisions


def lambda_grid(quality: FloatArray, cost: FloatArray, points: int = 200) -> FloatArray:
    """λ from 0 up to where the cheapest model always wins, geometric in between."""
    spread_q = float(np.ptp(quality, axis=1).max(initial=0.0)) or 1.0
    diffs = np.abs(np.diff(np.sort(cost, axis=1), axis=1))
    positive = diffs[diffs > 0]
    if positive.size == 0:
        return np.zeros(1)
    lo = spread_q / float(np.abs(cost).max()) * 1e-3
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
