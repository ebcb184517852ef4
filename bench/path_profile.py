"""Where a pass-through request's calls go: cProfile over proxied requests, by package.

Drives the gateway's ASGI app in-process (uvicorn's own per-request work is the same for every
gateway and left out) against a zero-latency simulator served from a thread, then prints the Python
calls per request and the profiler's time per request, summed by package (aiohttp,
prometheus_client, switchyard/gateway/proxy.py, ...). The regression guard on the same count is
tests/gateway/test_cost_budget.py; this script says what to look at when it trips.

    .venv/bin/python bench/path_profile.py [--stream] [--auth] [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import os
import pstats
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import uvicorn
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from switchyard.backends.simulator import build_config, create_simulator_app  # noqa: E402
from switchyard.gateway.app import create_app  # noqa: E402
from switchyard.gateway.settings import build_settings  # noqa: E402
from tests.support.calls import asgi_post  # noqa: E402
from tests.support.servers import free_port, wait_for_port  # noqa: E402

KEY = "sk-sy-path-profile-0123456789abcdef"


def _serve_simulator(port: int) -> None:
    app = create_simulator_app(build_config("m", "zero"))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                            lifespan="off", log_level="warning")  # fmt: skip
    threading.Thread(target=uvicorn.Server(config).run, daemon=True).start()
    wait_for_port(port)


def _settings(port: int, auth: bool) -> Any:
    sections: dict[str, Any] = {"upstream": {"scrape_interval_s": 0}}
    if auth:
        os.environ.update(SWITCHYARD_KEY_SECRET="profile-secret", PROFILE_KEY=KEY)
        sections["auth"] = {"enabled": True, "keys": [
            {"name": "k", "key_env": "PROFILE_KEY", "limits": {"rpm": 100_000_000}}]}  # fmt: skip
    model = {"name": "m", "price_input_per_mtok": 1, "price_output_per_mtok": 2,
             "endpoints": [{"url": f"http://127.0.0.1:{port}/v1"}]}  # fmt: skip
    return build_settings({"models": [model], **sections})


def _package(filename: str, function: str) -> str:
    if filename == "~":
        return "builtins"
    if "site-packages/" in filename:
        return filename.split("site-packages/")[1].split("/")[0]
    if str(ROOT) in filename:
        return filename.split(str(ROOT) + "/")[1]
    return "stdlib/" + Path(filename).name


async def _run(settings: Any, stream: bool, auth: bool, n: int) -> cProfile.Profile:
    app = create_app(settings)
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                         "max_tokens": 20, "stream": stream})  # fmt: skip
    headers = [(b"authorization", f"Bearer {KEY}".encode())] if auth else []
    profile = cProfile.Profile()
    async with app.router.lifespan_context(app):
        for _ in range(200):  # warm-up: connection pool, lazy imports
            await asgi_post(app, "/v1/chat/completions", body, headers)
        started = time.perf_counter()
        profile.enable()
        for _ in range(n):
            await asgi_post(app, "/v1/chat/completions", body, headers)
        profile.disable()
        wall = (time.perf_counter() - started) / n * 1e3
    print(f"{n} requests, {wall:.3f} ms each under the profiler")
    return profile


def _functions(profile: cProfile.Profile, n: int, match: str) -> None:
    """Calls per request of each function in the packages or files whose name holds ``match``."""
    stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    rows = [
        (ncalls / n, tottime / n * 1e6, f"{_package(filename, function)}:{line} {function}")
        for (filename, line, function), (_, ncalls, tottime, _, _) in stats.items()
        if match in _package(filename, function)
    ]
    print(f"\n{'calls/req':>10} {'µs/req':>8}  function ({match})")
    for calls, micros, name in sorted(rows, reverse=True):
        print(f"{calls:10.1f} {micros:8.1f}  {name}")


def _report(profile: cProfile.Profile, n: int, top: int) -> None:
    calls: collections.Counter[str] = collections.Counter()
    seconds: collections.Counter[str] = collections.Counter()
    stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    for (filename, _, function), (_, ncalls, tottime, _, _) in stats.items():
        package = _package(filename, function)
        calls[package] += ncalls
        seconds[package] += tottime
    print(f"calls per request: {sum(calls.values()) / n:.0f}\n")
    print(f"{'calls/req':>10} {'µs/req':>8}  package or file")
    for package, count in calls.most_common(top):
        print(f"{count / n:10.1f} {seconds[package] / n * 1e6:8.1f}  {package}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stream", action="store_true", help="streamed requests (20 chunks)")
    parser.add_argument("--auth", action="store_true", help="with an API key and a limit")
    parser.add_argument("--requests", type=int, default=2000, help="profiled requests")
    parser.add_argument("--top", type=int, default=20, help="rows to print")
    parser.add_argument(
        "--functions", default=None, metavar="TEXT",
        help="also list the functions of the packages or files whose name contains TEXT",
    )  # fmt: skip
    args = parser.parse_args()
    port = free_port()
    _serve_simulator(port)
    settings = _settings(port, args.auth)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        profile = runner.run(_run(settings, args.stream, args.auth, args.requests))
    _report(profile, args.requests, args.top)
    if args.functions is not None:
        _functions(profile, args.requests, args.functions)


if __name__ == "__main__":
    main()
