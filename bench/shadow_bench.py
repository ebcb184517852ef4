"""What shadow mode adds to the user's request: routed requests through a gateway with shadow
mode off (A) and one with it on (B: ``shadow.sample`` 1.0, every routed request also sent in
the background to the router's two other candidates; ``--sample`` for another fraction),
measured interleaved in one run.

Three simulators (``--preset``, default ``fast``: the H100 performance model) named after
the demo's RouterBench models run on core 1, with this load generator; the two gateways
(``switchyard serve``, one worker, the demo's router ``auto`` over the three models) run on
core 0, each idle while the other is measured. Both get the same prompt, ``"model": "auto"``,
``max_tokens`` ``--max-tokens``, one request at a time (c=1) over a kept-alive connection, in
blocks of ``--requests`` alternating A,B / B,A per repetition, with a pause between blocks so
B's last shadow calls end before A is measured. The user's latency is the time to the whole
answer (the last byte of a stream). B's shadow calls run on B's event loop next to the user's
requests, so B measures both the hand-off and the background work competing with the next
request. B's bounds are wide (concurrency 16, 1000 calls/s, 10^6 USD/h): no call is dropped.

Reported: p50 and p99 (ms) of each variant, median [min to max] over repetitions, B - A per
repetition, and B's shadow calls by status (read from its /metrics) to show they happened.
Writes ``bench/results/shadow_bench_<preset>[_stream].json``.

    .venv/bin/python bench/shadow_bench.py [--requests 200] [--reps 6] [--stream] [--quick]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchkit import (
    RESULTS,
    SWITCHYARD,
    cell,
    free_port,
    log,
    mmm,
    simulator_argv,
    source_digest,
    start_pinned,
    stop_group,
)

HOST = "127.0.0.1"
PROMPT = "Explain in two sentences why the sky is blue, for a ten-year-old."
VARIANTS = ("A", "B")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=200, help="requests per block")
    p.add_argument("--reps", type=int, default=6, help="A,B block pairs")
    p.add_argument("--preset", default="fast", help="simulator performance preset")
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--stream", action="store_true", help="streamed requests")
    p.add_argument("--sample", type=float, default=1.0, help="B's shadow.sample")
    p.add_argument("--pause-s", type=float, default=1.0, help="pause between blocks")
    p.add_argument("--quick", action="store_true", help="2 reps of 40 requests")
    p.add_argument("--cache-dir", type=Path, default=None, help="embedder cache (default ~)")
    args = p.parse_args()
    if args.quick:
        args.reps, args.requests = 2, 40
    return args


def write_config(path: Path, port: int, sims: dict[str, int], args: argparse.Namespace,
                 shadow: bool) -> None:  # fmt: skip
    from switchyard.cli.demo import demo_settings

    config = demo_settings(HOST, port, sims, args.cache_dir).model_dump(mode="json")
    config["server"].update(workers=1, log_level="warning")
    config["routing"].update(embedder_threads=1)
    config["upstream"].update(scrape_interval_s=0)
    if shadow:
        config["shadow"] = {"enabled": True, "sample": args.sample, "max_concurrent": 16,
                            "max_rate_per_s": 1000, "budget_usd_per_hour": 1e6,
                            "max_tokens": args.max_tokens}  # fmt: skip
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML


class Client:
    """One kept-alive HTTP/1.1 connection posting one fixed routed chat body."""

    def __init__(self, port: int, args: argparse.Namespace) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection(HOST, port, timeout=30)
        messages = [{"role": "user", "content": PROMPT}]
        body = {"model": "auto", "max_tokens": args.max_tokens, "stream": args.stream,
                "messages": messages}  # fmt: skip
        self.body = json.dumps(body).encode()
        self.headers = {"content-type": "application/json"}

    def post(self) -> tuple[int, float]:
        started = time.perf_counter()
        self.conn.request("POST", "/v1/chat/completions", self.body, self.headers)
        resp = self.conn.getresponse()
        resp.read()
        return resp.status, time.perf_counter() - started

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if self.post()[0] == 200:
                    return
            except (OSError, http.client.HTTPException):
                self.conn.close()
            time.sleep(0.3)
        raise SystemExit(f"gateway on port {self.port} not ready")

    def block(self, n: int) -> list[float]:
        """``n`` sequential requests on a fresh connection (opened untimed): ms each."""
        self.conn.close()
        self.post()
        out = []
        for _ in range(n):
            status, took = self.post()
            if status != 200:
                raise SystemExit(f"HTTP {status} from port {self.port}")
            out.append(took * 1000)
        return out


def shadow_counts(port: int) -> dict[str, float]:
    """B's shadow counters from its /metrics, by series and labels."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("switchyard_shadow_") and "_total" in line
    }


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def measure(clients: dict[str, Client], args: argparse.Namespace) -> dict[str, Any]:
    per_rep: dict[str, dict[str, list[float]]] = {v: {"p50": [], "p99": []} for v in VARIANTS}
    pooled: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for rep in range(args.reps):
        order = VARIANTS if rep % 2 == 0 else VARIANTS[::-1]
        for v in order:
            took = clients[v].block(args.requests)
            pooled[v] += took
            per_rep[v]["p50"].append(statistics.median(took))
            per_rep[v]["p99"].append(pct(took, 99))
            log(f"rep {rep} {v}: p50 {per_rep[v]['p50'][-1]:.2f} ms, "
                f"p99 {per_rep[v]['p99'][-1]:.2f} ms")  # fmt: skip
            time.sleep(args.pause_s)  # B's last shadow calls end before the next block
    out: dict[str, Any] = {}
    for v in VARIANTS:
        out[v] = {k: mmm(vals) for k, vals in per_rep[v].items()}
        out[v]["pooled"] = {"p50": statistics.median(pooled[v]), "p99": pct(pooled[v], 99)}
    for k in ("p50", "p99"):
        diffs = [b - a for a, b in zip(per_rep["A"][k], per_rep["B"][k], strict=True)]
        out[f"B-A {k}"] = mmm(diffs)
    return out


