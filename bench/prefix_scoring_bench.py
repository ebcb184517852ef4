"""Prefix scoring, micro-benchmarked on one core: what it adds to one request's replica choice.

What is measured (per request, on the request path)
  * ``prompt_blocks``: the prompt's block-hash chain read from the parsed JSON body — a chat
    with a ~1k-token system prompt and a short question, and a ~4k-token RAG prompt.
  * ``EndpointPool.pick`` at 3 and 32 replicas (fresh snapshots of varied load), without a
    prefix and with one: the index lookup (``PrefixIndex.matched``), the prefill cost per
    replica, the choice among sampled + warm replicas, and recording the chain where it went.
    The index holds 2,000 prefixes of 16 blocks spread over the replicas before timing; each
    timed request shares one of them (warm) and adds its own blocks after it.

Added cost = hashing + pick with prefix - pick without. Each figure is the median over
``--repeats`` of the mean per-call time of a batch of calls (perf_counter_ns), in µs, with min
and max. Writes ``bench/results/replica/prefix_scoring_bench.json`` and prints a table.

    python bench/prefix_scoring_bench.py [--repeats 100] [--quick] [--out PATH]
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from replica_bench import per_call_us
from routerkit import LoadProbe, machine_info, write_results

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from switchyard.backends.breaker import CircuitBreaker  # noqa: E402
from switchyard.backends.client import OpenAICompatBackend, Timeouts  # noqa: E402
from switchyard.backends.engine_state import EngineSnapshot  # noqa: E402
from switchyard.backends.pool import Endpoint, EndpointPool  # noqa: E402
from switchyard.backends.prefix_blocks import PromptBlocks, request_blocks  # noqa: E402
from switchyard.backends.prefix_index import PrefixIndex  # noqa: E402
from switchyard.backends.replica import ReplicaPolicy  # noqa: E402

OUT = BENCH_DIR / "results" / "replica" / "prefix_scoring_bench.json"
NOW = 100.0
WORDS = ("replica", "prefix", "cache", "block", "token", "route", "batch", "queue", "stream")


def text(tokens: int, rng: random.Random) -> str:
    """About ``tokens`` tokens of text (4 characters a token, as the simulator counts)."""
    out: list[str] = []
    while sum(len(w) + 1 for w in out) < 4 * tokens:
        out.append(rng.choice(WORDS))
    return " ".join(out)


def bodies(rng: random.Random) -> dict[str, list[dict[str, Any]]]:
    systems = [text(1000, rng) for _ in range(8)]
    docs = [text(4000, rng) for _ in range(4)]
    chat = [{"messages": [{"role": "system", "content": systems[i % 8]},
                          {"role": "user", "content": f"Question {i}: {text(30, rng)}"}]}
            for i in range(64)]  # fmt: skip
    rag = [{"messages": [{"role": "user", "content": f"{docs[i % 4]}\n\nQuestion {i}?"}]}
           for i in range(16)]  # fmt: skip
    return {"chat, 1k-token system prompt": chat, "RAG, 4k-token document": rag}


def pool_of(n: int, index: PrefixIndex | None, rng: random.Random) -> EndpointPool:
    session: Any = None  # pick() never sends
    endpoints, snaps = [], {}
    for i in range(n):
        url = f"http://10.0.0.{i}:8000/v1"
        endpoints.append(Endpoint(OpenAICompatBackend(url, session, Timeouts()),
                                  CircuitBreaker(5, 10), max_num_seqs=64))  # fmt: skip
        running = rng.randint(0, 64)
        snaps[url] = EngineSnapshot(
            waiting=rng.randint(0, 8) if running == 64 else 0, running=running,
            scraped_at=NOW - rng.random(), kv_cache_usage=running / 80,
            kv_capacity_tokens=150_000,
        )  # fmt: skip
    return EndpointPool("m", endpoints, balancer="switchyard", snapshots=snaps.get,
                        policy=ReplicaPolicy(choices=3), rng=random.Random(1),
                        clock=lambda: NOW, prefix_index=index)  # fmt: skip


def warm_index(pool: EndpointPool, rng: random.Random) -> None:
    for _ in range(2000):
        hashes = tuple(rng.getrandbits(62) for _ in range(16))
        pool.pick(prefix=PromptBlocks(hashes, 16 * 16 + 10))


def figures(repeats: int, block_tokens: int) -> dict[str, dict[str, float]]:
    rng = random.Random(0)
    out: dict[str, dict[str, float]] = {}
    for label, items in bodies(rng).items():
        cycle = itertools.cycle(items)
        out[f"prompt_blocks, {label}"] = per_call_us(
            lambda c=cycle: request_blocks(next(c), True, block_tokens, 8192 // block_tokens),
            50,
            repeats,
        )
        chains = [request_blocks(b, True, block_tokens, 8192 // block_tokens) for b in items]
        for n in (3, 32):
            plain = pool_of(n, None, random.Random(n))
            scored = pool_of(n, PrefixIndex(65_536), random.Random(n))
            warm_index(scored, random.Random(n))
            for b in chains:  # every prefix of the workload has been sent once
                scored.pick(prefix=b)
            out[f"pick, {n} replicas, no prefix"] = per_call_us(plain.pick, 1000, repeats)
            out[f"pick, {n} replicas, {label}"] = per_call_us(_scored(scored, chains), 200, repeats)
    return out


def _scored(pool: EndpointPool, chains: list[PromptBlocks | None]) -> Callable[[], object]:
    cycle = itertools.cycle(chains)
    return lambda: pool.pick(prefix=next(cycle))


def added(f: dict[str, dict[str, float]]) -> dict[str, float]:
    out = {}
    for label in ("chat, 1k-token system prompt", "RAG, 4k-token document"):
        for n in (3, 32):
            cost = (f[f"prompt_blocks, {label}"]["median_us"] + f[f"pick, {n} replicas, {label}"]
                    ["median_us"] - f[f"pick, {n} replicas, no prefix"]["median_us"])  # fmt: skip
            out[f"{n} replicas, {label}"] = round(cost, 2)
    return out


def table(results: dict[str, Any]) -> str:
    lines = ["| what | median µs | min–max µs |", "|---|---:|---:|"]
    for label, f in results["figures"].items():
        lines.append(f"| {label} | {f['median_us']:.2f} | {f['min_us']:.2f}–{f['max_us']:.2f} |")
    lines += ["", "| added per request (hash + pick with prefix − pick without) | µs |",
              "|---|---:|"]  # fmt: skip
    lines += [f"| {label} | {us:.1f} |" for label, us in results["added_us"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=100, help="timed batches per figure")
    parser.add_argument("--quick", action="store_true", help="smoke run: 10 repeats")
    parser.add_argument(
        "--block-tokens",
        type=int,
        default=64,
        help="the index's block (upstream.prefix_block_tokens)",
    )
    parser.add_argument("--out", type=Path, default=OUT, help=f"JSON results (default {OUT})")
    args = parser.parse_args(argv)
    repeats = 10 if args.quick else args.repeats
    probe = LoadProbe()
    results: dict[str, Any] = {
        "figures": figures(repeats, args.block_tokens),
        "block_tokens": args.block_tokens,
        "repeats": repeats,
    }
    results["added_us"] = added(results["figures"])
    results["command"] = " ".join(["python", "bench/prefix_scoring_bench.py", *sys.argv[1:]])
    results["machine"] = machine_info(probe, [])
    write_results(table(results), results, args.out)


if __name__ == "__main__":
    main()
