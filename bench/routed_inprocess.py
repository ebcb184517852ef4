"""Routed vs pass-through requests in one process, timed in CPU seconds: a comparison of two
trees of the gateway that the machine's neighbours blur less than wall-clock throughput.

The demo config (the shipped default router over three zero-latency simulators, each its own
process) is served by the gateway's ASGI app in this process; 32 concurrent in-process
clients post ``--requests`` chat completions, each a different ~62-token window of the
RouterDC test questions (``routing_speed.distinct_prompts``), first to
``mistralai/mistral-7b-chat`` (A: pass-through), then to ``"model": "auto"`` (S), for
``--reps`` rounds. Per variant and round it prints req/s and the process's CPU time per
request (``time.process_time``, this process only: the gateway's work and the clients', not
the simulators'). uvicorn's HTTP work is left out; it is the same for both variants.

``--parts`` also times the parts of each routed decision batch (wall time around the
embedding, the tokeniser, the kNN prediction and its product, the bandit, the policy) and
prints them per routed request: where a decision's time goes at a given ``--concurrency``.

``--source DIR`` imports ``switchyard`` from another checkout (``git worktree add DIR REV``),
so two commits can be compared round by round:

    for i in 1 2 3 4 5 6; do
      .venv/bin/python bench/routed_inprocess.py --source /tmp/old --reps 2
      .venv/bin/python bench/routed_inprocess.py --reps 2
    done

Needs the reference data in ``../shared/data`` and the exported static embedder.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--requests", type=int, default=3000, help="requests per variant and round")
    p.add_argument("--reps", type=int, default=2, help="rounds of A then S")
    p.add_argument("--concurrency", type=int, default=32, help="in-process clients")
    p.add_argument("--source", type=Path, default=None, help="checkout to import switchyard from")
    p.add_argument("--parts", action="store_true", help="time the parts of routed decisions")
    return p.parse_args()


def time_parts() -> dict[str, float]:
    """Wrap the parts of a routed decision batch so that each adds its wall time to the
    counter returned (the wrappers cost ~0.3 µs a call)."""
    from switchyard.gateway import routing
    from switchyard.routers.embedding import static, wordpiece
    from switchyard.routers.models import cosines, knn

    spent: dict[str, float] = {}
    parts = [
        (routing.RouterService, "_run_batch", "the whole batch"),
        (static.StaticEmbedder, "embed", "embedding (tokeniser included)"),
        (wordpiece.FastWordPiece, "ids", "tokeniser"),
        (knn.TaskPriorKNNRouter, "_predict", "kNN prediction"),
        (knn.KNNRouter, "_nearest", "kNN: the k nearest"),
        (cosines.Cosines, "__call__", "kNN: the product"),
        (routing.RouterService, "_adjust", "bandit"),
        (routing, "choose", "policy"),
    ]
    for owner, name, label in parts:
        spent[label] = 0.0  # every label from the start, printed in this order
        setattr(owner, name, _timed(getattr(owner, name), label, spent))
    return spent


def _timed(fn: Callable[..., Any], label: str, spent: dict[str, float]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - started

    return timed


async def post_all(app: Any, bodies: list[bytes], concurrency: int) -> tuple[float, float]:
    """Every body once through ``app``: (wall seconds, CPU seconds)."""
    from tests.support.calls import asgi_post

    todo = iter(bodies)

    async def worker() -> None:
        for body in todo:
            sent = await asgi_post(app, "/v1/chat/completions", body)
            if sent[0]["status"] != 200:
                raise RuntimeError(f"answered {sent[0]['status']}: {sent[-1].get('body')!r}")

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - wall, time.process_time() - cpu


async def measure(args: argparse.Namespace, ports: dict[str, int]) -> None:
    import orjson
    from routing_speed import DIRECT, distinct_prompts

    from switchyard.cli.demo import demo_settings
    from switchyard.gateway.app import create_app

    app = create_app(demo_settings("127.0.0.1", 0, ports))
    prompts = distinct_prompts(args.requests + 200, 62, None)

    def bodies(model: str, texts: list[str]) -> list[bytes]:
        messages = ([{"role": "user", "content": t}] for t in texts)
        return [orjson.dumps({"model": model, "max_tokens": 1, "messages": m}) for m in messages]

    spent = time_parts() if args.parts else {}
    async with app.router.lifespan_context(app):
        for _ in range(args.reps):
            for variant, model in (("A", DIRECT), ("S", "auto")):
                await post_all(app, bodies(model, prompts[:200]), args.concurrency)  # warm-up
                spent.update(dict.fromkeys(spent, 0.0))
                wall, cpu = await post_all(app, bodies(model, prompts[200:]), args.concurrency)
                n = args.requests
                print(f"{variant}: {n / wall:.0f} req/s, {cpu / n * 1e6:.1f} µs CPU per request",
                      flush=True)  # fmt: skip
                for label, seconds in spent.items() if variant == "S" else ():
                    print(f"   {label:32s} {seconds / n * 1e6:7.1f} µs per request")


def main() -> None:
    args = parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as `switchyard serve` sets it
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    if args.source is not None:
        sys.path.insert(0, str(args.source.resolve()))
    sys.path.insert(1, str(BENCH))
    sys.path.insert(2, str(BENCH.parent))  # tests.support
    import uvloop
    from benchkit import simulator_argv

    import switchyard
    from switchyard.cli.demo import DEMO_MODELS
    from tests.support.servers import free_port, wait_for_port

    print(f"switchyard from {Path(switchyard.__file__).parent}", flush=True)
    ports = {m.name: free_port() for m in DEMO_MODELS}
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    sims = [subprocess.Popen(simulator_argv(name, port), **quiet) for name, port in ports.items()]
    try:
        for port in ports.values():
            wait_for_port(port, timeout=60)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(measure(args, ports))
    finally:
        for proc in sims:
            proc.terminate()


if __name__ == "__main__":
    main()
