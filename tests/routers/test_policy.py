"""The cost-aware choice ``argmax quality − λ·cost``, its constraints and λ calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest

from switchyard.routers.policy import (
    Constraints,
    Decision,
    NoModelAllowedError,
    calibrate_lambda,
    choose,
    decide,
    lambda_grid,
    utilities,
)

MODELS = ["big", "mid", "small"]
# Quality falls and cost falls from "big" to "small" on every prompt.
QUALITY = np.array([[0.9, 0.7, 0.4], [0.8, 0.75, 0.3], [0.95, 0.5, 0.45]])
COST = np.array([[0.03, 0.01, 0.001], [0.03, 0.01, 0.001], [0.05, 0.02, 0.002]])


def _sample(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random prompts over four models whose cost and quality both rise with the index."""
    rng = np.random.default_rng(seed)
    base_q = np.array([0.45, 0.6, 0.7, 0.85])
    base_c = np.array([0.0005, 0.002, 0.006, 0.03])
    quality = np.clip(base_q + rng.normal(scale=0.15, size=(n, 4)), 0.0, 1.0)
    cost = base_c * rng.uniform(0.5, 1.5, size=(n, 4))
    return quality, cost


def _mean_cost_per_1k(quality: np.ndarray, cost: np.ndarray, lam: float) -> float:
    picks = choose(quality, cost, lam)
    return float(cost[np.arange(len(cost)), picks].mean() * 1000)


def test_choice_maximises_quality_minus_weighted_cost() -> None:
    lam = 8.0
    expected = np.argmax(QUALITY - lam * COST, axis=1)
    np.testing.assert_array_equal(choose(QUALITY, COST, lam), expected)
    # neither the best-quality choice (λ = 0: all "big") nor the cheapest (all "small")
    assert choose(QUALITY, COST, lam).tolist() == [0, 1, 0]


def test_zero_cost_weight_picks_the_best_quality() -> None:
    np.testing.assert_array_equal(choose(QUALITY, COST, 0.0), QUALITY.argmax(axis=1))


def test_large_cost_weight_picks_the_cheapest_model() -> None:
    np.testing.assert_array_equal(choose(QUALITY, COST, 1e6), COST.argmin(axis=1))


def test_the_top_of_the_lambda_grid_always_picks_the_cheapest_model() -> None:
    quality, cost = _sample()
    grid = lambda_grid(quality, cost)
    assert grid[0] == 0.0 and np.all(np.diff(grid) > 0)
    np.testing.assert_array_equal(choose(quality, cost, float(grid[-1])), cost.argmin(axis=1))


@pytest.mark.parametrize("cheap_first", [True, False])
def test_ties_go_to_the_cheaper_model(cheap_first: bool) -> None:
    quality = np.array([[0.5, 0.5]])
    cost = np.array([[0.01, 0.02]]) if cheap_first else np.array([[0.02, 0.01]])
    cheaper = int(cost.argmin())
    assert choose(quality, cost, 0.0).tolist() == [cheaper]
    # exact utility tie at λ = 1: 0.75 − 0.5 == 0.5 − 0.25 (all exactly representable)
    quality = np.array([[0.75, 0.5]]) if not cheap_first else np.array([[0.5, 0.75]])
    cost = np.array([[0.5, 0.25]]) if not cheap_first else np.array([[0.25, 0.5]])
    assert choose(quality, cost, 1.0).tolist() == [int(cost.argmin())]


def test_allow_list_restricts_the_choice() -> None:
    constraints = Constraints(allowed=frozenset({"mid", "small"}))
    decisions = decide(MODELS, QUALITY, COST, 0.0, constraints)
    assert [d.model for d in decisions] == ["mid", "mid", "mid"]
    assert all(d.ranking[-1] == "big" for d in decisions)
    assert all(d.utility["big"] == -math.inf for d in decisions)


def test_max_cost_excludes_models_expected_to_cost_more() -> None:
    decisions = decide(MODELS, QUALITY, COST, 0.0, Constraints(max_cost=0.015))
    # prompt 2's "mid" costs 0.02 > 0.015, so only "small" is left there
    assert [d.model for d in decisions] == ["mid", "mid", "small"]


