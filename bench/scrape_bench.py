"""Does scraping vLLM's /metrics cost requests anything? Two identical gateways in front of one
zero-latency simulator, one scraping its endpoint every ``--interval`` seconds (default 0.1 s,
ten times the default ``upstream.scrape_interval_s``), the other not scraping at all
(``scrape_interval_s: 0``, it falls back to its own in-flight counts).

Both gateways are pinned to core 0 (one worker each; only the one under load is busy), the
simulator and this client to core 1. Non-streaming chat requests, ``max_tokens`` 1, one at a
time over a kept-alive connection, in blocks alternating ON,OFF / OFF,ON per repetition.
Reported: p50/p99 of each and ON − OFF, median [min–max] over repetitions. The target is
"no measurable latency": the difference within the repetitions' spread.

    .venv/bin/python bench/scrape_bench.py [--requests 2000] [--reps 6] [--interval 0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchkit import (
    RESULTS,
    SWITCHYARD,
    cell,
    free_port,
    mmm,
    simulator_argv,
    source_digest,
    stop_group,
)
from limits_bench import pct
from routed_bench import Client, launch
from routerkit import LoadProbe, loadavg_text, machine_info

HOST = "127.0.0.1"
MODEL = "m"
QS = ("p50", "p99")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--requests", type=int, default=2000, help="requests per block")
    p.add_argument("--reps", type=int, default=6, help="repetitions of the ON,OFF pair")
    p.add_argument("--interval", type=float, default=0.1, help="scrape interval of ON (s)")
    p.add_argument("--out", type=Path, default=RESULTS / "scrape_bench.json")
    return p.parse_args(argv)


def write_config(path: Path, port: int, sim_port: int, interval: float) -> None:
    config = {
        "server": {"host": HOST, "port": port, "workers": 1, "log_level": "warning"},
        "upstream": {"scrape_interval_s": interval},
        "models": [
            {
                "name": MODEL,
                "price_input_per_mtok": 1,
                "price_output_per_mtok": 2,
                "endpoints": [{"url": f"http://{HOST}:{sim_port}/v1"}],
            }
        ],
    }
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML


def start(args: argparse.Namespace, work: Path, procs: list[Any], pin: bool) -> dict[str, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    gw_cpu, other = (0, 1) if pin else (None, None)
    sim_port = free_port()
    procs.append(launch(simulator_argv(MODEL, sim_port), other, work / "sim.log", env))
    ports = {"ON": free_port(), "OFF": free_port()}
    for name, port in ports.items():
        config = work / f"{name}.yaml"
        write_config(config, port, sim_port, args.interval if name == "ON" else 0.0)
        argv = [str(SWITCHYARD), "serve", "-c", str(config)]
        procs.append(launch(argv, gw_cpu, work / f"gateway-{name}.log", env))
    for port in ports.values():
        Client(port, MODEL, "hello").wait_ready(time.monotonic() + 60)
    return ports


def run(args: argparse.Namespace, clients: dict[str, Client]) -> list[dict[str, Any]]:
    for client in clients.values():
        client.block(200)
    reps = []
    for rep in range(args.reps):
        names = list(clients) if rep % 2 == 0 else list(reversed(clients))
        row: dict[str, Any] = {"rep": rep, "order": ",".join(names)}
        for name in names:
            lat = clients[name].block(args.requests)
            row[name] = {q: round(pct(lat, int(q[1:]) / 100), 4) for q in QS}
        row["added"] = {q: round(row["ON"][q] - row["OFF"][q], 4) for q in QS}
        print(f"rep {rep} {json.dumps(row)}", file=sys.stderr, flush=True)
        reps.append(row)
    return reps


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    probe = LoadProbe()
    pin = shutil.which("taskset") is not None and (os.cpu_count() or 1) > 1
    if pin:
        os.sched_setaffinity(0, {1})
    procs: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="scrape-bench-") as tmp:
        try:
            ports = start(args, Path(tmp), procs, pin)
            clients = {name: Client(port, MODEL, "hello") for name, port in ports.items()}
            reps = run(args, clients)
        finally:
            for proc in reversed(procs):
                stop_group(proc)
    meta = machine_info(probe, ("uvicorn", "aiohttp"))
    report("scrape_bench", args, reps, meta, f"ON: scraping every {args.interval:g} s",
           "OFF: no scraping")  # fmt: skip
    return 0


def report(
    bench: str, args: argparse.Namespace, reps: list[dict[str, Any]], meta: dict[str, Any],
    on: str, off: str,
) -> None:  # fmt: skip
    """Write the A/B result JSON to ``args.out`` and print its Markdown table."""
    summary = {k: {q: mmm([r[k][q] for r in reps]) for q in QS} for k in ("ON", "OFF", "added")}
    result = {
        "bench": bench,
        "command": " ".join(["python", *sys.argv]),
        "machine": meta,
        "source": source_digest(),
        "args": vars(args) | {"out": str(args.out)},
        "summary": summary,
        "reps": reps,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"| c=1, ms (median [min–max] over {len(reps)} reps × {args.requests} req) | p50 | p99 |")
    print("|---|---|---|")
    for label, key in ((on, "ON"), (off, "OFF"), ("ON − OFF", "added")):
        print(f"| {label} | " + " | ".join(cell(summary[key][q], 3) for q in QS) + " |")
    print(f"\nLoad average {loadavg_text(meta)}.\nwrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
