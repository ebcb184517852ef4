"""The published metric definitions on hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest

from switchyard.routers.evaluation import (
    Prediction,
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

# weak = [0, 0, 1, 1] (q_weak 0.5), strong = [1, 1, 1, 0] (q_strong 0.75)
WEAK = np.array([0.0, 0.0, 1.0, 1.0])
STRONG = np.array([1.0, 1.0, 1.0, 0.0])


def test_perfect_router_curve_apgr_and_cpt_match_hand_computation() -> None:
    # Perfect scores = strong - weak = [1, 1, 0, -1]: rows 0, 1, then 2, then 3 go strong.
    # Gains 1, 1, 0, -1 -> quality (2 + [0, 1, 2, 2, 1]) / 4 = [.5, .75, 1, 1, .75]
    # PGR = (q - .5) / .25 = [0, 1, 2, 2, 1]
    # APGR = trapezoid, h = .25: .25 * (0/2 + 1 + 2 + 2 + 1/2) = 1.375
    # CPT(50%): PGR crosses .5 halfway between share 0 and .25 -> .125; CPT(80%) -> .2
    curve = threshold_curve(STRONG - WEAK, WEAK, STRONG)
    np.testing.assert_allclose(curve.share, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(curve.quality, [0.5, 0.75, 1.0, 1.0, 0.75])
    np.testing.assert_allclose(curve.pgr, [0, 1, 2, 2, 1])
    assert apgr(curve) == pytest.approx(1.375)
    assert cpt(curve, 50) == pytest.approx(0.125)
    assert cpt(curve, 80) == pytest.approx(0.2)


def test_reversed_router_recovers_the_gap_last() -> None:
    # Scores reversed: row 3 first (gain -1), row 2 (0), rows 0, 1 (1, 1).
    # quality = (2 + [0, -1, -1, 0, 1]) / 4 -> PGR = [0, -1, -1, 0, 1]
    # APGR = .25 * (0 - 1 - 1 + 0 + 1/2) = -0.375; PGR reaches .5 halfway in the last step.
    curve = threshold_curve(WEAK - STRONG, WEAK, STRONG)
    np.testing.assert_allclose(curve.pgr, [0, -1, -1, 0, 1])
    assert apgr(curve) == pytest.approx(-0.375)
    assert cpt(curve, 50) == pytest.approx(0.875)


def test_tied_scores_are_routed_in_expectation() -> None:
    # A constant scorer: every order is equally likely, so the curve is the straight line
    # from q_weak to q_strong, PGR(p) = p, APGR exactly 0.5 and CPT(x%) = x%.
    curve = threshold_curve(np.zeros(4), WEAK, STRONG)
    np.testing.assert_allclose(curve.pgr, curve.share)
    assert apgr(curve) == pytest.approx(0.5)
    assert cpt(curve, 50) == pytest.approx(0.5)
    assert cpt(curve, 80) == pytest.approx(0.8)


def test_random_scores_give_apgr_one_half() -> None:
    rng = np.random.default_rng(1)
    weak = (rng.random(5000) < 0.6).astype(float)
    strong = (rng.random(5000) < 0.8).astype(float)
    curve = threshold_curve(rng.random(5000), weak, strong)
    assert abs(apgr(curve) - 0.5) < 0.03
    assert abs(cpt(curve, 50) - 0.5) < 0.05
    assert abs(cpt(curve, 80) - 0.8) < 0.05


def test_routellm_sweep_uses_decile_thresholds_like_routellm() -> None:
    # Distinct scores in the perfect order; with 4 bins the qcut edges are the 0/25/50/75/100%
    # quantiles [1, 1.75, 2.5, 3.25, 4]: >= each edge sends 4, 3, 2, 1 rows strong, > 4 none.
    points = routellm_sweep(np.array([4.0, 3.0, 2.0, 1.0]), WEAK, STRONG, num_results=4)
    np.testing.assert_allclose(points.share, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(points.quality, [0.5, 0.75, 1.0, 1.0, 0.75])
    assert apgr_routellm(points) == pytest.approx(1.375)
    assert cpt_routellm(points, 50) == pytest.approx(0.125)


def test_routellm_sweep_of_random_scores_is_near_one_half_on_eleven_points() -> None:
    rng = np.random.default_rng(2)
    weak = (rng.random(5000) < 0.6).astype(float)
    strong = (rng.random(5000) < 0.8).astype(float)
    points = routellm_sweep(rng.random(5000), weak, strong)
    assert len(points.share) == 11
    assert abs(apgr_routellm(points) - 0.5) < 0.03
    assert abs(cpt_routellm(points, 50) - 0.5) < 0.06


def test_no_gap_between_weak_and_strong_gives_nan() -> None:
    curve = threshold_curve(np.arange(3.0), np.ones(3), np.ones(3))
    assert np.isnan(apgr(curve))
    assert np.isnan(cpt(curve, 50))


def test_threshold_curve_rejects_unscored_results() -> None:
    with pytest.raises(ValueError, match="NaN"):
        threshold_curve(np.zeros(2), np.array([1.0, np.nan]), np.ones(2))


def test_hull_drops_dominated_and_below_hull_points() -> None:
    # (1, .4) loses to (1, .5) at the same cost, (2.5, .55) and (4, .8) are dominated by
    # cheaper better points, and (2, .6) lies under the segment (1, .5)-(3, .9) (at 2: .7).
    cost = [1, 2, 3, 4, 2.5, 1]
    quality = [0.5, 0.6, 0.9, 0.8, 0.55, 0.4]
    hc, hq = nondecreasing_convex_hull(cost, quality)
    np.testing.assert_allclose(hc, [1, 3])
    np.testing.assert_allclose(hq, [0.5, 0.9])


def test_hull_keeps_concave_points_and_ignores_nan() -> None:
    hc, hq = nondecreasing_convex_hull([0, 1, 2, np.nan], [0, 0.9, 1.0, 2.0])
    np.testing.assert_allclose(hc, [0, 1, 2])
    np.testing.assert_allclose(hq, [0, 0.9, 1.0])


def test_aiq_of_hull_matches_hand_computation() -> None:
    # Hull (1, .5)-(3, .9) over [0, 5]: 0 on [0, 1), trapezoid 2 * .7 = 1.4 on [1, 3],
    # flat .9 on [3, 5] = 1.8 -> (1.4 + 1.8) / 5 = 0.64
    assert aiq(np.array([1.0, 3.0]), np.array([0.5, 0.9]), 0.0, 5.0) == pytest.approx(0.64)
    # Cut at the range: over [2, 3] the line goes .7 -> .9: mean .8
    assert aiq(np.array([1.0, 3.0]), np.array([0.5, 0.9]), 2.0, 3.0) == pytest.approx(0.8)


def test_aiq_of_a_single_point() -> None:
    # (2, .8) over [1, 3]: nothing below cost 2, then .8 for half the range -> 0.4
    assert aiq(np.array([2.0]), np.array([0.8]), 1.0, 3.0) == pytest.approx(0.4)
    # cheaper than the whole range: its quality everywhere
    assert aiq(np.array([0.5]), np.array([0.7]), 1.0, 3.0) == pytest.approx(0.7)
    assert aiq(np.array([4.0]), np.array([0.9]), 1.0, 3.0) == 0.0
    with pytest.raises(ValueError, match="cost range"):
        aiq(np.array([1.0]), np.array([1.0]), 2.0, 2.0)


def test_lambda_sweep_spans_best_quality_to_cheapest() -> None:
    rng = np.random.default_rng(0)
    quality = rng.random((50, 3))
    cost = np.tile([0.01, 0.1, 1.0], (50, 1))
    pred = Prediction(quality=quality, cost=cost)
    grid = breakpoint_lambdas(pred, num=40)
    assert grid[0] == 0 and np.isinf(grid[-1]) and np.all(np.diff(grid) > 0)
    costs, means = sweep_points(pred, quality, cost, grid)
    assert means[0] == pytest.approx(quality.max(axis=1).mean())
    assert costs[-1] == pytest.approx(0.5) and means[-1] == pytest.approx(quality[:, 0].mean())
    assert np.all(np.diff(costs) <= 1e-12)  # a larger cost weight never spends more


def test_routerdc_task_means_and_averages() -> None:
    per_task = per_task_means(np.array([1, 0, 1, 1, np.nan]), ["a", "a", "b", "b", "b"])
    assert per_task == {"a": 50.0, "b": 100.0}
    avgs = routerdc_averages({"a": 50.0, "b": 100.0, "c": 20.0}, ["a", "b"], ["c", "d"])
    assert avgs == {"ID avg": 75.0, "OOD avg": 20.0}
