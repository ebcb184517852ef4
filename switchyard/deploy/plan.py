"""From a workload to a plan: candidates, the MILP, and the plan's own independent check.

``make_plan`` rates candidate configurations with the performance model, solves the MILP
(fractional routing, or Mélange-style integer slices), evens out the fractional traffic
split over the chosen replicas, and returns a ``Plan``: replicas and
traffic shares per configuration, with the expected utilisation and latency of each.
``check_plan`` re-derives every capacity from the performance model and verifies the plan
meets its workload's constraints, without trusting anything the solver computed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

from switchyard.deploy.balance import balance
from switchyard.deploy.candidates import Candidate, candidates_for, priced_gpus
from switchyard.deploy.catalog import load_gpus, load_models
from switchyard.deploy.milp import Option, Problem, Solution, solve
from switchyard.deploy.perf.capacity import OperatingPoint, max_rate, point_at_rate
from switchyard.deploy.perf.memory import memory_plan
from switchyard.deploy.perf.specs import GpuSpec, ModelSpec, ServingConfig
from switchyard.deploy.workload import ModelDemand, Workload


@dataclass(frozen=True, slots=True)
class PlannedConfig:
    """One configuration in the plan: replicas, and per bucket its traffic share (of that
    bucket's rate), the server's capacity and its operating point."""

    cfg: ServingConfig
    replicas: int
    shares: tuple[float, ...]
    points: tuple[OperatingPoint, ...]
    demand: ModelDemand

    @property
    def capacity_per_bucket(self) -> tuple[float, ...]:
        return tuple(p.rate for p in self.points)

    @property
    def served_rates(self) -> tuple[float, ...]:
        return tuple(s * r for s, r in zip(self.shares, self.demand.bucket_rates(), strict=True))

    @property
    def load(self) -> float:
        """Busy servers' worth of work: sum of served rate over capacity, per bucket."""
        return sum(r / p.rate for r, p in zip(self.served_rates, self.points, strict=True) if r > 0)

    @property
    def utilisation(self) -> float:
        return self.load / self.replicas if self.replicas else 0.0

    @property
    def price_per_hour(self) -> float:
        return self.cfg.price_per_hour * self.replicas

    def expected_points(self) -> tuple[OperatingPoint, ...]:
        """Per bucket, where a replica settles at the planned utilisation: as busy as if it
        served only that bucket at the same share of its capacity."""
        util = self.utilisation
        return tuple(
            point_at_rate(self.cfg, b.input_tokens, b.output_tokens, util * p.rate)
            if share > 0 else OperatingPoint.none()
            for b, p, share in zip(self.demand.buckets, self.points, self.shares, strict=True)
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Plan:
    workload: Workload
    mode: str  # "fractional" or "slices"
    solution: Solution
    configs: tuple[PlannedConfig, ...]
    candidates: int  # after pruning
    generated: int

    @property
    def feasible(self) -> bool:
        return self.solution.feasible

    @property
    def cost_per_hour(self) -> float:
        return sum(c.price_per_hour for c in self.configs) if self.feasible else math.inf

    def gpus_by_type(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for c in self.configs:
            counts[c.cfg.gpu.name] = counts.get(c.cfg.gpu.name, 0) + c.cfg.gpus * c.replicas
        return dict(sorted(counts.items()))


@dataclass
class Catalog:
    gpus: dict[str, GpuSpec]
    models: dict[str, ModelSpec]
    # Rated candidates per (buckets, targets, search space, GPU prices): sweeps that only
    # change rates, budgets or availability reuse them.
    rated: dict[tuple[object, ...], tuple[list[Candidate], int]] = field(default_factory=dict)

    @classmethod
    def load(cls) -> Catalog:
        """The project's catalogs, ``switchyard/data/gpus.yaml`` and
        ``switchyard/data/models.yaml``."""
        return cls(load_gpus(), load_models())


def rate_candidates(workload: Workload, catalog: Catalog) -> tuple[dict[str, list[Candidate]], int]:
    """{model: its pruned, rated candidates} and how many were generated in all."""
    gpus = priced_gpus(workload, catalog.gpus)
    out: dict[str, list[Candidate]] = {}
    generated = 0
    for demand in workload.models:
        if demand.model not in catalog.models:
            raise ValueError(f"unknown model {demand.model!r}; known: {sorted(catalog.models)}")
        key = (demand.model, demand.buckets, demand.targets, demand.max_model_len, workload.search,
               tuple((g.name, g.price_per_hour) for g in gpus.values()))  # fmt: skip
        if key not in catalog.rated:
            catalog.rated[key] = candidates_for(
                demand, catalog.models[demand.model], gpus, workload.search
            )
        out[demand.model], made = catalog.rated[key]
        generated += made
    return out, generated


def build_problem(workload: Workload, cands: dict[str, list[Candidate]]) -> Problem:
    options = tuple(
        Option(c.cfg.name, model, c.cfg.gpu.name, c.cfg.gpus, c.cfg.price_per_hour, c.capacity)
        for model, group in cands.items()
        for c in group
    )
    return Problem(
        options=options,
        rates={d.model: d.bucket_rates() for d in workload.models},
        availability=dict(workload.gpus),
        min_replicas={d.model: d.min_replicas for d in workload.models},
        budget=workload.budget_per_hour,
        max_utilisation=1.0 - workload.headroom,
    )


def make_plan(
    workload: Workload, catalog: Catalog, slices: int | None = None, only_gpu: str | None = None
) -> Plan:
    """Plan ``workload``; ``slices`` for Mélange-style routing, ``only_gpu`` to restrict it
    to a single GPU type (for comparison with the mixed plan)."""
    if only_gpu is not None:
        workload = replace(workload, gpus={only_gpu: workload.gpus.get(only_gpu)})
    started = time.perf_counter()
    cands, generated = rate_candidates(workload, catalog)
    problem = build_problem(workload, cands)
    # The time limit covers the whole planning, so rating candidates eats into the solver's;
    # the margin is for HiGHS overrunning its limit slightly and for reading its solution.
    left = max(1.0, workload.time_limit_s - (time.perf_counter() - started) - 0.5)
    solution = solve(problem, left, workload.mip_rel_gap, slices)
    if slices is None:
        solution = balance(problem, solution)
    demands = {d.model: d for d in workload.models}
    configs = []
    for model, group in cands.items():
        for c in group:
            replicas = solution.replicas.get(c.cfg.name, 0)
            if replicas:
                shares = tuple(
                    solution.shares.get((c.cfg.name, b), 0.0) for b in range(len(c.points))
                )
                configs.append(PlannedConfig(c.cfg, replicas, shares, c.points, demands[model]))
    return Plan(
        workload, "slices" if slices else "fractional", solution, tuple(configs),
        sum(len(g) for g in cands.values()), generated,
    )  # fmt: skip


def check_plan(plan: Plan, tolerance: float = 1e-6) -> list[str]:
    """Every way ``plan`` breaks its workload's constraints, re-derived from the perf model
    (an empty list for a valid plan)."""
    workload = plan.workload
    problems: list[str] = []
    for demand in workload.models:
        mine = [c for c in plan.configs if c.cfg.model.name == demand.model]
        for b, bucket in enumerate(demand.buckets):
            total = sum(c.shares[b] for c in mine)
            if bucket.weight > 0 and abs(total - 1.0) > tolerance:
                problems.append(f"{demand.model} {bucket.label}: shares sum to {total:.6f}")
        if sum(c.replicas for c in mine) < demand.min_replicas:
            problems.append(f"{demand.model}: fewer than {demand.min_replicas} replicas")
    for c in plan.configs:
        problems += _check_config(c, workload.headroom, tolerance)
    problems += _check_fleet(plan, tolerance)
    return problems


def _check_config(c: PlannedConfig, headroom: float, tolerance: float) -> list[str]:
    if not memory_plan(c.cfg).feasible:
        return [f"{c.cfg.name}: does not fit in GPU memory"]
    load = 0.0
    for bucket, rate in zip(c.demand.buckets, c.served_rates, strict=True):
        if rate <= 0:
            continue
        point = max_rate(c.cfg, bucket.input_tokens, bucket.output_tokens, c.demand.targets)
        if point.rate <= 0:
            return [f"{c.cfg.name}: cannot meet the targets for {bucket.label}"]
        load += rate / point.rate
    if load > (1.0 - headroom) * c.replicas * (1 + tolerance) + tolerance:
        return [f"{c.cfg.name}: load {load:.3f} over {c.replicas} replicas x {1 - headroom:.2f}"]
    return []


def _check_fleet(plan: Plan, tolerance: float) -> list[str]:
    problems = []
    for gpu, used in plan.gpus_by_type().items():
        limit = plan.workload.gpus.get(gpu)
        if limit is not None and used > limit:
            problems.append(f"{gpu}: {used} GPUs used, {limit} available")
    budget = plan.workload.budget_per_hour
    if budget is not None and plan.cost_per_hour > budget * (1 + tolerance):
        problems.append(f"cost {plan.cost_per_hour:.2f}/h over the budget {budget:.2f}/h")
    return problems
