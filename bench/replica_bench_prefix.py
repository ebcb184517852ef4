"""Prefix-aware replica choice on a shared-prefix workload: hit rate and TTFT against round
robin, least-in-flight and the load-aware choice without prefix scoring.

Setup
  The fleet of ``replica_bench_load.py`` (§10): three simulated replicas, fast / medium / slow
  presets with 32 / 16 / 4 batch slots, one gateway process, scrape every 1 s; each endpoint's
  ``max_num_seqs`` and ``prefill_s_per_token`` in the gateway config (the planner's figures).
  The simulators cache prefixes as vLLM does (16-token blocks, LRU bounded by their KV pool:
  450k / 150k / 40k tokens). ``switchyard_prefix`` is ``switchyard`` with
  ``upstream.prefix_scoring: true``.

Workload (deterministic for a seed)
  Chat sessions: each has one of ``--systems`` shared system prompts (~300 tokens; with 0,
  a system prompt of its own, as per-user instructions or memory would be) and its
  own retrieved document (``--doc-tokens``, ~400; with ``--docs N`` one of a shared corpus of
  N, the k-th most read with weight 1/k) in its first user turn (RAG), then grows turn by turn
  (a question of ~20 tokens, a canned answer of ~50 tokens: multi-turn). Each arrival opens a
  new session with probability ``--new-session`` (or when none is open), else continues a
  random open one; a session closes after ``--turns`` turns. Open-loop Poisson arrivals of
  streamed completions (32..96 output tokens) at ``--load`` of the fleet's capacity for this
  workload *without* a prefix cache (every prompt token prefilled, mean prompt length of the
  plan, full batches), so the load is the same for every balancer and feasible for all.

Measured per balancer (fresh fleet each): prefix-cache hit rate (the replicas' own
``vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total``), TTFT p50 / p99, e2e p50 /
p99, goodput (TTFT <= 1 s, mean ITL <= 50 ms), requests per replica.

    python bench/replica_bench_prefix.py [--duration 15] [--load 0.8] [--quick] [--out PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from benchkit import LOOPBACK, log
from replica_bench_load import (
    REPLICAS,
    TOKENS,
    Fleet,
    Outcome,
    arrivals,
    one_request,
    run_cells,
    summarize,
    target_rows,
)
from routerkit import LoadProbe, machine_info, write_results

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from switchyard.backends.simulator.config import PRESETS  # noqa: E402

OUT = BENCH_DIR / "results" / "replicas" / "replica_bench_prefix.json"
# name -> (balancer, extra upstream settings)
BALANCERS: dict[str, tuple[str, dict[str, Any]]] = {
    "round_robin": ("round_robin", {}),
    "least_in_flight": ("least_in_flight", {}),
    "switchyard": ("switchyard", {}),
    "switchyard_prefix": ("switchyard", {"prefix_scoring": True}),
    "slo": ("slo", {}),
    "slo_prefix": ("slo", {"prefix_scoring": True}),
}
WORDS = ("replica", "prefix", "cache", "block", "token", "route", "batch", "queue", "stream",
         "prompt", "engine", "gateway", "latency", "signal", "harbor", "copper")  # fmt: skip


def words(tokens: int, rng: random.Random) -> str:
    """About ``tokens`` tokens of text (4 characters a token, as the simulator counts)."""
    out: list[str] = []
    size = 0
    while size < 4 * tokens:
        out.append(rng.choice(WORDS))
        size += len(out[-1]) + 1
    return " ".join(out)


@dataclass
class Session:
    system: str
    doc: str
    messages: list[dict[str, str]] = field(default_factory=list)
    turns: int = 0


def plan(times: list[float], a: argparse.Namespace) -> list[list[dict[str, str]]]:
    """The messages of every arrival, in order: sessions opened, continued and closed."""
    rng = random.Random(a.seed)
    systems = [f"System prompt {i}. " + words(300, rng) for i in range(a.systems)]
    corpus = [f"Document {i}. " + words(a.doc_tokens, rng) for i in range(a.docs)]
    popularity = [1 / (k + 1) for k in range(a.docs)]  # the k-th most read: weight 1/k
    open_: list[Session] = []
    out = []
    for _ in times:
        if not open_ or rng.random() < a.new_session:
            system = rng.choice(systems) if systems else "System prompt. " + words(300, rng)
            doc = rng.choices(corpus, popularity)[0] if corpus else words(a.doc_tokens, rng)
            session = Session(system, doc)
            session.messages = [{"role": "system", "content": session.system}]
            open_.append(session)
            question = f"Context:\n{session.doc}\n\nQuestion: {words(20, rng)}"
        else:
            session = rng.choice(open_)
            session.messages.append({"role": "assistant", "content": words(50, rng)})
            question = words(20, rng)
        session.messages.append({"role": "user", "content": question})
        session.turns += 1
        out.append([dict(m) for m in session.messages])
        if session.turns >= a.turns:
            open_.remove(session)
    return out


def prompt_tokens(messages: list[dict[str, str]]) -> int:
    return sum((len(m["content"]) + 3) // 4 + 4 for m in messages)


def capacity_rps(mean_prompt: float) -> float:
    """Requests/s the fleet completes with full batches, prefilling every prompt token."""
    total = 0.0
    for preset, seqs in REPLICAS:
        perf = PRESETS[preset]
        per_token = perf.decode_base_s / seqs + perf.decode_s_per_seq
        total += 1 / (mean_prompt * perf.prefill_s_per_token + statistics.fmean(TOKENS) * per_token)
    return total


async def run_load(url: str, times: list[float], bodies: list[Any], a: argparse.Namespace,
                   outcomes: list[Outcome]) -> None:  # fmt: skip
    rng = random.Random(a.seed + 1)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=a.duration + a.grace + 60)
    tasks: list[asyncio.Task[None]] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        for offset, messages in zip(times, bodies, strict=True):
            await asyncio.sleep(max(0.0, start + offset - time.perf_counter()))
            out = Outcome(sent=time.perf_counter())
            outcomes.append(out)
            tokens = rng.randint(*TOKENS)
            tasks.append(asyncio.create_task(one_request(session, url, tokens, out, messages)))
        _, late = await asyncio.wait(tasks, timeout=a.grace) if tasks else (set(), set())
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        for task, out in zip(tasks, outcomes, strict=True):
            if task in late:
                out.error = "unfinished"


def engine_counter(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=5).read()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.decode().splitlines()
               if line.startswith(name + "{"))  # fmt: skip


def run_balancer(name: str, times: list[float], bodies: list[Any], rate: float,
                 a: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    balancer, upstream = BALANCERS[name]
    fleet = Fleet(balancer, a.logs, upstream=upstream)
    try:
        fleet.start()
        # Readiness probes left a few tokens in the caches; count from here.
        before = [
            (
                engine_counter(p, "vllm:prefix_cache_hits_total"),
                engine_counter(p, "vllm:prefix_cache_queries_total"),
            )
            for p in fleet.sim_ports
        ]
        outcomes: list[Outcome] = []
        asyncio.run(run_load(fleet.url, times, bodies, a, outcomes))
        summary = summarize(outcomes, a.duration, a.slo_ttft, a.slo_itl)
        hits = sum(
            engine_counter(p, "vllm:prefix_cache_hits_total") - b[0]
            for p, b in zip(fleet.sim_ports, before, strict=True)
        )
        queries = sum(engine_counter(p, "vllm:prefix_cache_queries_total") - b[1]
                      for p, b in zip(fleet.sim_ports, before, strict=True))  # fmt: skip
        summary["prefix_hit_rate"] = round(hits / queries, 3) if queries else None
        summary["replica_requests"] = fleet.shares()
        summary["target_rps"] = round(rate, 2)
    finally:
        fleet.stop()
    log(f"{name}: {summary}")
    return summary


def verdicts(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's two targets for each prefix-scoring balancer run, against least-in-flight."""
    if "least_in_flight" not in runs:
        return []
    lif = runs["least_in_flight"]
    out = []
    for name in ("switchyard_prefix", "slo_prefix"):
        if name not in runs:
            continue
        px = runs[name]
        ratio = px["prefix_hit_rate"] / lif["prefix_hit_rate"] if lif["prefix_hit_rate"] else 0.0
        cut = 1 - px["ttft_p50_ms"] / lif["ttft_p50_ms"] if lif["ttft_p50_ms"] else 0.0
        out += [
            {"target": f"{name}: prefix-cache hit rate >= 1.5x least-in-flight's",
             "measured": f"{px['prefix_hit_rate']:.1%} vs {lif['prefix_hit_rate']:.1%} "
                         f"({ratio:.2f}x)", "pass": ratio >= 1.5},
            {"target": f"{name}: p50 TTFT >= 30% lower than least-in-flight's",
             "measured": f"{px['ttft_p50_ms']} ms vs {lif['ttft_p50_ms']} ms ({cut:.0%} lower)",
             "pass": cut >= 0.30},
        ]  # fmt: skip
    return out


