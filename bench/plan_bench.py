"""The placement planner's benchmark (issue 6): calibration error, Mélange's example, scale,
and single-GPU-type versus mixed plans for chat workloads.

Parts (run one with its name, or all by default):

- ``calibrate``: fit the roofline's efficiencies per GPU on Vidur's GEMM timings
  (``../shared/data/perf/vidur``); median, 90th-percentile and max relative error per GPU.
- ``melange``: Mélange's example (``../shared/data/placement/melange_example.json``) solved
  in the Mélange-compatible integer-slice mode and with fractional routing.
- ``scale``: 10 models x 8 GPU types x 16 request-size buckets, planned from scratch
  (candidate generation + MILP, 30 s solver limit) ``--repeats`` times; wall time and gap.
- ``compare``: for a chat-like workload on Llama-3.1-8B and on Qwen3-30B-A3B alone, at
  several rates, the cheapest single-GPU-type plan beside the mixed plan.

Raw results go to ``bench/results/plan/<part>.json``, a summary to ``summary.md``.
Example: ``.venv/bin/python bench/plan_bench.py all --repeats 3``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from switchyard.deploy.catalog import load_gpus
from switchyard.deploy.melange import load_melange, solve_fractional, solve_melange
from switchyard.deploy.perf.calibrate import calibrate
from switchyard.deploy.plan import Catalog, check_plan, make_plan
from switchyard.deploy.workload import Workload, load_workload, parse_workload
from switchyard.routers.datasets import data_dir

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "plan"
CHAT = REPO / "switchyard" / "data" / "workloads" / "chat.yaml"
GPUS = ("L4", "A10G", "L40S", "A100-40GB", "A100-80GB", "H100-80GB", "H200", "MI300X")


def _write(name: str, doc: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {"part": name, "host": platform.node(), "python": platform.python_version(), **doc}
    (RESULTS / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")


def run_calibrate(args: argparse.Namespace) -> dict[str, Any]:
    reports = calibrate(args.data_dir / "perf" / "vidur", load_gpus())
    rows = [
        {"gpu": r.gpu, "points": r.points, "compute_eff": r.efficiency.compute,
         "memory_eff": r.efficiency.memory,
         "kernel_overhead_us": round(r.efficiency.kernel_overhead_s * 1e6, 2),
         "sharpness": r.efficiency.sharpness,
         "median_error": round(r.median_error, 4), "p90_error": round(r.p90_error, 4),
         "worst_decile_mean_error": round(r.worst_decile_error, 4),
         "max_error": round(r.max_error, 4)}
        for r in reports
    ]  # fmt: skip
    return {"gpus": rows}


def run_melange(args: argparse.Namespace) -> dict[str, Any]:
    case = load_melange(args.data_dir / "placement" / "melange_example.json")
    out = {}
    for mode, solver in (("melange_slices", solve_melange), ("fractional", solve_fractional)):
        sol = solver(case)
        shares = {f"{k[0]}#{k[1]}": round(v, 4) for k, v in sol.shares.items()}
        out[mode] = {"cost_per_hour": round(sol.cost, 4), "replicas": sol.replicas,
                     "status": sol.status, "seconds": round(sol.seconds, 4),
                     "shares": shares}  # fmt: skip
    return out


def scale_workload(seed: int, models: list[str]) -> Workload:
    """10 models, 16 buckets (4 prompt x 4 output sizes), seeded weights and rates."""
    rng = random.Random(seed)
    sizes = [(i, o) for i in (128, 512, 2048, 8192) for o in (64, 256, 512, 1024)]
    demands = [
        {"name": m, "rate": round(rng.uniform(2, 40), 2), "min_replicas": 1,
         "buckets": [{"input": i, "output": o, "weight": round(rng.uniform(0.1, 1), 3)}
                     for i, o in sizes]}
        for m in models
    ]  # fmt: skip
    return parse_workload({
        "targets": {"ttft_s": 5.0, "tpot_s": 0.08}, "headroom": 0.2,
        "gpus": {"L4": 256, "A10G": 256, "L40S": 128, "A100-40GB": 64, "A100-80GB": 64,
                 "H100-80GB": 64, "H200": 32, "MI300X": 32},
        "time_limit_s": 30, "mip_rel_gap": 1e-4, "models": demands,
    })  # fmt: skip


def run_scale(args: argparse.Namespace) -> dict[str, Any]:
    models = sorted(Catalog.load().models)[:10]
    runs = []
    for rep in range(args.repeats):
        catalog = Catalog.load()  # cold: candidates rated from scratch every repetition
        started = time.perf_counter()
        plan = make_plan(scale_workload(rep, models), catalog)
        wall = time.perf_counter() - started
        sol = plan.solution
        runs.append({"seed": rep, "wall_s": round(wall, 3), "solve_s": round(sol.seconds, 3),
                     "status": sol.status, "gap": sol.gap, "cost_per_hour": round(sol.cost, 2),
                     "dual_bound": round(sol.bound, 2), "generated": plan.generated,
                     "candidates": plan.candidates, "check_problems": len(check_plan(plan)),
                     "gpus_by_type": plan.gpus_by_type()})  # fmt: skip
        print(f"  scale seed {rep}: {wall:.2f} s, {sol.status}, gap {sol.gap:.4%}", flush=True)
    walls = [r["wall_s"] for r in runs]
    return {"models": models, "gpus": list(GPUS), "buckets": 16, "runs": runs,
            "wall_s_median": statistics.median(walls), "wall_s_max": max(walls)}  # fmt: skip


def _single_model(base: Workload, model: str, rate: float) -> Workload:
    demand = next(d for d in base.models if d.model == model)
    return replace(base, models=(replace(demand, rate=rate),), mip_rel_gap=0.0)


def _compare_row(work: Workload, catalog: Catalog, gpus: tuple[str, ...]) -> dict[str, Any]:
    work = replace(work, gpus={g: work.gpus.get(g) for g in gpus})
    mixed = make_plan(work, catalog)
    singles = {g: make_plan(work, catalog, only_gpu=g).cost_per_hour for g in gpus}
    best = min(singles, key=lambda g: singles[g])
    return {
        "mixed_cost": round(mixed.cost_per_hour, 2), "mixed_gpus": mixed.gpus_by_type(),
        "mixed_configs": [f"{c.replicas} x {c.cfg.name}" for c in mixed.configs],
        "best_single_gpu": best, "best_single_cost": round(singles[best], 2),
        "single_costs": {g: round(c, 2) if math.isfinite(c) else None
                         for g, c in singles.items()},
        "saving": round(1 - mixed.cost_per_hour / singles[best], 4),
    }  # fmt: skip


def run_compare(args: argparse.Namespace) -> dict[str, Any]:
    base = load_workload(CHAT)
    catalog = Catalog.load()
    # MI300X borrows the H100 fit (no Vidur profile), so it is also compared without it.
    variants = {"all_gpus": GPUS, "without_mi300x": tuple(g for g in GPUS if g != "MI300X")}
    rows = []
    for model in ("Llama-3.1-8B", "Qwen3-30B-A3B"):
        for rate in args.rates:
            work = _single_model(base, model, rate)
            for variant, gpus in variants.items():
                row = {"model": model, "rate": rate, "gpus": variant}
                rows.append({**row, **_compare_row(work, catalog, gpus)})
    return {"workload": str(CHAT.relative_to(REPO)), "rows": rows}


PARTS = {"calibrate": run_calibrate, "melange": run_melange, "scale": run_scale,
         "compare": run_compare}  # fmt: skip


def summary() -> str:
    lines = ["# Placement planner benchmark (raw data: the JSON files beside this one)", ""]
    for name in PARTS:
        path = RESULTS / f"{name}.json"
        if path.exists():
            doc = json.loads(path.read_text())
            doc.pop("host", None)
            lines += [f"## {name}", "", "```json", json.dumps(doc, indent=1)[:4000], "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("part", nargs="?", default="all", choices=[*PARTS, "all"])
    parser.add_argument("--repeats", type=int, default=3, help="Repetitions of the scale run.")
    parser.add_argument("--rates", type=float, nargs="+", default=[2.0, 20.0, 100.0],
                        help="Request rates (req/s) of the compare part.")  # fmt: skip
    parser.add_argument("--data-dir", type=Path, default=data_dir(), help="Shared data folder.")
    args = parser.parse_args(argv)
    for name in PARTS if args.part == "all" else [args.part]:
        print(f"{name} ...", flush=True)
        started = time.perf_counter()
        doc = PARTS[name](args)
        doc["command"] = " ".join(
            [".venv/bin/python", "bench/plan_bench.py", *(argv or sys.argv[1:])]
        )
        doc["bench_seconds"] = round(time.perf_counter() - started, 2)
        _write(name, doc)
        print(json.dumps(doc, indent=1)[:3000], flush=True)
    (RESULTS / "summary.md").write_text(summary())


if __name__ == "__main__":
    main()
