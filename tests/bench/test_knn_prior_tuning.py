"""The knn-prior tuning's folds and its joint rule (bench/knn_prior_tuning.py)."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.support.bench import bench_module

tuning = bench_module("knn_prior_tuning")


def test_folds_hold_every_task_and_differ_in_size_by_at_most_one_row() -> None:
    tasks = ["a"] * 23 + ["b"] * 11 + ["c"] * 7
    fold_of = tuning.stratified_folds(tasks, 5, seed=0)
    sizes = Counter(fold_of.tolist())
    assert sorted(sizes) == [0, 1, 2, 3, 4] and max(sizes.values()) - min(sizes.values()) <= 1
    for f in range(5):
        assert {t for t, g in zip(tasks, fold_of, strict=True) if g == f} == {"a", "b", "c"}
    assert (tuning.stratified_folds(tasks, 5, seed=0) == fold_of).all()  # seeded


def test_a_task_too_small_for_the_folds_is_refused() -> None:
    with pytest.raises(ValueError, match="lacks tasks"):
        tuning.stratified_folds(["a"] * 10 + ["b"] * 2, 5, seed=0)


def _result(means: dict[tuple[int, float, float], float]) -> dict[str, object]:
    rows = [{"k": k, "temperature": t, "alpha": a, "mean": m} for (k, t, a), m in means.items()]
    values = list(means.values())
    return {"rows": rows, "spread": {"min": min(values), "max": max(values)}}


def test_the_joint_choice_averages_the_protocols_scaled_scores() -> None:
    shipped, one, other = tuning.SHIPPED, (50, 0.05, 5.0), (400, 0.2, 400.0)
    results = {
        "routerdc": _result({shipped: 59.0, one: 60.0, other: 58.0}),
        "routerbench": _result({shipped: 0.845, one: 0.846, other: 0.849}),
    }
    joint = tuning.joint_choice(results)
    assert joint is not None
    # scaled: shipped (0.5 + 0) / 2, one (1 + 0.25) / 2 = 0.625, other (0 + 1) / 2 = 0.5
    assert (joint["k"], joint["temperature"], joint["alpha"]) == one
    assert joint["scaled"] == pytest.approx(0.625)
    assert joint["shipped_scaled"] == pytest.approx(0.25)
    assert tuning.joint_choice({"routerdc": results["routerdc"]}) is None
