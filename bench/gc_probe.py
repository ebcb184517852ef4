"""Where the gateway's tail latency goes: Python's garbage collector, measured on the hot path.

Runs the real gateway app (``switchyard.gateway.app.create_app``, one worker, uvicorn as in
``switchyard.gateway.serve``) pinned to core 0 in front of the shared harness's fake backend (core
1), with ``gc.callbacks`` timing every collection, and loads it with wrk (``chat.lua``) at each
concurrency. Each variant is measured in turn (order alternating between repetitions):

* ``default``: the product as it is;
* ``freeze``: plus ``gc.collect(); gc.freeze()`` once the app has started, so the objects
  created by imports and startup are no longer traversed by full collections;
* ``unfreeze``: plus ``gc.unfreeze()`` once the app has started, which undoes a freeze the
  product may do itself (the state before it did).

Prints a Markdown table (req/s, latency p50/p99, collections per generation and their time,
longest pause) and writes ``bench/results/gc_probe.json``. A diagnostic, not a target::

    python bench/gc_probe.py [--concurrency 1,32] [--duration 10] [--repeats 2]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import benchkit as bk

from switchyard.gateway.serve import uvicorn_options
from switchyard.gateway.settings import ServerConfig

VARIANTS = ("default", "freeze", "unfreeze")
WORKDIR = Path("/tmp/switchyard-bench")


# ---------------------------------------------------------------- inside the gateway process


class GcTimer:
    """Collects the duration of every garbage collection, by generation."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._start)

    def reset(self) -> None:
        for pauses in self.pauses.values():
            pauses.clear()

    def stats(self) -> dict[str, Any]:
        return {
            f"gen{g}": {
                "count": len(p),
                "total_ms": round(1000 * sum(p), 1),
                "max_ms": round(1000 * max(p), 2) if p else 0.0,
            }
            for g, p in self.pauses.items()
        }


def serve(port: int, upstream: str, variant: str) -> None:
    """The gateway with GC timing; SIGUSR1 resets the counters, SIGUSR2 writes them to stdout."""
    import uvicorn

    from switchyard.gateway.app import create_app
    from switchyard.gateway.settings import build_settings

    settings = build_settings(
        {
            "server": {"log_level": "warning"},
            "models": [
                {
                    "name": "fake-model",
                    "price_input_per_mtok": 1,
                    "price_output_per_mtok": 2,
                    "endpoints": [{"url": upstream}],
                }
            ],
        }
    )
    app = create_app(settings)
    timer = GcTimer()
    original = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with original(a) as state:
            if variant == "freeze":
                gc.collect()
                gc.freeze()
            elif variant == "unfreeze":
                gc.unfreeze()
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGUSR1, timer.reset)
            loop.add_signal_handler(
                signal.SIGUSR2,
                lambda: print(
                    json.dumps({"gc": timer.stats(), "frozen": gc.get_freeze_count()}), flush=True
                ),
            )
            yield state

    app.router.lifespan_context = lifespan
    gc.callbacks.append(timer)
    options = uvicorn_options(ServerConfig(host=bk.LOOPBACK, port=port, log_level="warning"))
    uvicorn.run(app, **options)


# ---------------------------------------------------------------- orchestration


def read_stats(log: Path, proc: Any) -> dict[str, Any]:
    """Ask the gateway for its GC counters (SIGUSR2) and read the JSON line it prints."""
    size = log.stat().st_size
    os.kill(proc.pid, signal.SIGUSR2)
    for _ in range(50):
        time.sleep(0.1)
        with log.open("rb") as f:
            f.seek(size)
            for line in f.read().splitlines():
                if line.startswith(b'{"gc"'):
                    result: dict[str, Any] = json.loads(line)
                    return result
    raise RuntimeError("the gateway did not report its GC counters")