def test_allow_list_and_max_cost_combine() -> None:
    constraints = Constraints(allowed=frozenset({"big", "small"}), max_cost=0.04)
    assert [d.model for d in decide(MODELS, QUALITY, COST, 0.0, constraints)] == [
        "big",
        "big",
        "small",
    ]


def test_constraints_mask_has_one_entry_per_prompt_and_model() -> None:
    mask = Constraints(allowed=frozenset({"big"}), max_cost=0.04).mask(MODELS, COST)
    assert mask.shape == COST.shape
    assert mask.tolist() == [[True, False, False], [True, False, False], [False, False, False]]
    assert Constraints().mask(MODELS, COST).all()


@pytest.mark.parametrize(
    "constraints",
    [
        Constraints(allowed=frozenset({"unknown-model"})),
        Constraints(allowed=frozenset()),
        Constraints(max_cost=0.0001),
        Constraints(allowed=frozenset({"big"}), max_cost=0.04),  # only prompt 2 is left empty
    ],
)
def test_excluding_every_model_raises_no_model_allowed(constraints: Constraints) -> None:
    with pytest.raises(NoModelAllowedError, match="exclude every model"):
        decide(MODELS, QUALITY, COST, 0.0, constraints)
    assert issubclass(NoModelAllowedError, ValueError)


def test_negative_cost_weight_is_rejected() -> None:
    with pytest.raises(ValueError, match="cost weight must be a number ≥ 0"):
        choose(QUALITY, COST, -0.1)
    with pytest.raises(ValueError, match="cost weight"):
        decide(MODELS, QUALITY, COST, -1.0)


def test_nan_cost_weight_is_rejected() -> None:
    with pytest.raises(ValueError, match="cost weight"):
        choose(QUALITY, COST, math.nan)


def test_infinite_cost_weight_picks_the_cheapest_model() -> None:
    np.testing.assert_array_equal(choose(QUALITY, COST, math.inf), COST.argmin(axis=1))
    assert [d.model for d in decide(MODELS, QUALITY, COST, math.inf)] == ["small"] * 3


def test_decide_returns_full_rankings_best_first() -> None:
    lam = 5.0
    decisions = decide(MODELS, QUALITY, COST, lam)
    assert len(decisions) == len(QUALITY)
    for i, d in enumerate(decisions):
        assert isinstance(d, Decision)
        assert sorted(d.ranking) == sorted(MODELS)
        assert d.model == d.ranking[0]
        assert d.quality == pytest.approx(dict(zip(MODELS, QUALITY[i], strict=True)))
        assert d.cost == pytest.approx(dict(zip(MODELS, COST[i], strict=True)))
        expected_u = {m: QUALITY[i, j] - lam * COST[i, j] for j, m in enumerate(MODELS)}
        assert d.utility == pytest.approx(expected_u, abs=1e-6)
        ranked_u = [d.utility[m] for m in d.ranking]
        assert ranked_u == sorted(ranked_u, reverse=True)
        assert all(isinstance(v, float) for v in [*d.quality.values(), *d.cost.values()])


def test_decide_matches_choose() -> None:
    quality, cost = _sample(50)
    for lam in (0.0, 3.0, 30.0):
        picks = choose(quality, cost, lam)
        models = ["a", "b", "c", "d"]
        assert [d.model for d in decide(models, quality, cost, lam)] == [models[j] for j in picks]


def test_utilities_are_minus_infinity_where_not_allowed() -> None:
    allowed = np.array([[True, False, True]] * 3)
    u = utilities(QUALITY, COST, 0.0, allowed)
    assert np.isneginf(u[:, 1]).all()
    np.testing.assert_allclose(u[:, [0, 2]], QUALITY[:, [0, 2]], atol=1e-8)


