"""What the one decision rule (``switchyard/routers/policy.py``) costs, against the policy of
an earlier commit, side by side in one run on one core.

* ``decide``: one prompt, a ``Constraints`` allow-list and a zero load penalty, as the gateway
  calls it for every routed request (``RouterService._choose``), 3 and 11 candidates;
* ``choose``: a RouterBench-sized evaluation sweep (953 prompts x 11 models, 101 finite λ).

The earlier policy is read with ``git show REV:switchyard/routers/policy.py``; the two are
timed in alternating blocks and each figure is the median over ``--repeats`` blocks::

    python bench/decision_rule_bench.py --before 9e7f11d [--repeats 21]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from routerkit import LoadProbe, loadavg_text, machine_info, write_results

from switchyard.routers import policy

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "decision_rule.json"


def policy_at(rev: str) -> ModuleType:
    """The policy module as it was at git revision ``rev``."""
    source = subprocess.run(
        ["git", "show", f"{rev}:switchyard/routers/policy.py"],
        cwd=BENCH_DIR.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "policy_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("policy_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["policy_before"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls * 1e6


def side_by_side(
    fns: dict[str, Callable[[], object]], calls: int, repeats: int
) -> dict[str, float]:
    """Median µs per call of each function, timed in alternating blocks."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(per_call_us(fn, calls))
    return {name: statistics.median(v) for name, v in samples.items()}


def decide_case(mod: ModuleType, m: int) -> Callable[[], object]:
    rng = np.random.default_rng(m)
    models = [f"model-{j}" for j in range(m)]
    quality, cost = rng.random((1, m)), rng.random((1, m)) * 1e-3
    constraints = mod.Constraints(allowed=frozenset(models))
    penalty = np.zeros(m)
    return lambda: mod.decide(models, quality, cost, 5.0, constraints, {}, penalty)


def sweep_case(mod: ModuleType) -> Callable[[], object]:
    rng = np.random.default_rng(0)
    quality, cost = rng.random((953, 11)), rng.random((953, 11)) * 1e-2
    lambdas = [0.0, *np.geomspace(1e-2, 1e3, 100).tolist()]
    return lambda: [mod.choose(quality, cost, lam) for lam in lambdas]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision of the earlier policy")
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    before = policy_at(args.before)
    probe = LoadProbe()
    rows: dict[str, dict[str, float]] = {}
    for m in (3, 11):
        fns = {"before": decide_case(before, m), "after": decide_case(policy, m)}
        rows[f"decide, 1 prompt x {m} candidates (µs)"] = side_by_side(fns, 2000, args.repeats)
    fns = {"before": sweep_case(before), "after": sweep_case(policy)}
    sweep = side_by_side(fns, 1, args.repeats)
    rows["choose, 953 x 11 over 101 λ (ms)"] = {k: v / 1e3 for k, v in sweep.items()}
    meta = machine_info(probe, ("numpy",))
    lines = ["| call | before | after | after / before |", "|---|---:|---:|---:|"]
    for name, r in rows.items():
        ratio = r["after"] / r["before"]
        lines.append(f"| {name} | {r['before']:.1f} | {r['after']:.1f} | {ratio:.2f} |")
    lines.append(f"\nbefore = {args.before}; load average {loadavg_text(meta)}")
    results: dict[str, Any] = {"before": args.before, "rows": rows, "machine": meta}
    write_results("\n".join(lines), results, RESULTS)


if __name__ == "__main__":
    main()