def measure_variant(a: argparse.Namespace, variant: str, backend_url: str) -> list[dict[str, Any]]:
    log = WORKDIR / f"gc-probe-{variant}.log"
    log.unlink(missing_ok=True)
    argv = [
        str(bk.VENV_PYTHON),
        str(Path(__file__).resolve()),
        "--serve",
        "--port",
        str(a.gateway_port),
        "--upstream",
        backend_url,
    ]
    argv += ["--variant", variant]
    gateway = bk.start_pinned(argv, a.gateway_cpu, log)
    url = f"http://{bk.LOOPBACK}:{a.gateway_port}/v1/chat/completions"
    body = WORKDIR / "gc-probe-body.json"
    body.write_bytes(bk.chat_body("fake-model", False, 16))
    rows = []
    try:
        bk.wait_ready(url, body.read_bytes(), gateway, 60)
        bk.run_wrk(url, body, 8, a.warmup, 10**6, a.client_cpu)
        for conc in a.concurrency:
            bk.wait_idle(15, 60)
            os.kill(gateway.pid, signal.SIGUSR1)
            cpu0 = bk.session_cpu_s(gateway.pid)
            res = bk.run_wrk(url, body, conc, a.duration, a.max_requests, a.client_cpu)
            cpu_s = bk.session_cpu_s(gateway.pid) - cpu0
            stats = read_stats(log, gateway)
            rows.append(
                {
                    "variant": variant,
                    "concurrency": conc,
                    "rps": res.rps,
                    "p50_ms": res.p50_ms,
                    "p99_ms": res.p99_ms,
                    "errors": res.errors,
                    "cpu_ms_per_req": 1000 * cpu_s / max(res.requests, 1),
                    "gateway_cpu_s": cpu_s,
                    **stats,
                }
            )
            bk.log(f"{variant} c={conc}: {res.rps:.0f} req/s p99 {res.p99_ms:.2f} ms {stats}")
    finally:
        bk.stop_group(gateway)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| variant | c | req/s | p50 ms | p99 ms | CPU ms/req | gen2 collections | "
        "gen2 ms (max) | gen0+gen1 ms | GC share of gateway CPU | errors |",
        "|" + "---|" * 11,
    ]
    for r in rows:
        g = r["gc"]
        gc_ms = g["gen0"]["total_ms"] + g["gen1"]["total_ms"] + g["gen2"]["total_ms"]
        share = gc_ms / (10 * r["gateway_cpu_s"]) if r["gateway_cpu_s"] else 0.0
        lines.append(
            f"| {r['variant']} | {r['concurrency']} | {r['rps']:.0f} | {r['p50_ms']:.3f} "
            f"| {r['p99_ms']:.3f} | {r['cpu_ms_per_req']:.3f} | {g['gen2']['count']} "
            f"| {g['gen2']['total_ms']:.0f} ({g['gen2']['max_ms']:.0f}) "
            f"| {g['gen0']['total_ms'] + g['gen1']['total_ms']:.0f} | {share:.0f} % "
            f"| {r['errors']} |"
        )
    return "\n".join(lines) + "\n"


def run(a: argparse.Namespace) -> list[dict[str, Any]]:
    bk.pin_self(a.client_cpu)
    bk.require_free(a.gateway_port, a.backend_port)
    WORKDIR.mkdir(parents=True, exist_ok=True)
    backend = bk.start_pinned(
        [str(bk.VENV_PYTHON), str(bk.SHARED / "fake_backend.py"), "--port", str(a.backend_port)],
        a.client_cpu,
        WORKDIR / "gc-probe-backend.log",
    )
    backend_url = f"http://{bk.LOOPBACK}:{a.backend_port}/v1"
    rows: list[dict[str, Any]] = []
    try:
        bk.wait_ready(
            f"{backend_url}/chat/completions", bk.chat_body("fake-model", False, 4), backend, 30
        )
        for rep in range(a.repeats):
            order = VARIANTS if rep % 2 == 0 else VARIANTS[::-1]
            for variant in order:
                rows += [{**r, "rep": rep + 1} for r in measure_variant(a, variant, backend_url)]
    finally:
        bk.stop_group(backend)
    return sorted(rows, key=lambda r: (r["concurrency"], r["variant"], r["rep"]))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--concurrency", default="1,32")
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per variant")
    ap.add_argument("--repeats", type=int, default=2, help="repetitions, order alternating")
    ap.add_argument("--max-requests", type=int, default=500_000, help="cap per wrk run")
    ap.add_argument("--gateway-port", type=int, default=4650)
    ap.add_argument("--backend-port", type=int, default=18650)
    ap.add_argument("--gateway-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--out", type=Path, default=bk.RESULTS / "gc_probe.json")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--variant", choices=VARIANTS, default="default", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=4650, help=argparse.SUPPRESS)
    ap.add_argument("--upstream", default="", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    a.concurrency = [int(c) for c in a.concurrency.split(",") if c]
    return a


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    if a.serve:
        serve(a.port, a.upstream, a.variant)
        return
    rows = run(a)
    text = table(rows)
    print(text)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(
        json.dumps(
            {
                "meta": {
                    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "source": bk.source_digest(),
                    "args": {k: str(v) for k, v in vars(a).items()},
                },
                "rows": rows,
            },
            indent=1,
        )
    )
    a.out.with_suffix(".md").write_text(text)
    bk.log(f"wrote {a.out}")


if __name__ == "__main__":
    main()
