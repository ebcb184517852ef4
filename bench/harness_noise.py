"""Foreign load on the gateway's core during each run of a shared-harness result file.

``run_bench.py`` checks that the cores are idle *before* each run, but other jobs on a shared
machine may start during one. Its result JSON has, per run, how busy core 0 was and how much
CPU the gateway used, so the difference is CPU that other processes took from the gateway's
core while it was measured::

    foreign % = busy % of the gateway core - 100 * gateway CPU seconds / wall seconds

Prints a Markdown table of the gateway runs (foreign %, p50/p95, req/s), so that a latency
tail can be told apart from a neighbour's test suite::

    python bench/harness_noise.py bench/results/switchyard.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def foreign_pct(run: dict[str, Any], core: str) -> float:
    return float(run["cpu_busy_pct"][core] - 100 * run["gateway_cpu_s"] / run["wall_s"])


def rows(result: dict[str, Any]) -> list[str]:
    core = f"cpu{result['meta']['args']['gateway_cpu']}"
    out = []
    for run in result["runs"]:
        if run["target"] != "gateway":
            continue
        res = run["result"]
        lat = res.get("lat_ms") or res.get("ttfb_ms") or {}
        out.append(
            f"| {run['rep']} | {run['mode']} | {run['concurrency']} "
            f"| {foreign_pct(run, core):.0f} | {lat.get('p50', 0):.3f} | {lat.get('p95', 0):.3f} "
            f"| {res['rps']:.0f} |"
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("results", nargs="+", type=Path, help="run_bench.py result JSON files")
    a = ap.parse_args()
    for path in a.results:
        result = json.loads(path.read_text())
        print(f"\n{result['meta']['gateway_name']} ({result['meta']['date']}), gateway runs:\n")
        print("| rep | mode | c | foreign load on gateway core % | p50 ms | p95 ms | req/s |")
        print("|---|---|---|---|---|---|---|")
        print("\n".join(rows(result)))


if __name__ == "__main__":
    main()
