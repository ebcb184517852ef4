"""What the response cache costs a miss and how fast a hit answers: an in-process benchmark.

One process drives two gateway apps in-process (ASGI, as bench/path_profile.py does) against a
zero-latency simulator served from a thread: ``memory`` (``cache.enabled``, in-process LRU)
and ``redis`` (the same, the cache in a private ``redis-server`` on loopback). Variants, timed
from the ASGI call to the last body message, one request of each in turn (rotating order) so
all see the same machine noise:

* ``off``: a request that does not opt in (the same app; what every other request pays);
* ``miss-memory`` / ``miss-redis``: opted in, a prompt never seen (lookup, upstream call,
  store);
* ``hit-memory`` / ``hit-redis``: opted in, the same prompt every time (no upstream call).

The report gives each variant's median and p90 and each miss's median difference from
``off`` (the target: ≤ 0.3 ms with Redis; a hit answers in ≤ 1 ms).

    .venv/bin/python bench/cache_bench.py [--requests 2000] [--stream]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("off", "miss-memory", "miss-redis", "hit-memory", "hit-redis")


def _body(prompt: str, stream: bool) -> bytes:
    return orjson.dumps({"model": "m", "messages": [{"role": "user", "content": prompt}],
                         "max_tokens": 8, "temperature": 0, "stream": stream})  # fmt: skip


async def _run(requests: int, stream: bool, sim_url: str, redis_url: str) -> dict[str, list[float]]:
    from prometheus_client import CollectorRegistry

    from switchyard.gateway.app import create_app
    from switchyard.gateway.settings import build_settings
    from tests.support.calls import asgi_post

    model = {"name": "m", "price_input_per_mtok": 1, "price_output_per_mtok": 2,
             "endpoints": [{"url": sim_url}]}  # fmt: skip
    common: dict[str, Any] = {"models": [model], "upstream": {"scrape_interval_s": 0},
                              "cache": {"enabled": True}}  # fmt: skip
    apps = {
        "memory": create_app(build_settings(common), CollectorRegistry()),
        "redis": create_app(
            build_settings(common | {"state": {"redis_url": redis_url}}), CollectorRegistry()
        ),
    }
    on = [(b"x-switchyard-cache", b"on")]
    took: dict[str, list[float]] = {v: [] for v in VARIANTS}
    memory, redis = apps["memory"], apps["redis"]
    async with memory.router.lifespan_context(memory), redis.router.lifespan_context(redis):
        for i in range(requests + 100):  # the first 100 rounds warm up
            for variant in VARIANTS[i % 5 :] + VARIANTS[: i % 5]:
                kind, _, store = variant.partition("-")
                prompt = f"fresh {i}" if kind == "miss" else "the same question"
                headers = [] if kind == "off" else on
                start = time.perf_counter()
                sent = await asgi_post(apps[store or "memory"], "/v1/chat/completions",
                                       _body(prompt, stream), headers)  # fmt: skip
                elapsed = time.perf_counter() - start
                assert sent[0]["status"] == 200, sent
                if i >= 100:
                    took[variant].append(elapsed)
    return took


def serve_simulator(model: str) -> str:
    """A zero-latency simulator of ``model`` on a thread of this process: its base URL."""
    import uvicorn

    from switchyard.backends.simulator import build_config, create_simulator_app
    from tests.support.servers import free_port, wait_for_port

    port = free_port()
    config = uvicorn.Config(create_simulator_app(build_config(model, "zero")), host="127.0.0.1",
                            port=port, loop="uvloop", http="httptools", lifespan="off",
                            log_level="warning")  # fmt: skip
    threading.Thread(target=uvicorn.Server(config).run, daemon=True).start()
    wait_for_port(port)
    return f"http://127.0.0.1:{port}/v1"


@contextlib.contextmanager
def redis_on_loopback() -> Iterator[str]:
    """A throwaway redis-server (no persistence) on a free loopback port: its URL."""
    from tests.support.servers import free_port, wait_for_port

    port = free_port()
    redis_bin = shutil.which("redis-server") or "/usr/bin/redis-server"
    redis = subprocess.Popen(
        [redis_bin, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no"], stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        redis.terminate()
        redis.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--stream", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import uvloop

    sim_url = serve_simulator("m")
    with redis_on_loopback() as redis_url, asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        took = r.run(_run(args.requests, args.stream, sim_url, redis_url))
    off = statistics.median(took["off"])
    print(f"{'variant':<12} {'p50 ms':>8} {'p90 ms':>8} {'Δp50 vs off':>12}")
    for variant in VARIANTS:
        times = sorted(took[variant])
        p50, p90 = statistics.median(times), times[int(len(times) * 0.9)]
        print(f"{variant:<12} {p50 * 1e3:8.3f} {p90 * 1e3:8.3f} {(p50 - off) * 1e3:+12.3f}")


if __name__ == "__main__":
    main()
