"""Mélange's worked example: its integer-slice ILP, and fractional routing on the same table."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchyard.deploy.melange import load_melange, parse_melange, solve_fractional, solve_melange
from tests.support.requirements import reference_data


@pytest.fixture(scope="module")
def example_path() -> Path:
    return reference_data("placement", "melange_example.json")


def test_melange_mode_reproduces_three_a10g_and_one_a100_at_6_70(example_path: Path) -> None:
    solution = solve_melange(load_melange(example_path))
    assert solution.status == "optimal"
    assert solution.cost == pytest.approx(6.70)
    assert solution.replicas == {"A10G": 3, "A100-80GB": 1}
    # Each bucket (one slice) goes wholly to one GPU type.
    assert all(share == pytest.approx(1.0) for share in solution.shares.values())


def test_fractional_routing_finds_the_cheaper_4_68_plan(example_path: Path) -> None:
    case = load_melange(example_path)
    solution = solve_fractional(case)
    assert solution.cost == pytest.approx(4.68)
    assert solution.cost < solve_melange(case).cost
    rates = case.problem.rates["workload"]
    for b, rate in enumerate(rates):
        served = sum(solution.shares.get((o.name, b), 0.0) for o in case.problem.options)
        assert served == pytest.approx(1.0), rate
    for opt in case.problem.options:
        load = sum(solution.shares.get((opt.name, b), 0.0) * r / opt.capacity[b]
                   for b, r in enumerate(rates))  # fmt: skip
        assert load <= solution.replicas.get(opt.name, 0) + 1e-9


def test_more_slices_move_melange_towards_the_fractional_optimum() -> None:
    doc = {
        "gpu_info": {"A10G": {"cost": 1.01, "tputs": [[2, 1], [5, 2]]},
                     "A100-80GB": {"cost": 3.67, "tputs": [[20, 20], [40, 20]]}},
        "workload_distribution": [[0.2, 0.1], [0.5, 0.2]],
        "total_request_rate": 30.0, "slice_factor": 8,
    }  # fmt: skip
    case = parse_melange(doc)
    sliced = solve_melange(case).cost
    assert solve_fractional(case).cost <= sliced < 6.70