def markdown(runs: dict[str, dict[str, Any]], checks: list[dict[str, Any]]) -> str:
    lines = [
        "| balancer | req/s offered | prefix-cache hit rate | TTFT p50 / p99 ms | "
        "e2e p50 / p99 ms | goodput req/s (share) | errors (unfinished) | "
        "finished on fast / medium / slow |",
        "|" + "---|" * 8,
    ]
    for name, r in runs.items():
        errors, shares = run_cells(r)
        lines.append(
            f"| {name} | {r['offered_rps']} | {r['prefix_hit_rate']:.1%} | {r['ttft_p50_ms']} / "
            f"{r['ttft_p99_ms']} | {r['e2e_p50_ms']} / {r['e2e_p99_ms']} | {r['goodput_rps']} "
            f"({r['goodput_share']:.0%}) | {errors} | {shares} |"
        )
    return "\n".join(lines + target_rows(checks))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=15.0, help="seconds of arrivals per run")
    p.add_argument("--grace", type=float, default=10.0, help="seconds to let requests finish")
    p.add_argument("--load", type=float, default=0.8, help="share of the no-cache capacity")
    p.add_argument("--balancers", default=",".join(BALANCERS))
    p.add_argument(
        "--systems", type=int, default=8, help="shared system prompts (0: one per session)"
    )
    p.add_argument(
        "--docs",
        type=int,
        default=0,
        help="documents of a shared corpus, retrieved by popularity (0: one per session)",
    )
    p.add_argument("--doc-tokens", type=int, default=400, help="tokens of each document")
    p.add_argument("--new-session", type=float, default=0.3, help="chance an arrival opens one")
    p.add_argument("--turns", type=int, default=5, help="turns per session")
    p.add_argument("--slo-ttft", type=float, default=1.0, help="goodput SLO: TTFT, seconds")
    p.add_argument("--slo-itl", type=float, default=0.05, help="goodput SLO: mean ITL, seconds")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="5 s runs (a smoke test)")
    p.add_argument("--logs", type=Path, default=Path(tempfile.gettempdir()) / "prefix-bench")
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args(argv)
    if a.quick:
        a.duration, a.grace = 5.0, 5.0
    return a


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    probe = LoadProbe()
    # The rate depends on the mean prompt, which depends on the plan: plan at a first guess,
    # then re-plan at the rate that guess gives (the mean moves little).
    rate = 10.0
    for _ in range(3):
        times = arrivals(rate, a.duration, False, random.Random(a.seed))
        bodies = plan(times, a)
        mean_prompt = statistics.fmean(prompt_tokens(m) for m in bodies)
        rate = a.load * capacity_rps(mean_prompt)
    times = arrivals(rate, a.duration, False, random.Random(a.seed))
    bodies = plan(times, a)
    log(f"{len(times)} requests at {rate:.1f} req/s; mean prompt {mean_prompt:.0f} tokens; "
        f"no-cache capacity {capacity_rps(mean_prompt):.1f} req/s")  # fmt: skip
    runs = {name: run_balancer(name, times, bodies, rate, a) for name in a.balancers.split(",")}
    checks = verdicts(runs)
    results = {
        "command": " ".join(["python", "bench/replica_bench_prefix.py", *(argv or sys.argv[1:])]),
        "capacity_rps_without_cache": round(capacity_rps(mean_prompt), 2),
        "mean_prompt_tokens": round(mean_prompt, 1),
        "load": a.load,
        "workload": {
            "systems": a.systems,
            "docs": a.docs,
            "doc_tokens": a.doc_tokens,
            "new_session": a.new_session,
            "turns": a.turns,
        },
        "replicas": [{"preset": p, "max_num_seqs": n} for p, n in REPLICAS],
        "slo": {"ttft_s": a.slo_ttft, "mean_itl_s": a.slo_itl},
        "duration_s": a.duration,
        "runs": runs,
        "targets": checks,
        "machine": machine_info(probe, ["aiohttp", "uvicorn"]),
    }
    write_results(markdown(runs, checks), results, a.out)


if __name__ == "__main__":
    main()
