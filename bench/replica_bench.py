"""Load-aware replica choice, micro-benchmarked on one core: what a scrape and a pick cost.

What is measured
  * Reading one realistic vLLM ``/metrics`` page into a ``PageReading``: the v0.10 page of a
    two-engine data-parallel server (75 kB, 611 samples, every vLLM histogram) and a v0.6
    page (18 kB), from ``tests/backends/fixtures/``; ``read_page`` (the line scanner the
    scraper uses) against ``read_page_prometheus`` (prometheus_client's text parser), and
    ``next_snapshot`` on top (counter deltas). The scraper pays this once per endpoint per
    interval, off the request path.
  * One ``choose_replica`` among 3 and 16 endpoints with fresh snapshots of varied load:
    power of two choices alone, and with a prefix-affinity key (bounded-load rendezvous
    hashing over all endpoints); equal weights and mixed weights. This is on the request path.

Each figure is the median over ``--repeats`` of the mean per-call time of a batch of calls
(perf_counter_ns), in microseconds, with min and max. Writes
``bench/results/replica/replica_bench.json`` (machine info included) and prints a table.

    python bench/replica_bench.py [--repeats 200] [--quick] [--out PATH]
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from routerkit import LoadProbe, machine_info, write_results

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO))

from switchyard.backends.engine_state import EngineSnapshot, next_snapshot  # noqa: E402
from switchyard.backends.replica import EndpointView, affinity_key, choose_replica  # noqa: E402
from switchyard.backends.vllm_metrics import read_page, read_page_prometheus  # noqa: E402

FIXTURES = REPO / "tests" / "backends" / "fixtures"
PAGES = {"v0.10 dp2 (75 kB)": "vllm_v0.10_dp2.txt", "v0.6 (18 kB)": "vllm_v0.6.txt"}
OUT = BENCH_DIR / "results" / "replica" / "replica_bench.json"


def per_call_us(fn: Callable[[], object], calls: int, repeats: int) -> dict[str, float]:
    """Median [min, max] over ``repeats`` of the mean time of ``calls`` calls, in µs."""
    for _ in range(max(calls // 10, 1)):
        fn()  # warm-up: caches, branch predictors, lazily built regexes
    means = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        means.append((time.perf_counter_ns() - started) / calls / 1000)
    return {
        "median_us": round(statistics.median(means), 3),
        "min_us": round(min(means), 3),
        "max_us": round(max(means), 3),
    }


def parse_figures(repeats: int) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for label, name in PAGES.items():
        text = (FIXTURES / name).read_text()
        assert read_page(text) == read_page_prometheus(text)
        out[label] = {
            "read_page": per_call_us(partial(read_page, text), 10, repeats),
            # ~50x slower: fewer batches keep the run short.
            "read_page_prometheus": per_call_us(
                partial(read_page_prometheus, text), 2, max(repeats // 4, 5)
            ),
            "read_page+next_snapshot": per_call_us(partial(_snapshot, text), 10, repeats),
        }
    return out


def _snapshot(text: str) -> EngineSnapshot:
    return next_snapshot(read_page(text), 0.0)


def _picker(views: list[EndpointView], keys: list[int] | None) -> Callable[[], object]:
    rng = random.Random(0)
    if keys is None:
        return lambda: choose_replica(views, rng, now=100.0)
    cycle = itertools.cycle(keys)
    return lambda: choose_replica(views, rng, now=100.0, affinity=next(cycle))


def endpoint_views(n: int, weighted: bool, rng: random.Random) -> list[EndpointView]:
    now = 100.0
    views = []
    for i in range(n):
        running = rng.randint(0, 256)
        snap = EngineSnapshot(
            waiting=rng.randint(0, 20) if running == 256 else 0,
            running=running,
            scraped_at=now - rng.random(),
            kv_cache_usage=running / 300,
        )
        weight = rng.choice((0.5, 1.0, 2.0)) if weighted else 1.0
        views.append(
            EndpointView(f"http://10.0.0.{i}:8000/v1", in_flight=rng.randint(0, 8),
                         sent_since_snapshot=rng.randint(0, 3), snapshot=snap, weight=weight)
        )  # fmt: skip
    return views


def choice_figures(repeats: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    keys = [affinity_key(f"system prompt of tenant {i}") for i in range(64)]
    for n in (3, 16):
        for weighted in (False, True):
            views = endpoint_views(n, weighted, random.Random(n))
            label = f"{n} endpoints, {'mixed' if weighted else 'equal'} weights"
            out[f"{label}, p2c"] = per_call_us(_picker(views, None), 1000, repeats)
            out[f"{label}, p2c + affinity"] = per_call_us(_picker(views, keys), 1000, repeats)
    return out


def table(results: dict[str, Any]) -> str:
    lines = ["| what | median µs | min–max µs |", "|---|---:|---:|"]
    for page, figures in results["parse"].items():
        for how, f in figures.items():
            lines.append(f"| parse {page}: {how} | {f['median_us']:.1f} | "
                         f"{f['min_us']:.1f}–{f['max_us']:.1f} |")  # fmt: skip
    for label, f in results["choose"].items():
        lines.append(f"| choose_replica, {label} | {f['median_us']:.2f} | "
                     f"{f['min_us']:.2f}–{f['max_us']:.2f} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=200, help="timed batches per figure")
    parser.add_argument("--quick", action="store_true", help="smoke run: 10 repeats")
    parser.add_argument("--out", type=Path, default=OUT, help=f"JSON results (default {OUT})")
    args = parser.parse_args(argv)
    repeats = 10 if args.quick else args.repeats
    probe = LoadProbe()
    results: dict[str, Any] = {
        "parse": parse_figures(repeats),
        "choose": choice_figures(repeats),
        "repeats": repeats,
    }
    results["machine"] = machine_info(probe, ["prometheus-client"])
    write_results(table(results), results, args.out)


if __name__ == "__main__":
    main()
