"""Even out a plan's traffic once its replica counts are fixed.

The MILP only cares about cost, so among the many traffic splits of an optimal fleet it
returns any one: a replica kept for ``min_replicas`` may get no traffic while another runs
at the headroom limit. With the replicas fixed, this linear program re-splits each model's
buckets to minimise that model's highest utilisation; the cost does not change, and no
configuration ends busier than the solver left the busiest one.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_array

from switchyard.deploy.milp import Problem, Solution


def balance(problem: Problem, solution: Solution) -> Solution:
    """``solution`` with shares that minimise each group's peak utilisation (same replicas)."""
    if not solution.feasible:
        return solution
    used = [(i, o) for i, o in enumerate(problem.options) if solution.replicas.get(o.name, 0)]
    pairs = [
        (i, b)
        for i, o in used
        for b, cap in enumerate(o.capacity)
        if cap > 0 and problem.rates[o.group][b] > 0
    ]
    groups = sorted({o.group for _, o in used})
    n_x, z_of = len(pairs), {g: len(pairs) + k for k, g in enumerate(groups)}
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    lo: list[float] = []
    hi: list[float] = []

    def add(entries: list[tuple[int, float]], low: float, high: float) -> None:
        for col, val in entries:
            rows.append(len(lo))
            cols.append(col)
            vals.append(val)
        lo.append(low)
        hi.append(high)

    by_bucket: dict[tuple[str, int], list[int]] = {}
    for k, (i, b) in enumerate(pairs):
        by_bucket.setdefault((problem.options[i].group, b), []).append(k)
    for ks in by_bucket.values():
        add([(k, 1.0) for k in ks], 1.0, 1.0)
    for i, opt in used:
        loads = [(k, problem.rates[opt.group][b] / opt.capacity[b])
                 for k, (j, b) in enumerate(pairs) if j == i]  # fmt: skip
        add([*loads, (z_of[opt.group], -float(solution.replicas[opt.name]))], -np.inf, 0.0)
    n_vars = n_x + len(groups)
    matrix = coo_array((vals, (rows, cols)), shape=(len(lo), n_vars)).tocsr()
    # Equalities and <= rows as two-sided bounds, the way linprog's HiGHS takes them.
    eq = np.array(lo) == np.array(hi)
    cost = np.concatenate([np.zeros(n_x), np.ones(len(groups))])
    result = linprog(
        cost, A_ub=matrix[~eq], b_ub=np.array(hi)[~eq], A_eq=matrix[eq], b_eq=np.array(lo)[eq],
        bounds=[(0, 1)] * n_x + [(0, None)] * len(groups), method="highs",
    )  # fmt: skip
    if result.status != 0:
        return solution  # the solver's own split stays valid
    shares = {
        (problem.options[i].name, b): float(result.x[k])
        for k, (i, b) in enumerate(pairs)
        if result.x[k] > 1e-9
    }
    return replace(solution, shares=shares)
