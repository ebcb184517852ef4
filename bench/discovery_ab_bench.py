"""Does endpoint discovery cost requests anything? Two identical gateways in front of one
zero-latency simulator on 127.0.0.2: ON finds it by DNS (a real dnsmasq on a loopback port),
re-resolving every ``--interval`` seconds (default 0.1 s, 50x the chart's 5 s); OFF lists its
URL. Both scrape its /metrics at the default 1 s. Otherwise as bench/scrape_bench.py: gateways
pinned to core 0, simulator, dnsmasq and this client to core 1, non-streaming chat requests
with ``max_tokens`` 1, one at a time over a kept-alive connection, in blocks alternating
ON,OFF / OFF,ON per repetition; p50/p99 of each and ON − OFF, median [min–max] over the
repetitions. Target: no measurable latency (the difference within the repetitions' spread).

    .venv/bin/python bench/discovery_ab_bench.py [--requests 2000] [--reps 6] [--interval 0.1]
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

from benchkit import RESULTS, SWITCHYARD, free_port, simulator_argv, stop_group
from discovery_bench import Dns
from routed_bench import Client, launch
from routerkit import LoadProbe, machine_info
from scrape_bench import report, run

POD = "127.0.0.2"
MODEL = "m"
NAME = "pool.bench.test"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--requests", type=int, default=2000, help="requests per block")
    p.add_argument("--reps", type=int, default=6, help="repetitions of the ON,OFF pair")
    p.add_argument("--interval", type=float, default=0.1, help="DNS re-resolution of ON (s)")
    p.add_argument("--out", type=Path, default=RESULTS / "discovery" / "discovery_ab_bench.json")
    return p.parse_args(argv)


def write_config(path: Path, port: int, endpoint: dict[str, Any]) -> None:
    config = {
        "server": {"host": "127.0.0.1", "port": port, "workers": 1, "log_level": "warning"},
        "models": [
            {"name": MODEL, "price_input_per_mtok": 1, "price_output_per_mtok": 2,
             "endpoints": [endpoint]}
        ],
    }  # fmt: skip
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML


def start(
    args: argparse.Namespace, work: Path, procs: list[Any], dns: Dns, pin: bool
) -> dict[str, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    gw_cpu, other = (0, 1) if pin else (None, None)
    sim_port = free_port()
    argv = [*simulator_argv(MODEL, sim_port), "--host", POD]
    procs.append(launch(argv, other, work / "sim.log", env))
    dns.start({NAME: [POD]})
    discover = {"name": NAME, "port": sim_port, "nameserver": dns.nameserver,
                "interval_s": args.interval}  # fmt: skip
    endpoints = {"ON": {"discover": discover}, "OFF": {"url": f"http://{POD}:{sim_port}/v1"}}
    ports = {"ON": free_port(), "OFF": free_port()}
    for name, port in ports.items():
        config = work / f"{name}.yaml"
        write_config(config, port, endpoints[name])
        argv = [str(SWITCHYARD), "serve", "-c", str(config)]
        procs.append(launch(argv, gw_cpu, work / f"gateway-{name}.log", env))
    for port in ports.values():
        Client(port, MODEL, "hello").wait_ready(time.monotonic() + 60)
    return ports


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    probe = LoadProbe()
    pin = shutil.which("taskset") is not None and (os.cpu_count() or 1) > 1
    if pin:
        os.sched_setaffinity(0, {1})
    procs: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="discovery-ab-") as tmp:
        dns = Dns(Path(tmp))
        try:
            ports = start(args, Path(tmp), procs, dns, pin)
            clients = {name: Client(port, MODEL, "hello") for name, port in ports.items()}
            reps = run(args, clients)
        finally:
            for proc in reversed(procs):
                stop_group(proc)
            dns.stop()
    meta = machine_info(probe, ("uvicorn", "aiohttp", "dnspython"))
    report("discovery_ab_bench", args, reps, meta,
           f"ON: pod discovered by DNS, re-resolved every {args.interval:g} s",
           "OFF: pod URL listed")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