def report(result: dict[str, Any], counts: dict[str, float], args: argparse.Namespace) -> None:
    kind = "stream" if args.stream else "json"
    print(f"\n{kind}, preset {args.preset}, max_tokens {args.max_tokens}: "
          f"{args.reps} reps x {args.requests} requests per variant, c=1\n")  # fmt: skip
    print("| variant | p50 ms | p99 ms | pooled p50 | pooled p99 |")
    print("|---|---|---|---|---|")
    for v, name in (("A", "A shadow off"), ("B", f"B shadow on, sample {args.sample:g}")):
        r = result[v]
        print(f"| {name} | {cell(r['p50'])} | {cell(r['p99'])} | "
              f"{r['pooled']['p50']:.2f} | {r['pooled']['p99']:.2f} |")  # fmt: skip
    print(f"| B - A | {cell(result['B-A p50'])} | {cell(result['B-A p99'])} | | |")
    print("\nB's shadow counters:")
    for name, value in sorted(counts.items()):
        print(f"  {name} {value:g}")


def main() -> None:
    args = parse_args()
    from switchyard.cli.demo import DEMO_MODELS

    procs = []
    work = Path(tempfile.mkdtemp(prefix="shadow-bench-"))
    try:
        sims = {m.name: free_port() for m in DEMO_MODELS}
        for name, port in sims.items():
            argv = simulator_argv(name, port, args.preset)
            procs.append(start_pinned(argv, 1, work / f"sim-{port}.log"))
        ports = {"A": free_port(), "B": free_port()}
        for v, port in ports.items():
            config = work / f"gateway-{v}.yaml"
            write_config(config, port, sims, args, shadow=v == "B")
            argv = [str(SWITCHYARD), "serve", "--config", str(config), "--workers", "1"]
            procs.append(start_pinned(argv, 0, work / f"gateway-{v}.log"))
        clients = {v: Client(port, args) for v, port in ports.items()}
        for client in clients.values():
            client.wait_ready()
            client.block(50)  # warm: connections, the router's first batches
        result = measure(clients, args)
        counts = shadow_counts(ports["B"])
        off = shadow_counts(ports["A"])
    finally:
        for proc in procs:
            stop_group(proc)
    report(result, counts, args)
    assert not any(off.values()), f"gateway A shadowed: {off}"
    RESULTS.mkdir(exist_ok=True)
    sample = "" if args.sample == 1.0 else f"_sample{args.sample:g}"
    name = f"shadow_bench_{args.preset}{'_stream' if args.stream else ''}{sample}.json"
    (RESULTS / name).write_text(json.dumps({
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "args": {k: str(v) for k, v in vars(args).items()},
        "result": result, "shadow_counters": counts, "source": source_digest(),
    }, indent=2), encoding="utf-8")  # fmt: skip


if __name__ == "__main__":
    main()
