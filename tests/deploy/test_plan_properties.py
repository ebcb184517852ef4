"""Properties of the planner, checked on generated workloads with hypothesis.

Cost never falls when the request rate rises or a latency target tightens, never rises when
a GPU gets cheaper, and every plan passes an independent check that re-derives capacities
from the performance model. Plans are solved to optimality (gap 0) so that comparing two
costs compares two optima.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from hypothesis import HealthCheck, assume, find, given, settings
from hypothesis import strategies as st

from switchyard.deploy.plan import Catalog, Plan, check_plan, make_plan
from switchyard.deploy.workload import Workload, parse_workload

PROPERTY = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
GPUS = {"L4": 16, "A10G": 16, "L40S": 8, "H100-80GB": 4}
# The workloads whose plans are checked independently (only the feasible ones).
PLAN_INPUTS = {
    "rate": st.floats(0.5, 40),
    "tpot": st.floats(0.03, 0.1),
    "headroom": st.floats(0.0, 0.5),
    "min_replicas": st.integers(1, 3),
}


@cache
def catalog() -> Catalog:
    return Catalog.load()  # shared: rated candidates are reused across examples


def workload(
    rate: float,
    tpot: float = 0.05,
    ttft: float = 2.0,
    prices: dict[str, float] | None = None,
    headroom: float = 0.2,
    min_replicas: int = 1,
) -> Workload:
    buckets = [{"input": 512, "output": 256, "weight": 0.6},
               {"input": 2048, "output": 512, "weight": 0.4}]  # fmt: skip
    doc: dict[str, Any] = {
        "targets": {"ttft_s": ttft, "tpot_s": tpot},
        "headroom": headroom,
        "gpus": GPUS,
        "prices": prices or {},
        "mip_rel_gap": 0.0,
        "time_limit_s": 20,
        "search": {"tensor_parallel": [1, 2], "data_parallel": [1, 2]},
        "models": [
            {"name": "Llama-3.1-8B", "rate": rate, "buckets": buckets,
             "min_replicas": min_replicas},
            {"name": "Qwen3-30B-A3B", "rate": rate / 2, "buckets": buckets},
        ],
    }  # fmt: skip
    return parse_workload(doc)


def cost(w: Workload) -> float:
    return make_plan(w, catalog()).cost_per_hour


@PROPERTY
@given(rate=st.floats(0.5, 30), factor=st.floats(1.0, 3.0))
def test_cost_never_decreases_when_the_rate_rises(rate: float, factor: float) -> None:
    assert cost(workload(rate * factor)) >= cost(workload(rate)) - 1e-9


@PROPERTY
@given(
    tpot=st.floats(0.03, 0.1),
    ttft=st.floats(0.2, 3.0),
    tighter_tpot=st.floats(0.6, 1.0),
    tighter_ttft=st.floats(0.3, 1.0),
)
def test_cost_never_decreases_when_a_latency_target_tightens(
    tpot: float, ttft: float, tighter_tpot: float, tighter_ttft: float
) -> None:
    loose = cost(workload(8.0, tpot, ttft))
    assert cost(workload(8.0, tpot * tighter_tpot, ttft)) >= loose - 1e-9
    assert cost(workload(8.0, tpot, ttft * tighter_ttft)) >= loose - 1e-9


@PROPERTY
@given(gpu=st.sampled_from(sorted(GPUS)), discount=st.floats(0.3, 1.0), rate=st.floats(1, 20))
def test_cost_never_increases_when_a_gpu_gets_cheaper(
    gpu: str, discount: float, rate: float
) -> None:
    price = catalog().gpus[gpu].price_per_hour
    assert price is not None
    cheaper = workload(rate, prices={gpu: price * discount})
    assert cost(cheaper) <= cost(workload(rate)) + 1e-9


def plan_for(rate: float, tpot: float, headroom: float, min_replicas: int) -> Plan:
    return make_plan(workload(rate, tpot, headroom=headroom, min_replicas=min_replicas), catalog())


@PROPERTY
@given(**PLAN_INPUTS)
def test_every_plan_satisfies_its_own_constraints_when_checked_independently(
    rate: float, tpot: float, headroom: float, min_replicas: int
) -> None:
    plan = plan_for(rate, tpot, headroom, min_replicas)
    assume(plan.feasible)
    assert check_plan(plan) == []
    assert plan.cost_per_hour == sum(c.price_per_hour for c in plan.configs)


def test_the_independently_checked_workloads_include_feasible_ones() -> None:
    """The check above assumes a feasible plan; were none of its inputs feasible, it would
    check nothing."""
    plan = find(st.builds(plan_for, **PLAN_INPUTS), lambda p: p.feasible, settings=PROPERTY)
    assert plan.feasible
