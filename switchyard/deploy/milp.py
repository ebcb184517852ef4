"""The placement MILP, independent of how capacities were obtained (perf model or a table).

Options are things one can rent (a serving configuration: a model on some GPUs), each with
a price and a capacity (requests/s one replica sustains) per request-size bucket of its
group (model). The program chooses integer replica counts ``n_i`` and the share ``x_ib`` of
bucket ``b``'s traffic each option serves:

    minimise    sum_i price_i n_i
    subject to  sum_i x_ib = 1                              every bucket with traffic
                sum_b rate_b / cap_ib * x_ib <= u * n_i     load within 1 - headroom
                sum_{i on r} units_i n_i <= avail_r         GPUs of each type
                sum_{i in g} n_i >= min_replicas_g
                sum_i price_i n_i <= budget                 when given
                x_ib <= n_i                                 (implied; tightens the LP)

Fractional routing lets ``x`` be any share; ``slices=S`` restricts it to multiples of
``1/S`` (each slice of a bucket wholly on one option), which is Mélange's ILP when options
are GPU types. Solved by HiGHS through ``scipy.optimize.milp``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_array


@dataclass(frozen=True, slots=True)
class Option:
    name: str
    group: str
    resource: str
    units: int
    price: float
    capacity: tuple[float, ...]  # per bucket of the group; 0 = cannot serve that bucket


@dataclass(frozen=True, slots=True)
class Problem:
    options: tuple[Option, ...]
    rates: dict[str, tuple[float, ...]]  # group -> request rate per bucket
    availability: dict[str, int | None] = field(default_factory=dict)  # missing: unlimited
    min_replicas: dict[str, int] = field(default_factory=dict)
    budget: float | None = None
    max_utilisation: float = 1.0


@dataclass(frozen=True, slots=True)
class Solution:
    """``status`` is "optimal", "time_limit" (a feasible plan, gap reported), "no_solution"
    (the time limit struck before any feasible plan was found) or "infeasible"; ``gap`` is
    HiGHS's relative MIP gap, ``bound`` its dual bound."""

    status: str
    cost: float
    replicas: dict[str, int]
    shares: dict[tuple[str, int], float]
    gap: float
    bound: float
    seconds: float
    message: str = ""

    @property
    def feasible(self) -> bool:
        return self.status in ("optimal", "time_limit")


@dataclass
class _Rows:
    rows: list[int] = field(default_factory=list)
    cols: list[int] = field(default_factory=list)
    vals: list[float] = field(default_factory=list)
    lo: list[float] = field(default_factory=list)
    hi: list[float] = field(default_factory=list)

    def add(self, entries: list[tuple[int, float]], lo: float, hi: float) -> None:
        row = len(self.lo)
        for col, val in entries:
            self.rows.append(row)
            self.cols.append(col)
            self.vals.append(val)
        self.lo.append(lo)
        self.hi.append(hi)

    def constraint(self, n_vars: int) -> LinearConstraint:
        shape = (len(self.lo), n_vars)
        matrix = coo_array((self.vals, (self.rows, self.cols)), shape=shape).tocsr()
        return LinearConstraint(matrix, np.array(self.lo), np.array(self.hi))


def _share_columns(problem: Problem) -> list[tuple[int, int]]:
    """(option index, bucket) for every pair that can carry traffic."""
    pairs = []
    for i, opt in enumerate(problem.options):
        rates = problem.rates.get(opt.group, ())
        pairs += [(i, b) for b, cap in enumerate(opt.capacity) if cap > 0 and rates[b] > 0]
    return pairs


def _uncovered(problem: Problem, pairs: list[tuple[int, int]]) -> list[str]:
    served = {(problem.options[i].group, b) for i, b in pairs}
    return [
        f"{group} bucket {b}"
        for group, rates in problem.rates.items()
        for b, rate in enumerate(rates)
        if rate > 0 and (group, b) not in served
    ]


def _build(problem: Problem, pairs: list[tuple[int, int]], slices: int | None) -> _Rows:
    n_opt = len(problem.options)
    rows = _Rows()
    share = slices or 1
    by_bucket: dict[tuple[str, int], list[int]] = {}
    by_option: dict[int, list[tuple[int, float]]] = {}
    for k, (i, b) in enumerate(pairs):
        opt = problem.options[i]
        by_bucket.setdefault((opt.group, b), []).append(n_opt + k)
        load = problem.rates[opt.group][b] / opt.capacity[b] / share
        by_option.setdefault(i, []).append((n_opt + k, load))
    for cols in by_bucket.values():
        rows.add([(c, 1.0) for c in cols], share, share)
    for k, (i, _) in enumerate(pairs):
        # x_ib <= S * n_i: implied at integer points, but it tightens the LP relaxation a lot
        # (without it a sliver of a replica could carry a whole bucket's share).
        rows.add([(n_opt + k, 1.0), (i, -float(share))], -np.inf, 0.0)
    for i, loads in by_option.items():
        rows.add([*loads, (i, -problem.max_utilisation)], -np.inf, 0.0)
    for resource, limit in problem.availability.items():
        used = [
            (i, float(o.units)) for i, o in enumerate(problem.options) if o.resource == resource
        ]
        if limit is not None and used:
            rows.add(used, -np.inf, float(limit))
    for group, least in problem.min_replicas.items():
        members = [(i, 1.0) for i, o in enumerate(problem.options) if o.group == group]
        if least > 0:
            rows.add(members, float(least), np.inf)
    if problem.budget is not None:
        rows.add([(i, o.price) for i, o in enumerate(problem.options)], -np.inf, problem.budget)
    return rows


