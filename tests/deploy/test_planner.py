"""The planner on the example chat workload: candidates, plan, comparisons, the check."""

from __future__ import annotations

from dataclasses import replace
from functools import cache

import pytest

from switchyard.deploy.balance import balance
from switchyard.deploy.candidates import Candidate, prune
from switchyard.deploy.milp import Solution, solve
from switchyard.deploy.perf.capacity import OperatingPoint
from switchyard.deploy.plan import (
    Catalog,
    Plan,
    build_problem,
    check_plan,
    make_plan,
    rate_candidates,
)
from switchyard.deploy.workload import Workload, load_workload
from switchyard.resources import data_path

CHAT = data_path("workloads", "chat.yaml")


@cache
def catalog() -> Catalog:
    return Catalog.load()


@cache
def chat() -> Workload:
    return replace(load_workload(CHAT), mip_rel_gap=0.0)


@cache
def chat_plan() -> Plan:
    return make_plan(chat(), catalog())


def test_chat_plan_is_optimal_and_passes_the_independent_check() -> None:
    plan = chat_plan()
    assert plan.solution.status == "optimal"
    assert check_plan(plan) == []
    assert plan.candidates < plan.generated
    models = {c.cfg.model.name for c in plan.configs}
    assert models == {"Llama-3.1-8B", "Qwen3-30B-A3B"}
    for c in plan.configs:
        assert 0 < c.utilisation <= 1 - chat().headroom + 1e-9


def test_balancing_spreads_traffic_without_changing_cost_or_raising_the_peak() -> None:
    work = chat()
    cands, _ = rate_candidates(work, catalog())
    problem = build_problem(work, cands)
    raw = solve(problem, mip_rel_gap=0.0)
    even = balance(problem, raw)
    assert even.replicas == raw.replicas and even.cost == raw.cost

    def peaks(sol: Solution) -> dict[str, float]:
        out: dict[str, float] = {}
        for opt in problem.options:
            n = sol.replicas.get(opt.name, 0)
            if n:
                rates = problem.rates[opt.group]
                load = sum(sol.shares.get((opt.name, b), 0.0) * r / opt.capacity[b]
                           for b, r in enumerate(rates) if opt.capacity[b] > 0)  # fmt: skip
                out[opt.group] = max(out.get(opt.group, 0.0), load / n)
        return out

    before, after = peaks(raw), peaks(even)
    assert all(after[g] <= before[g] + 1e-9 for g in before)


def test_mixed_plan_costs_no_more_than_any_single_gpu_type_plan() -> None:
    mixed = chat_plan().cost_per_hour
    singles = [
        make_plan(chat(), catalog(), only_gpu=g).cost_per_hour for g in ("L40S", "H100-80GB")
    ]
    assert all(mixed <= s + 1e-9 for s in singles)


def test_melange_slices_cost_no_less_than_fractional_routing() -> None:
    sliced = make_plan(chat(), catalog(), slices=1)
    assert sliced.mode == "slices"
    assert sliced.cost_per_hour >= chat_plan().cost_per_hour - 1e-9
    assert check_plan(sliced) == []
    for c in sliced.configs:
        assert all(s in (0.0, 1.0) for s in (round(x, 9) for x in c.shares))


def test_a_budget_below_the_optimum_makes_the_plan_infeasible() -> None:
    poor = replace(chat(), budget_per_hour=chat_plan().cost_per_hour * 0.9)
    plan = make_plan(poor, catalog())
    assert not plan.feasible and plan.solution.status == "infeasible"


def test_check_plan_catches_an_overloaded_configuration() -> None:
    plan = chat_plan()
    first = min(plan.configs, key=lambda c: sum(c.capacity_per_bucket))
    others = tuple(c for c in plan.configs if c is not first)
    # The smallest replica made to carry every bucket of its model, besides the others' shares.
    overloaded = replace(first, replicas=1, shares=tuple(1.0 for _ in first.shares))
    problems = check_plan(replace(plan, configs=(overloaded, *others)))
    assert any("shares sum to" in p for p in problems)
    assert any(p.startswith(first.cfg.name) and "load" in p for p in problems)


def test_pruning_drops_a_configuration_that_copies_of_a_smaller_one_beat() -> None:
    plan = chat_plan()
    small = plan.configs[0].cfg
    big = replace(small, tp=2)
    point = OperatingPoint(1.0, 1, 0.1, 0.01)
    weaker = Candidate(big, (replace(point, rate=1.5),))
    kept = prune([Candidate(small, (point,)), weaker])
    assert [c.cfg for c in kept] == [small]
    stronger = Candidate(big, (replace(point, rate=2.5),))
    assert len(prune([Candidate(small, (point,)), stronger])) == 2


def test_an_unknown_model_is_an_error() -> None:
    bad = replace(chat(), models=(replace(chat().models[0], model="Nope-1B"),))
    with pytest.raises(ValueError, match="Nope-1B"):
        make_plan(bad, catalog())
