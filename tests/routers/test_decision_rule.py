"""The one decision rule (``switchyard.routers.policy``): NaN, ties, λ = 0 and λ = ∞, rows.

Property tests draw qualities and costs on a grid of sixteenths and cost weights that are
powers of two, so ``quality − λ·cost`` is exact in floating point and every tie is a tie."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from switchyard.routers.evaluation.metrics import sweep_points
from switchyard.routers.policy import Constraints, choose, decide, rank, utilities
from switchyard.routers.prediction import Prediction

NAN = math.nan
INF = math.inf
LAMBDAS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 64.0, INF)

_sixteenths = st.integers(0, 32).map(lambda k: k / 16)
_maybe_nan = st.one_of(_sixteenths, st.just(NAN))


@st.composite
def _rows(draw: st.DrawFn, nan: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(quality, cost) of 1–6 prompts over 1–5 candidates; quality NaN now and then."""
    shape = (draw(st.integers(1, 6)), draw(st.integers(1, 5)))
    quality = draw(hnp.arrays(np.float64, shape, elements=_maybe_nan if nan else _sixteenths))
    cost = draw(hnp.arrays(np.float64, shape, elements=_sixteenths))
    return quality, cost


_lambda = st.sampled_from(LAMBDAS)


def _key(quality: np.ndarray, cost: np.ndarray, lam: float, j: int) -> tuple[float, ...]:
    """Candidate j's place by the documented rule, smaller first (for candidates with an
    estimate): higher utility, then lower cost, then earlier; at λ = ∞ lower cost, then
    higher quality, then earlier."""
    if math.isinf(lam):
        return (cost[j], -quality[j], j)
    return (-(quality[j] - lam * cost[j]), cost[j], j)


# ---------------------------------------------------------------- the concrete disagreement


@pytest.mark.parametrize("lam", [0.0, 1.0, INF])
def test_a_nan_quality_is_not_chosen_in_the_reported_case(lam: float) -> None:
    quality, cost = np.array([[0.5, NAN, 0.7]]), np.array([[1.0, 1.0, 1.0]])
    assert choose(quality, cost, lam).tolist() == [2]
    assert rank(quality, cost, lam).tolist() == [[2, 0, 1]]
    decision = decide(["a", "b", "c"], quality, cost, lam)[0]
    assert decision.model == "c" and decision.ranking == ["c", "a", "b"]
    assert math.isnan(decision.utility["b"])


def test_evaluation_sweeps_skip_a_cheap_nan_model_at_infinite_cost_weight() -> None:
    # The old evaluation rule sent λ = ∞ to "b", the cheapest, though it has no estimate.
    pred = Prediction(quality=np.array([[0.5, NAN, 0.7]]), cost=np.array([[1.0, 0.5, 1.0]]))
    actual = np.array([[0.0, 1.0, 0.25]])
    _, means = sweep_points(pred, actual, pred.cost, np.array([0.0, INF]))
    assert means.tolist() == [0.25, 0.25]  # "c" both times: at λ = ∞ it ties "a" on cost


def test_evaluation_tie_breaks_are_unchanged() -> None:
    quality = np.array([[0.5, 0.5, 0.2], [0.9, 0.1, 0.1], [0.9, 0.8, 0.0]])
    cost = np.array([[2.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.5, 0.0]])
    assert choose(quality, cost, 0.0).tolist() == [1, 0, 0]
    # λ = .5: row 0 utilities -.5, 0, .2 -> 2; row 2 .4, .55, 0 -> 1
    assert choose(quality, cost, 0.5).tolist() == [2, 0, 1]
    # λ = ∞: the cheapest, ties to the higher predicted quality
    assert choose(quality, cost, INF).tolist() == [2, 1, 2]


# ------------------------------------------------------------------- documented edge cases


def test_when_every_candidate_lacks_an_estimate_the_cheapest_is_chosen() -> None:
    quality = np.full((3, 3), NAN)
    cost = np.array([[3.0, 1.0, 2.0], [NAN, 2.0, 2.0], [NAN, NAN, NAN]])
    for lam in (0.0, 1.0, INF):
        # ties in candidate order; a NaN cost counts as the most expensive
        assert choose(quality, cost, lam).tolist() == [1, 1, 0]
    assert rank(quality, cost, 0.0)[0].tolist() == [1, 2, 0]


def test_the_fallback_respects_the_constraints() -> None:
    quality, cost = np.array([[NAN, NAN, 0.9]]), np.array([[1.0, 2.0, 3.0]])
    decision = decide(["a", "b", "c"], quality, cost, 0.0, Constraints(frozenset({"b"})))[0]
    assert decision.model == "b" and decision.ranking == ["b", "a", "c"]


@pytest.mark.parametrize("lam", [0.0, 2.0])
def test_equal_utilities_go_to_the_lower_cost_then_the_earlier_candidate(lam: float) -> None:
    # utilities at λ = 2: .5 - 2 * .125 = .25 (twice), .75 - 2 * .25 = .25; at λ = 0 .5, .5, .75
    quality = np.array([[0.5, 0.5, 0.75]])
    cost = np.array([[0.125, 0.125, 0.25]])
    expected = [0, 1, 2] if lam else [2, 0, 1]
    assert rank(quality, cost, lam)[0].tolist() == expected
    assert choose(quality, cost, lam).tolist() == expected[:1]


