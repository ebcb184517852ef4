"""The placement MILP on hand-made capacity tables: each constraint, infeasibility, limits."""

from __future__ import annotations

import math

import pytest

from switchyard.deploy.milp import Option, Problem, solve

CHEAP = Option("cheap", "m", "small", 1, 1.0, (2.0, 1.0))
DEAR = Option("dear", "m", "big", 2, 3.0, (10.0, 10.0))


def problem(**changes: object) -> Problem:
    base: dict[str, object] = {"options": (CHEAP, DEAR), "rates": {"m": (4.0, 4.0)}}
    return Problem(**{**base, **changes})  # type: ignore[arg-type]


def test_cheapest_mix_covers_every_bucket() -> None:
    solution = solve(problem())
    # 'dear' carries 10 + 10 req/s of load for 3 $/h; 'cheap' would need 2 + 4 replicas.
    assert solution.replicas == {"dear": 1}
    assert solution.cost == pytest.approx(3.0)


def test_availability_limits_the_gpus_of_a_type() -> None:
    solution = solve(problem(availability={"big": 1}))
    assert "dear" not in solution.replicas  # needs 2 GPUs of type big
    assert solution.replicas == {"cheap": 6}


def test_headroom_keeps_planned_load_below_the_utilisation_cap() -> None:
    tight = problem(rates={"m": (5.0, 5.0)}, max_utilisation=0.5)
    solution = solve(tight)
    assert solution.replicas.get("dear", 0) == 2


def test_min_replicas_and_budget_are_constraints() -> None:
    assert solve(problem(min_replicas={"m": 2})).cost == pytest.approx(4.0)
    over = solve(problem(min_replicas={"m": 2}, budget=3.5))
    assert over.status == "infeasible" and math.isinf(over.cost)


def test_a_bucket_no_option_can_serve_is_reported() -> None:
    blind = Option("blind", "m", "small", 1, 1.0, (1.0, 0.0))
    solution = solve(problem(options=(blind,)))
    assert solution.status == "infeasible"
    assert "m bucket 1" in solution.message


def test_a_time_limit_returns_the_incumbent_with_its_gap() -> None:
    # Many near-identical options make HiGHS branch; a tiny limit stops it early.
    options = tuple(
        Option(f"o{i}", "m", f"r{i % 7}", 1 + i % 3, 1.0 + (i % 11) / 10,
               tuple(0.5 + ((i * 7 + b * 3) % 13) / 5 for b in range(12)))
        for i in range(150)
    )  # fmt: skip
    hard = Problem(options, {"m": tuple(3.3 + b for b in range(12))},
                   availability={f"r{k}": 9 for k in range(7)})  # fmt: skip
    solution = solve(hard, time_limit_s=0.05, mip_rel_gap=0.0)
    assert solution.status in ("optimal", "time_limit", "no_solution")
    if solution.status == "time_limit":
        assert solution.feasible
        assert solution.gap >= 0 and solution.bound <= solution.cost + 1e-9
    if solution.status == "no_solution":
        assert not solution.feasible and "Time limit" in solution.message
    relaxed = solve(hard, time_limit_s=10, mip_rel_gap=0.05)
    assert relaxed.feasible and relaxed.gap <= 0.05


def test_models_that_fit_the_shared_gpus_are_solved_one_by_one() -> None:
    a = Option("a", "m1", "gpu", 1, 1.0, (1.0,))
    b = Option("b", "m2", "gpu", 1, 1.0, (1.0,))
    both = Problem((a, b), {"m1": (2.0,), "m2": (3.0,)}, availability={"gpu": 5})
    solution = solve(both)
    assert solution.replicas == {"a": 2, "b": 3}
    assert "solved per model" in solution.message


def test_models_competing_for_scarce_gpus_are_solved_jointly() -> None:
    scarce = Option("scarce", "m1", "fast", 1, 1.0, (10.0,))
    scarce2 = Option("scarce2", "m2", "fast", 1, 1.0, (10.0,))
    slow = Option("slow", "m2", "slow", 1, 1.0, (2.0,))
    fallback = Option("fallback", "m1", "slow", 1, 1.0, (2.0,))
    problem = Problem(
        (scarce, scarce2, slow, fallback), {"m1": (8.0,), "m2": (3.0,)}, availability={"fast": 1}
    )
    solution = solve(problem, mip_rel_gap=0.0)
    # m1 alone and m2 alone would each take the one fast GPU; together m1 gets it.
    assert solution.replicas == {"scarce": 1, "slow": 2}
    assert solution.cost == pytest.approx(3.0)
    assert "solved per model" not in solution.message