def _replica_upper_bounds(problem: Problem) -> np.ndarray:
    """No option needs more replicas than serving all of its group alone would take."""
    ub = []
    for opt in problem.options:
        rates = problem.rates.get(opt.group, ())
        load = sum(r / c for r, c in zip(rates, opt.capacity, strict=True) if c > 0 and r > 0)
        need = math.ceil(load / problem.max_utilisation + 1e-9)
        bound = need + problem.min_replicas.get(opt.group, 0)
        limit = problem.availability.get(opt.resource)
        ub.append(bound if limit is None else min(bound, limit // opt.units))
    return np.array(ub, dtype=float)


def solve(
    problem: Problem,
    time_limit_s: float = 30.0,
    mip_rel_gap: float = 1e-4,
    slices: int | None = None,
) -> Solution:
    """Cheapest replica counts and traffic shares; ``slices`` switches to integer slices.

    Groups (models) interact only through GPU availability and the budget, so each group is
    first solved alone (milliseconds each). When the union of those plans respects both, it
    is the joint optimum; otherwise the joint program is solved with the time left.
    """
    started = time.perf_counter()
    groups = sorted(problem.rates)
    if len(groups) < 2:
        return _solve_joint(problem, time_limit_s, mip_rel_gap, slices)
    alone = {
        g: _solve_joint(_group_problem(problem, g), time_limit_s / (2 * len(groups)),
                        mip_rel_gap, slices)
        for g in groups
    }  # fmt: skip
    failed = [g for g, sol in alone.items() if not sol.feasible]
    if failed:
        message = "; ".join(f"{g}: {alone[g].message}" for g in failed)
        status = (
            "infeasible" if all(alone[g].status == "infeasible" for g in failed) else "no_solution"
        )
        return _infeasible(started, message, status)
    union = _union(problem, list(alone.values()), started)
    if union is not None:
        return union
    left = max(0.5, time_limit_s - (time.perf_counter() - started))
    joint = _solve_joint(problem, left, mip_rel_gap, slices)
    return replace(joint, seconds=time.perf_counter() - started)


def _group_problem(problem: Problem, group: str) -> Problem:
    return Problem(
        options=tuple(o for o in problem.options if o.group == group),
        rates={group: problem.rates[group]},
        availability=problem.availability,
        min_replicas={group: problem.min_replicas.get(group, 0)},
        budget=None,
        max_utilisation=problem.max_utilisation,
    )


def _union(problem: Problem, parts: list[Solution], started: float) -> Solution | None:
    """The groups' own plans together, if they fit the shared GPUs and budget; else None."""
    replicas = {name: n for sol in parts for name, n in sol.replicas.items()}
    by_name = {o.name: o for o in problem.options}
    used: dict[str, int] = {}
    for name, n in replicas.items():
        opt = by_name[name]
        used[opt.resource] = used.get(opt.resource, 0) + opt.units * n
    for resource, count in used.items():
        limit = problem.availability.get(resource)
        if limit is not None and count > limit:
            return None
    cost = sum(by_name[name].price * n for name, n in replicas.items())
    if problem.budget is not None and cost > problem.budget:
        return None
    bound = sum(sol.bound for sol in parts)
    optimal = all(sol.status == "optimal" for sol in parts)
    return Solution(
        status="optimal" if optimal else "time_limit",
        cost=cost,
        replicas=replicas,
        shares={k: v for sol in parts for k, v in sol.shares.items()},
        gap=max(0.0, (cost - bound) / cost) if cost > 0 else 0.0,
        bound=bound,
        seconds=time.perf_counter() - started,
        message="solved per model; the union fits the shared GPUs and budget",
    )


def _solve_joint(
    problem: Problem,
    time_limit_s: float,
    mip_rel_gap: float,
    slices: int | None,
) -> Solution:
    started = time.perf_counter()
    pairs = _share_columns(problem)
    missing = _uncovered(problem, pairs)
    if missing:
        return _infeasible(started, f"no option can serve: {', '.join(missing[:5])}")
    n_opt = len(problem.options)
    n_vars = n_opt + len(pairs)
    cost = np.array([o.price for o in problem.options] + [0.0] * len(pairs))
    integrality = np.array([1] * n_opt + [1 if slices else 0] * len(pairs))
    upper = np.concatenate([_replica_upper_bounds(problem), np.full(len(pairs), slices or 1.0)])
    rows = _build(problem, pairs, slices)
    result = milp(
        cost, integrality=integrality, bounds=Bounds(np.zeros(n_vars), upper),
        constraints=rows.constraint(n_vars),
        options={"time_limit": time_limit_s, "mip_rel_gap": mip_rel_gap, "disp": False},
    )  # fmt: skip
    if result.x is None:
        status = "no_solution" if result.status == 1 else "infeasible"
        return _infeasible(started, str(result.message), status)
    replicas = {o.name: round(float(result.x[i])) for i, o in enumerate(problem.options)}
    shares = {
        (problem.options[i].name, b): float(result.x[n_opt + k]) / (slices or 1)
        for k, (i, b) in enumerate(pairs)
        if result.x[n_opt + k] > 1e-9
    }
    total = sum(o.price * replicas[o.name] for o in problem.options)
    return Solution(
        status="optimal" if result.status == 0 else "time_limit",
        cost=total,
        replicas={k: v for k, v in replicas.items() if v > 0},
        shares=shares,
        gap=float(getattr(result, "mip_gap", 0.0) or 0.0),
        bound=float(getattr(result, "mip_dual_bound", total) or total),
        seconds=time.perf_counter() - started,
        message=str(result.message),
    )


def _infeasible(started: float, message: str, status: str = "infeasible") -> Solution:
    seconds = time.perf_counter() - started
    return Solution(status, math.inf, {}, {}, math.inf, math.inf, seconds, message)