def test_zero_cost_weight_ignores_an_infinite_cost() -> None:
    quality, cost = np.array([[0.9, 0.5]]), np.array([[INF, 1.0]])
    assert choose(quality, cost, 0.0).tolist() == [0]
    assert utilities(quality, cost, 0.0).tolist() == [[0.9, 0.5]]


def test_at_infinite_cost_weight_the_load_penalty_breaks_cost_ties() -> None:
    quality, cost = np.array([[0.9, 0.8, 0.1]]), np.array([[1.0, 1.0, 2.0]])
    assert choose(quality, cost, INF).tolist() == [0]
    penalty = np.array([0.5, 0.0, 0.0])
    assert choose(quality, cost, INF, load_penalty=penalty).tolist() == [1]


@pytest.mark.parametrize("lam", [-1.0, NAN])
def test_a_negative_or_nan_cost_weight_is_rejected(lam: float) -> None:
    with pytest.raises(ValueError, match="cost weight must be a number ≥ 0"):
        choose(np.zeros((1, 2)), np.zeros((1, 2)), lam)


@pytest.mark.parametrize("lam", [0.0, 1.0, INF])
def test_no_prompts_give_no_choices(lam: float) -> None:
    none = np.zeros((0, 3))
    assert choose(none, none, lam).shape == (0,)
    assert rank(none, none, lam).shape == (0, 3)
    assert decide(["a", "b", "c"], none, none, lam) == []


def test_mismatched_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="must both be"):
        choose(np.zeros((2, 3)), np.zeros((2, 2)), 0.0)


# ------------------------------------------------------------------------------ properties


@settings(max_examples=300, deadline=None)
@given(_rows(), _lambda)
def test_a_nan_quality_is_never_chosen_while_a_scored_model_exists(
    rows: tuple[np.ndarray, np.ndarray], lam: float
) -> None:
    quality, cost = rows
    picked = quality[np.arange(len(quality)), choose(quality, cost, lam)]
    has_estimate = ~np.isnan(quality).all(axis=1)
    assert not np.isnan(picked[has_estimate]).any()


@settings(max_examples=300, deadline=None)
@given(_rows())
def test_the_chosen_cost_never_rises_as_the_cost_weight_grows(
    rows: tuple[np.ndarray, np.ndarray],
) -> None:
    quality, cost = rows
    chosen = np.stack([cost[np.arange(len(cost)), choose(quality, cost, lam)] for lam in LAMBDAS])
    assert (np.diff(chosen, axis=0) <= 0).all()


@settings(max_examples=300, deadline=None)
@given(_rows(), _lambda)
def test_the_choice_is_the_first_candidate_by_the_documented_order(
    rows: tuple[np.ndarray, np.ndarray], lam: float
) -> None:
    quality, cost = rows
    picks = choose(quality, cost, lam)
    for i, pick in enumerate(picks.tolist()):
        scored = [j for j in range(quality.shape[1]) if not math.isnan(quality[i, j])]
        if scored:
            expected = min(scored, key=lambda j: _key(quality[i], cost[i], lam, j))
        else:
            expected = min(range(quality.shape[1]), key=lambda j: (cost[i, j], j))
        assert pick == expected


@settings(max_examples=200, deadline=None)
@given(_rows(nan=False))
def test_zero_weight_picks_the_best_quality_and_infinite_weight_the_cheapest(
    rows: tuple[np.ndarray, np.ndarray],
) -> None:
    quality, cost = rows
    rows_ = np.arange(len(quality))
    assert (quality[rows_, choose(quality, cost, 0.0)] == quality.max(axis=1)).all()
    assert (cost[rows_, choose(quality, cost, INF)] == cost.min(axis=1)).all()


@settings(max_examples=200, deadline=None)
@given(_rows(), _lambda, st.data())
def test_rows_are_decided_independently_and_rank_choose_and_decide_agree(
    rows: tuple[np.ndarray, np.ndarray], lam: float, data: st.DataObject
) -> None:
    quality, cost = rows
    allowed = data.draw(hnp.arrays(np.bool_, quality.shape))
    allowed[:, data.draw(st.integers(0, quality.shape[1] - 1))] = True
    picks = choose(quality, cost, lam, allowed)
    assert allowed[np.arange(len(picks)), picks].all()
    assert rank(quality, cost, lam, allowed)[:, 0].tolist() == picks.tolist()
    one_by_one = [
        int(choose(quality[i : i + 1], cost[i : i + 1], lam, allowed[i : i + 1])[0])
        for i in range(len(quality))
    ]
    assert one_by_one == picks.tolist()
    models = [f"m{j}" for j in range(quality.shape[1])]
    decided = [d.model for d in decide(models, quality, cost, lam)]
    assert decided == [models[j] for j in choose(quality, cost, lam)]