def test_budget_calibration_meets_the_budget_with_the_smallest_lambda_on_the_grid() -> None:
    quality, cost = _sample()
    unconstrained = _mean_cost_per_1k(quality, cost, 0.0)
    cheapest = float(cost.min(axis=1).mean() * 1000)
    budget = cheapest + 0.3 * (unconstrained - cheapest)
    lam = calibrate_lambda(quality, cost, budget_per_1k=budget)
    assert lam > 0
    assert _mean_cost_per_1k(quality, cost, lam) <= budget
    grid = lambda_grid(quality, cost)
    index = int(np.flatnonzero(grid == lam)[0])
    assert _mean_cost_per_1k(quality, cost, float(grid[index - 1])) > budget  # one step less


def test_a_generous_budget_needs_no_cost_weight() -> None:
    quality, cost = _sample()
    budget = _mean_cost_per_1k(quality, cost, 0.0) + 1.0
    assert calibrate_lambda(quality, cost, budget_per_1k=budget) == 0.0


def test_a_budget_below_the_cheapest_models_cannot_be_met() -> None:
    quality, cost = _sample()
    cheapest = float(cost.min(axis=1).mean() * 1000)
    with pytest.raises(ValueError, match="no cost weight meets the target"):
        calibrate_lambda(quality, cost, budget_per_1k=cheapest * 0.5)


def test_strong_share_calibration_caps_the_strongest_models_share() -> None:
    quality, cost = _sample()
    strong = int(quality.mean(axis=0).argmax())
    assert strong == 3
    share_at_zero = float((choose(quality, cost, 0.0) == strong).mean())
    target = share_at_zero / 3
    lam = calibrate_lambda(quality, cost, strong_share=target)
    assert float((choose(quality, cost, lam) == strong).mean()) <= target
    grid = lambda_grid(quality, cost)
    index = int(np.flatnonzero(grid == lam)[0])
    assert index > 0
    assert float((choose(quality, cost, float(grid[index - 1])) == strong).mean()) > target
    assert calibrate_lambda(quality, cost, strong_share=1.0) == 0.0


def test_strong_share_with_an_explicit_strong_model() -> None:
    quality, cost = _sample()
    lam = calibrate_lambda(quality, cost, strong_share=0.1, strong_index=2)
    assert float((choose(quality, cost, lam) == 2).mean()) <= 0.1


@pytest.mark.parametrize(("budget", "share"), [(None, None), (5.0, 0.5)], ids=["neither", "both"])
def test_calibration_needs_exactly_one_target(budget: float | None, share: float | None) -> None:
    quality, cost = _sample(20)
    with pytest.raises(ValueError, match="exactly one of budget_per_1k or strong_share"):
        calibrate_lambda(quality, cost, budget_per_1k=budget, strong_share=share)


def test_list_price_ceiling_keeps_only_models_priced_at_or_below_it() -> None:
    prices = {"a": (1.0, 2.0), "b": (5.0, 15.0)}
    mask = Constraints(max_price_per_mtok=2.0).mask(["a", "b", "c"], np.zeros((1, 3)), prices)
    assert mask.tolist() == [[True, False, False]]  # "c" has no known price


def test_a_load_penalty_moves_the_choice_off_a_saturated_model_to_the_next_best() -> None:
    q, c = QUALITY[:1], COST[:1]
    assert decide(MODELS, q, c, 0.0)[0].model == "big"
    # "big" queues for 5 s at 0.1 quality points per second: "mid" (0.7) beats 0.9 - 0.5.
    penalty = 0.1 * np.array([5.0, 0.2, 0.0])
    decision = decide(MODELS, q, c, 0.0, load_penalty=penalty)[0]
    assert decision.model == "mid"
    assert decision.ranking == ["mid", "small", "big"]
    assert decision.utility["big"] == pytest.approx(0.9 - 0.5, abs=1e-6)


def test_load_penalties_must_be_finite_and_not_negative() -> None:
    for bad in (np.array([math.inf, 0.0, 0.0]), np.array([-0.1, 0.0, 0.0])):
        with pytest.raises(ValueError, match="load penalties"):
            utilities(QUALITY[:1], COST[:1], 0.0, load_penalty=bad)
