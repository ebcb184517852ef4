"""What the semantic response cache costs a miss and how fast a semantic hit answers.

As bench/cache_bench.py: one process drives gateway apps in-process (ASGI) against
zero-latency simulators served from a thread, one request of each variant in turn (rotating
order) so all see the same machine noise. The gateways route with the shipped default router
(the prompt embedder exported in the default cache, ~/.cache/switchyard) over four
simulated candidates; the cache is on (threshold 0.9), in process (``memory``) or
in a private ``redis-server`` on loopback (``redis``). Fresh prompts are real questions
(RouterDC train splits in ../shared/data, cut to 160 characters), the same one for the
routed variants of a round and another for the concrete ones; the rare one that finds a
near-duplicate stored by an earlier miss (a semantic hit) is counted and left out of the
miss timings:

* ``off``: a routed request that does not opt in (embedding + decision + upstream call);
* ``miss-memory`` / ``miss-redis``: a routed request opted in to semantic caching, a prompt
  never seen: exact lookup, routing (its embedding reused), index search, upstream call,
  store and index write (after the answer);
* ``hit-memory`` / ``hit-redis``: a routed rewrite of a stored question (never stored
  itself, so its exact lookup misses every time): exact lookup, routing, index search,
  replay;
* ``concrete-off`` / ``concrete-miss``: a request for a concrete model, without and with a
  semantic opt-in (memory): the opt-in embeds the prompt on the router worker thread.

The report gives each variant's median and p90, and the miss medians' difference from
their ``off`` (the target: ≤ 1 ms reusing the routing embedding; a hit in ≤ 1 ms).

``--parts`` times instead, in one process without sockets, what a routed semantic miss
adds on top of an exact miss (median of 2,000 calls each): the query (scope and parameters
hashes, the prompt text), an index search over ``semantic_max_entries`` (1,000) entries of
the same (scope, model), and the index write done after the answer was sent.

    .venv/bin/python bench/semantic_cache_bench.py [--requests 500] [--parts]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = (
    "off", "miss-memory", "miss-redis", "hit-memory", "hit-redis", "concrete-off",
    "concrete-miss",
)  # fmt: skip
CANDIDATES = ("mistralai/mistral-7b-chat", "mistralai/mixtral-8x7b-chat",
              "gpt-3.5-turbo-1106", "gpt-4-1106-preview")  # fmt: skip
STORED, REWRITE = "What is the capital of France?", "Which city is the capital of France?"
SHARED = ROOT.parent / "shared/data/routing/routerdc"


def _questions() -> list[str]:
    rows = []
    for split in ("gsm8k-train", "mmlu_train", "arc_challenge_train"):
        rows += orjson.loads((SHARED / f"{split}.json").read_bytes())
    return list(dict.fromkeys(r["question"][:160] for r in rows))


def _body(model: str, prompt: str, pinned: bool = False) -> bytes:
    """``pinned``: the router may choose only one model (a hit needs the stored one's)."""
    body = {"model": model, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 8, "temperature": 0}  # fmt: skip
    if pinned:
        body["switchyard"] = {"models": [CANDIDATES[1]]}
    return orjson.dumps(body)


def _request(variant: str, fresh: str) -> tuple[str, bytes, list[tuple[bytes, bytes]]]:
    """(app, body, headers) of one request of ``variant`` (``fresh``: a prompt never sent)."""
    kind, _, store = variant.partition("-")
    semantic = [(b"x-switchyard-cache", b"semantic")]
    if kind == "concrete":
        return "memory", _body(CANDIDATES[0], fresh), semantic if store == "miss" else []
    if kind == "hit":
        return store, _body("auto", REWRITE, True), semantic
    return store or "memory", _body("auto", fresh), [] if kind == "off" else semantic


async def _run(requests: int, sims: dict[str, str], redis_url: str) -> dict[str, list[float]]:
    from prometheus_client import CollectorRegistry

    from switchyard.gateway.app import create_app
    from switchyard.gateway.settings import build_settings
    from switchyard.resources import default_router
    from tests.support.calls import asgi_post

    models = [{"name": m, "price_input_per_mtok": 1, "price_output_per_mtok": 2,
               "endpoints": [{"url": url}]} for m, url in sims.items()]  # fmt: skip
    common: dict[str, Any] = {
        "models": models, "upstream": {"scrape_interval_s": 0},
        "routers": [{"name": "smart", "artifact": str(default_router()), "default": True}],
        "cache": {"enabled": True, "semantic_threshold": 0.9},  # REWRITE: 0.94
    }  # fmt: skip
    apps = {
        "memory": create_app(build_settings(common), CollectorRegistry()),
        "redis": create_app(
            build_settings(common | {"state": {"redis_url": redis_url}}), CollectorRegistry()
        ),
    }
    took: dict[str, list[float]] = {v: [] for v in VARIANTS}
    questions, accidental, semantic = _questions(), 0, [(b"x-switchyard-cache", b"semantic")]
    memory, redis = apps["memory"], apps["redis"]
    async with memory.router.lifespan_context(memory), redis.router.lifespan_context(redis):
        for app in apps.values():  # the stored question, answered once by each
            await asgi_post(app, "/v1/chat/completions", _body("auto", STORED, True), semantic)
        await asyncio.sleep(0.2)  # its writes (answer, then index entry) are done
        for i in range(requests + 50):  # the first 50 rounds warm up
            for variant in VARIANTS[i % len(VARIANTS) :] + VARIANTS[: i % len(VARIANTS)]:
                # one question for the routed variants, another for the concrete ones: the
                # same embedding work; a routed miss never finds the concrete one's entry
                concrete = variant.startswith("concrete")
                fresh = questions[(2 * i + concrete) % len(questions)]
                store, body, headers = _request(variant, fresh)
                start = time.perf_counter()
                sent = await asgi_post(apps[store], "/v1/chat/completions", body, headers)
                elapsed = time.perf_counter() - start
                assert sent[0]["status"] == 200, sent
                state = dict(sent[0]["headers"]).get(b"x-switchyard-cache")
                want = (
                    b"hit" if variant.startswith("hit") else None if "off" in variant else b"miss"
                )
                if state != want:
                    assert state == b"hit", (variant, state)
                    accidental += 1  # a near-duplicate question: not a miss's timing
                elif i >= 50:
                    took[variant].append(elapsed)
    print(f"fresh prompts answered by a near-duplicate's entry (left out): {accidental}")
    return took


def _parts() -> None:
    import numpy as np

    from switchyard.gateway.cache.config import CacheConfig
    from switchyard.gateway.cache.semantic import (
        _HEAD,
        MemoryIndex,
        Query,
        RedisIndex,
        params_of,
        scope_hash,
    )
    from switchyard.routers.embedding import prompt_text

    data = orjson.loads(_body("auto", STORED, True))
    rng = np.random.default_rng(0)
    index = MemoryIndex(CacheConfig())
    vectors = rng.normal(size=(1001, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    params = params_of(data, "messages")

    def query(i: int) -> Query:
        return Query("s", params, "", CANDIDATES[1], vectors[i])

    def timed(fn: Any, n: int = 2000) -> float:
        took = []
        for i in range(n):
            start = time.perf_counter()
            fn(i)
            took.append(time.perf_counter() - start)
        return statistics.median(took) * 1e3

    def run(coro: Any) -> None:
        with contextlib.suppress(StopIteration):  # no await inside: one step completes it
            coro.send(None)

    make = timed(lambda i: Query(scope_hash(["-"]), params_of(data, "messages"),
                                 prompt_text(data["messages"])))  # fmt: skip
    for i in range(1000):
        run(index.add(query(i), f"{i:040x}"))
    search = timed(lambda i: run(index.search(query(1000))))
    add = timed(lambda i: run(index.add(query(i % 1000), f"{i:040x}")))
    mirror = RedisIndex(None, "switchyard", CacheConfig())
    packed = [_HEAD.pack(9e18, params, bytes(20)) + v.tobytes() for v in vectors[:1000]]
    reread = timed(lambda i: mirror._load(query(1000), packed), 50)
    print(f"query {make:.4f} ms, search over 1,000 entries {search:.4f} ms, "
          f"write (after the answer) {add:.4f} ms, Redis mirror reread of 1,000 entries "
          f"(parsing only, once per semantic_refresh_s) {reread:.3f} ms (p50)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--parts", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.parts:
        _parts()
        return
    import uvloop
    from cache_bench import redis_on_loopback, serve_simulator

    sims = {model: serve_simulator(model) for model in CANDIDATES}
    with redis_on_loopback() as redis_url, asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        took = r.run(_run(args.requests, sims, redis_url))
    base = {v: statistics.median(took["concrete-off" if "concrete" in v else "off"])
            for v in VARIANTS}  # fmt: skip
    print(f"{'variant':<14} {'p50 ms':>8} {'p90 ms':>8} {'Δp50 vs off':>12}")
    for variant in VARIANTS:
        times = sorted(took[variant])
        p50, p90 = statistics.median(times), times[int(len(times) * 0.9)]
        print(
            f"{variant:<14} {p50 * 1e3:8.3f} {p90 * 1e3:8.3f} {(p50 - base[variant]) * 1e3:+12.3f}"
        )


if __name__ == "__main__":
    main()
