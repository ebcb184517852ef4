"""What OpenTelemetry tracing adds to a proxied request: an in-process A/B benchmark.

Each variant is a worker process that drives the gateway's ASGI app in-process (as
bench/path_profile.py does) against a zero-latency simulator served from a thread there, and
times each request from the ASGI call to the last body message. Variants:

* ``off``: tracing disabled (the default);
* ``on``: tracing enabled, every trace sampled, spans exported over OTLP/HTTP by the SDK's
  batch processor (its worker thread shares the GIL, as in production) to a receiver in
  this process that answers 200;
* ``recorded``: as ``on``, but each span is handed to an exporter that drops it, on the
  request's thread (no batching, no OTLP encoding): what recording alone costs;
* ``unsampled``: tracing enabled, ``sample_ratio: 0`` (spans are not recorded, the
  ``traceparent`` is still propagated);
* ``base`` (with ``--base DIR``): ``off`` run from another tree, e.g. the commit before
  tracing, to show that the disabled hooks cost nothing.

The workers take turns (``--rounds`` rounds of ``--requests`` sequential requests each, the
order rotating per round), so all variants see the same machine noise; the report gives
per-variant median and p90 latency and each variant's median difference from ``off``.

    .venv/bin/python bench/tracing_bench.py [--stream] [--rounds 20] [--requests 200]
        [--base /tmp/base-tree]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent


def _worker(variant: str, sink: str, stream: bool) -> None:
    """Serve timing requests on stdin: each line "N" answers N latencies (s) as JSON."""
    sys.path.insert(0, str(Path(os.environ.get("BENCH_TREE", ROOT))))
    import uvicorn
    import uvloop
    from prometheus_client import CollectorRegistry

    from switchyard.backends.simulator import build_config, create_simulator_app
    from switchyard.gateway.app import create_app
    from switchyard.gateway.settings import build_settings
    from tests.support.calls import asgi_post
    from tests.support.servers import free_port, wait_for_port

    port = free_port()
    sim = create_simulator_app(build_config("m", "zero"))
    config = uvicorn.Config(sim, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                            lifespan="off", log_level="warning")  # fmt: skip
    threading.Thread(target=uvicorn.Server(config).run, daemon=True).start()
    wait_for_port(port)
    model = {"name": "m", "price_input_per_mtok": 1, "price_output_per_mtok": 2,
             "endpoints": [{"url": f"http://127.0.0.1:{port}/v1"}]}  # fmt: skip
    sections: dict[str, Any] = {"upstream": {"scrape_interval_s": 0}}
    if variant in ("on", "recorded", "unsampled"):
        ratio = 0.0 if variant == "unsampled" else 1.0
        sections["tracing"] = {"enabled": True, "endpoint": sink, "sample_ratio": ratio}
    settings = build_settings({"models": [model], **sections})
    if variant == "recorded":
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

        class Discard(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        app = create_app(settings, CollectorRegistry(), span_exporter=Discard())
    else:
        app = create_app(settings, CollectorRegistry())
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                         "max_tokens": 8, "stream": stream})  # fmt: skip

    async def serve() -> None:
        async with app.router.lifespan_context(app):
            for _ in range(200):  # warm-up: connections, caches
                await asgi_post(app, "/v1/chat/completions", body)
            loop = asyncio.get_running_loop()
            while line := await loop.run_in_executor(None, sys.stdin.readline):
                took = []
                for _ in range(int(line)):
                    start = time.perf_counter()
                    sent = await asgi_post(app, "/v1/chat/completions", body)
                    took.append(time.perf_counter() - start)
                    assert sent[0]["status"] == 200, sent
                sys.stdout.write(orjson.dumps(took).decode() + "\n")
                sys.stdout.flush()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve())


@contextmanager
def _sink() -> Iterator[str]:
    """An OTLP/HTTP receiver that accepts and drops every export."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    finally:
        server.shutdown()


def _start(variant: str, sink: str, stream: bool, base: str | None) -> subprocess.Popen[str]:
    env = dict(os.environ)
    if variant == "base":
        assert base is not None
        env["BENCH_TREE"] = base
    argv = [sys.executable, __file__, "--worker", variant, "--sink", sink]
    argv += ["--stream"] if stream else []
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env, cwd=base if variant == "base" else ROOT)  # fmt: skip


def _ask(worker: subprocess.Popen[str], n: int) -> list[float]:
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write(f"{n}\n")
    worker.stdin.flush()
    took: list[float] = orjson.loads(worker.stdout.readline())
    return took


def _report(times: dict[str, list[float]], per_round: dict[str, list[float]]) -> None:
    off = statistics.median(times["off"])
    print(f"{'variant':<10} {'p50 µs':>8} {'p90 µs':>8} {'Δp50 vs off µs':>15} "
          f"{'median of per-round Δ µs':>25}")  # fmt: skip
    for name, took in times.items():
        p50 = statistics.median(took)
        p90 = statistics.quantiles(took, n=10)[-1]
        paired = [a - b for a, b in zip(per_round[name], per_round["off"], strict=True)]
        print(f"{name:<10} {p50 * 1e6:8.1f} {p90 * 1e6:8.1f} {(p50 - off) * 1e6:+15.1f} "
              f"{statistics.median(paired) * 1e6:+25.1f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--base", help="a tree without tracing, run as variant 'base'")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--sink", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.sink, args.stream)
        return
    variants = ["off", "on", "recorded", "unsampled"] + (["base"] if args.base else [])
    with _sink() as sink:
        workers = {v: _start(v, sink, args.stream, args.base) for v in variants}
        times: dict[str, list[float]] = {v: [] for v in variants}
        per_round: dict[str, list[float]] = {v: [] for v in variants}
        try:
            for r in range(args.rounds):
                order = variants[r % len(variants) :] + variants[: r % len(variants)]
                for v in order:
                    took = _ask(workers[v], args.requests)
                    times[v] += took
                    per_round[v].append(statistics.median(took))
        finally:
            for w in workers.values():
                assert w.stdin is not None
                w.stdin.close()
                w.wait(30)
    kind = "stream" if args.stream else "json"
    print(f"{kind}: {args.rounds} rounds x {args.requests} requests per variant")
    _report(times, per_round)


if __name__ == "__main__":
    main()
