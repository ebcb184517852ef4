"""Mélange's problem format and its integer-slice mode, for comparison with fractional routing.

Mélange (github.com/tyler-griggs/melange-release) profiles, per GPU type, the highest
request rate it sustains for each (input size, output size) bucket, and solves an ILP in
which each slice of a bucket's traffic goes wholly to one GPU type. Its example file::

    {"gpu_info": {"A10G": {"cost": 1.01, "tputs": [[2, 1], [5, 2]]}, ...},
     "workload_distribution": [[0.2, 0.1], [0.5, 0.2]],
     "total_request_rate": 30.0, "slice_factor": 1}

Buckets are the cells of the 2-D tables, flattened row by row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from switchyard.deploy.milp import Option, Problem, Solution, solve

_GROUP = "workload"


@dataclass(frozen=True, slots=True)
class MelangeCase:
    problem: Problem
    slice_factor: int


def _flat(table: list[list[float]]) -> tuple[float, ...]:
    return tuple(float(v) for row in table for v in row)


def parse_melange(doc: dict[str, Any]) -> MelangeCase:
    """The example's GPU types as options (one GPU each) over the flattened buckets."""
    shares = _flat(doc["workload_distribution"])
    total = float(doc["total_request_rate"])
    options = tuple(
        Option(name, _GROUP, name, 1, float(info["cost"]), _flat(info["tputs"]))
        for name, info in doc["gpu_info"].items()
    )
    rates = {_GROUP: tuple(total * s for s in shares)}
    return MelangeCase(Problem(options, rates), int(doc.get("slice_factor", 1)))


def load_melange(path: Path) -> MelangeCase:
    return parse_melange(json.loads(path.read_text()))


def solve_melange(case: MelangeCase, time_limit_s: float = 30.0) -> Solution:
    """Mélange's ILP: every slice of every bucket on exactly one GPU type."""
    return solve(case.problem, time_limit_s, mip_rel_gap=0.0, slices=max(case.slice_factor, 1))


def solve_fractional(case: MelangeCase, time_limit_s: float = 30.0) -> Solution:
    """The same table with fractional routing: any share of a bucket on any GPU type."""
    return solve(case.problem, time_limit_s, mip_rel_gap=0.0)
