"""SLO-aware replica choice against round robin, least-in-flight and the default, in simulated
time: the §10 fleet and the gateway's own balancer code, driven by a virtual clock.

Why simulated time: on the shared 2-core machine the real-socket benches
(``replica_bench_load.py``) move by seconds between runs of one configuration, because the
replicas, the gateway and the load generator fight other engineers' jobs for the CPU. Here
nothing runs on a wall clock, so every balancer sees exactly the same arrivals and a run
repeats to the microsecond.

What is real: ``EndpointPool.pick`` with its balancers (``switchyard``, ``least_in_flight``,
``round_robin``, ``slo``), ``Endpoint`` (in-flight counts, sends since a snapshot, learned
hold times), ``EngineSnapshot``, the gateway's ``PrefixIndex`` and the simulator's own
``PrefixCache``. What is modelled: each replica's engine step by step as
``switchyard.backends.simulator.engine`` runs it (FIFO admission up to ``max_num_seqs``, the
uncached prompt prefilled in the admitting step, a step of ``decode_base_s + decode_s_per_seq
* running`` that gives every running sequence a token), a scrape of every replica each
``--scrape`` seconds (first at a random offset), and zero network time.

Fleet and load as §10: fast / medium / slow presets with 32 / 16 / 4 slots; Poisson arrivals
of streamed completions (32..96 output tokens) for ``--duration`` s at 50 / 80 / 95 % of
capacity and a burst (50 % with 4x the rate in the middle fifth); requests not finished
``--grace`` s after the last arrival are unfinished. Workloads: ``plain`` (a 12-token prompt,
as §10) and ``prefix`` (§20's chat sessions: one of 8 shared ~300-token system prompts, a
~400-token document, up to 5 turns; capacity counted without a prefix cache).
Goodput: TTFT <= 1 s and mean ITL <= 50 ms; a shed request (429) is a miss.

    python bench/slo_bench.py [--seeds 1,2,3,4,5] [--out PATH]
    python bench/slo_bench.py --micro     # µs per pick at 3 and 32 replicas
"""

from __future__ import annotations

import argparse
import functools
import heapq
import itertools
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

# The §10 fleet and workload, its capacity formula and arrivals, as the real-socket benches.
from replica_bench_load import REPLICAS, TOKENS, arrivals  # noqa: E402
from replica_bench_prefix import capacity_rps  # noqa: E402

from switchyard.backends.breaker import CircuitBreaker  # noqa: E402
from switchyard.backends.endpoint import Endpoint  # noqa: E402
from switchyard.backends.engine_state import EngineSnapshot, next_snapshot  # noqa: E402
from switchyard.backends.pool import EndpointPool  # noqa: E402
from switchyard.backends.prefix_blocks import PromptBlocks  # noqa: E402
from switchyard.backends.prefix_index import PrefixIndex  # noqa: E402
from switchyard.backends.replica import ReplicaPolicy  # noqa: E402
from switchyard.backends.simulator.config import PRESETS, PerfModel  # noqa: E402
from switchyard.backends.simulator.prefix_cache import PrefixCache  # noqa: E402
from switchyard.backends.slo import SloPolicy, SloShedError  # noqa: E402
from switchyard.backends.vllm_metrics import PageReading  # noqa: E402

OUT = BENCH_DIR / "results" / "replicas" / "slo_bench.json"
PHASES = {"50%": 0.5, "80%": 0.8, "95%": 0.95, "burst": 0.5}
# name -> (pool balancer, uses the prefix index, aims at the ITL target too)
BALANCERS = {
    "round_robin": ("round_robin", False, False),
    "least_in_flight": ("least_in_flight", False, False),
    "switchyard": ("switchyard", False, False),
    "slo": ("slo", False, False),
    "slo_prefix": ("slo", True, False),
    "slo_itl": ("slo", False, True),
}
SIM_BLOCK, INDEX_BLOCK = 16, 64


@dataclass
class Request:
    sent: float
    tokens: int
    prompt: tuple[int, ...]  # token ids (only their identity matters: prefix caching)
    first: float | None = None
    end: float | None = None
    shed: bool = False
    generated: int = 0
    endpoint: Endpoint | None = None
    cached_blocks: tuple[int, ...] = ()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (when, next(self._order), action))

    def run_until(self, end: float) -> None:
        while self._events and self._events[0][0] <= end:
            self.now, _, action = heapq.heappop(self._events)
            action()
        self.now = end


@dataclass
class Replica:
    """One simulated engine, stepped as ``simulator.engine.Engine`` steps."""

    perf: PerfModel
    seqs: int
    clock: Clock
    cache: PrefixCache | None
    done: Callable[[Request], None]
    waiting: list[Request] = field(default_factory=list)
    running: list[Request] = field(default_factory=list)
    stepping: bool = False
    queried: int = 0  # prompt tokens looked up in the prefix cache (vLLM's queries counter)
    hits: int = 0  # of them found cached
    step_s: float = 0.0  # the step under way
    itl_sum_s: float = 0.0  # seconds between tokens, all requests (vLLM's ITL histogram sum)
    itl_count: int = 0  # gaps between tokens counted

    def submit(self, req: Request) -> None:
        self.waiting.append(req)
        if not self.stepping:
            self.stepping = True
            self._step()

    def _step(self) -> None:
        if not self.running and not self.waiting:
            self.stepping = False
            return
        room = self.seqs - len(self.running)
        admitted, self.waiting = self.waiting[:room], self.waiting[room:]
        prefill, cache = 0, self.cache
        for req in admitted:
            # "is not None": an empty PrefixCache is false (it has a __len__).
            cached = cache.admit(req.cached_blocks, len(req.prompt)) if cache is not None else 0
            prefill += len(req.prompt) - cached
            self.queried += len(req.prompt)
            self.hits += cached
        self.running.extend(admitted)
        perf = self.perf
        step = perf.prefill_s_per_token * prefill + perf.decode_base_s
        step += perf.decode_s_per_seq * len(self.running)
        self.step_s = step
        self.clock.at(self.clock.now + step, self._deliver)

    def _deliver(self) -> None:
        now = self.clock.now
        still = []
        for req in self.running:
            req.generated += 1
            if req.generated > 1:  # the step was the gap since its previous token
                self.itl_sum_s += self.step_s
                self.itl_count += 1
            if req.generated == 1:
                req.first = now
                assert req.endpoint is not None
                req.endpoint.starting -= 1  # the gateway sees the first chunk
            if req.generated >= req.tokens:
                req.end = now
                self.done(req)
            else:
                still.append(req)
        self.running = still
        self._step()


class _Backend:
    def __init__(self, name: str) -> None:
        self.base_url = name


def chain(tokens: tuple[int, ...], block: int) -> tuple[int, ...]:
    """Hashes of the prompt's full blocks, each over the previous one (as vLLM chains them)."""
    out, h = [], 0
    for i in range(0, len(tokens) - block + 1, block):
        h = hash((h, tokens[i : i + block]))
        out.append(h)
    return tuple(out)


def plain_prompts(n: int, rng: random.Random) -> list[tuple[int, ...]]:
    return [tuple(range(12))] * n


def session_prompts(n: int, rng: random.Random, systems: int = 8, doc_tokens: int = 400,
                    docs: int = 0, turns_per_session: int = 5,
                    ) -> list[tuple[int, ...]]:  # fmt: skip
    """§20's chat sessions: one of ``systems`` shared system prompts (0: one per session), a
    document (its own, or with ``docs`` one of a shared corpus, the k-th most read with
    weight 1/k: retrieval over one knowledge base), a question, up to ``turns_per_session``
    turns."""
    fresh = itertools.count(1_000_000)
    shared = [tuple(next(fresh) for _ in range(300)) for _ in range(systems)]
    corpus = [tuple(next(fresh) for _ in range(doc_tokens)) for _ in range(docs)]
    popularity = [1 / (k + 1) for k in range(docs)]
    open_: list[list[int]] = []
    turns: dict[int, int] = {}
    out = []
    for _ in range(n):
        if not open_ or rng.random() < 0.3:
            system = rng.choice(shared) if shared else tuple(next(fresh) for _ in range(300))
            doc = rng.choices(corpus, popularity)[0] if corpus else ()
            own = 0 if corpus else doc_tokens
            session = [*system, *doc, *(next(fresh) for _ in range(own + 20))]
            open_.append(session)
            turns[id(session)] = 0
        else:
            session = rng.choice(open_)
            session.extend(next(fresh) for _ in range(74))
        turns[id(session)] += 1
        out.append(tuple(session))
        if turns[id(session)] >= turns_per_session:
            open_.remove(session)
    return out


def build_pool(name: str, clock: Clock, seed: int, slo: SloPolicy) -> EndpointPool:
    balancer, indexed, _ = BALANCERS[name]
    endpoints = [
        Endpoint(_Backend(f"http://{preset}/v1"), CircuitBreaker(3, 2.0),  # type: ignore[arg-type]
                 max_num_seqs=seqs, prefill_s_per_token=PRESETS[preset].prefill_s_per_token,
                 clock=lambda: clock.now)
        for preset, seqs in REPLICAS
    ]  # fmt: skip
    return EndpointPool(
        "m", endpoints, balancer=balancer, rng=random.Random(seed),
        policy=ReplicaPolicy(choices=3, max_snapshot_age_s=3.0), clock=lambda: clock.now,
        prefix_index=PrefixIndex(65_536) if indexed else None, slo=slo,
    )  # fmt: skip


def run(name: str, phase: str, workload: str, seed: int, a: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(seed)
    make = plain_prompts
    if workload == "prefix":
        make = functools.partial(session_prompts, systems=a.systems, doc_tokens=a.doc_tokens,
                                 docs=a.docs, turns_per_session=a.turns)  # fmt: skip
    probe = make(2000, random.Random(seed + 7))
    rate = PHASES[phase] * capacity_rps(statistics.fmean(len(p) for p in probe))
    times = arrivals(rate, a.duration, phase == "burst", rng)
    prompts = make(len(times), random.Random(seed + 1))
    clock = Clock()
    itl = a.slo_itl if BALANCERS[name][2] else None
    slo = SloPolicy(ttft_s=a.slo_ttft, shed=not a.no_shed, shed_below=a.shed_below, itl_s=itl)
    pool = build_pool(name, clock, seed, slo)
    snapshots: dict[str, EngineSnapshot] = {}
    pool._snapshots = snapshots.get  # the scraper's latest snapshot per endpoint

    def finished(req: Request) -> None:
        assert req.endpoint is not None and req.first is not None and req.end is not None
        req.endpoint.in_flight -= 1
        req.endpoint.observe_service(req.end - req.first)

    replicas = {}
    for ep, (preset, seqs) in zip(pool.endpoints, REPLICAS, strict=True):
        perf = PRESETS[preset]
        kv_tokens = int(perf.kv_cache_tokens * a.kv_scale)
        cache = PrefixCache(kv_tokens // SIM_BLOCK) if workload == "prefix" else None
        replicas[ep.name] = Replica(perf, seqs, clock, cache, finished)
    requests = []
    for t, prompt in zip(times, prompts, strict=True):
        req = Request(t, rng.randint(*TOKENS), prompt)
        requests.append(req)
        clock.at(t, lambda req=req: send(pool, replicas, req))  # type: ignore[misc]
    offset = random.Random(seed + 3).random() * a.scrape
    for k in range(int((a.duration + a.grace) / a.scrape) + 1):
        clock.at(offset + k * a.scrape, lambda: scrape(clock, replicas, snapshots))
    clock.run_until(a.duration + a.grace)
    out = summarize(requests, a)
    queried = sum(r.queried for r in replicas.values())
    hits = sum(r.hits for r in replicas.values())
    if workload == "prefix" and not hits:
        # Until 2026-12-03 an empty cache read as false and nothing was ever cached.
        raise RuntimeError("the prefix workload found nothing cached: the caches are not used")
    out["hit_rate"] = round(hits / max(queried, 1), 3)
    out["oracle_hit_rate"] = oracle_hit_rate(prompts)
    return out


def oracle_hit_rate(prompts: list[tuple[int, ...]]) -> float:
    """The hit rate of one unbounded cache that saw every earlier prompt: what no placement
    on this plan can beat."""
    cache = PrefixCache(1 << 40)
    hits = sum(cache.admit(chain(p, SIM_BLOCK), len(p)) for p in prompts)
    return round(hits / max(sum(len(p) for p in prompts), 1), 3)


def send(pool: EndpointPool, replicas: dict[str, Replica], req: Request) -> None:
    prefix = None
    if pool.prefix_index is not None:
        prefix = PromptBlocks(chain(req.prompt, INDEX_BLOCK), len(req.prompt), INDEX_BLOCK)
    try:
        endpoint = pool.pick(prefix=prefix)
    except SloShedError:
        req.shed = True
        return
    assert endpoint is not None
    endpoint.on_send(retry=False)
    endpoint.starting += 1  # a stream, as dispatch counts it until its first chunk
    req.endpoint = endpoint
    req.cached_blocks = chain(req.prompt, SIM_BLOCK)
    replicas[endpoint.name].submit(req)


def scrape(clock: Clock, replicas: dict[str, Replica], out: dict[str, EngineSnapshot]) -> None:
    """Each replica's page as the gateway's scraper reads it (``next_snapshot``: the ITL is
    the mean since the previous scrape)."""
    for name, r in replicas.items():
        page = PageReading(
            waiting=len(r.waiting), running=len(r.running), itl_sum_s=r.itl_sum_s,
            itl_count=r.itl_count,
            kv_capacity_tokens=r.cache.capacity_blocks * SIM_BLOCK if r.cache is not None else None,
        )  # fmt: skip
        out[name] = next_snapshot(page, clock.now, out.get(name))


def summarize(requests: list[Request], a: argparse.Namespace) -> dict[str, Any]:
    cutoff = a.duration + a.grace
    good = shed = unfinished = 0
    ttft = []
    for r in requests:
        if r.shed:
            shed += 1
            continue
        first = r.first if r.first is not None else cutoff
        ttft.append(first - r.sent)
        if r.end is None:
            unfinished += 1
            continue
        itl = (r.end - first) / max(r.tokens - 1, 1)
        good += first - r.sent <= a.slo_ttft and itl <= a.slo_itl
    ordered = sorted(ttft) or [0.0]

    def pct(q: float) -> float:
        return round(ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1e3, 1)

    return {
        "requests": len(requests), "goodput_rps": round(good / a.duration, 2),
        "goodput_share": round(good / max(len(requests), 1), 3),
        "ttft_p50_ms": pct(0.5), "ttft_p99_ms": pct(0.99),
        "shed": shed, "unfinished": unfinished,
        "on": {n: sum(r.endpoint is not None and r.endpoint.name == f"http://{n}/v1"
                      for r in requests) for n, _ in REPLICAS},
    }  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--grace", type=float, default=10.0)
    p.add_argument("--scrape", type=float, default=1.0, help="scrape interval, seconds")
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--balancers", default=",".join(BALANCERS))
    p.add_argument("--phases", default=",".join(PHASES))
    p.add_argument("--workloads", default="plain,prefix")
    p.add_argument(
        "--systems",
        type=int,
        default=8,
        help="prefix workload: shared system prompts (0: one per session)",
    )
    p.add_argument(
        "--doc-tokens",
        type=int,
        default=400,
        help="prefix workload: tokens of each session's own document",
    )
    p.add_argument(
        "--docs",
        type=int,
        default=0,
        help="prefix workload: documents of a shared corpus (0: one per session)",
    )
    p.add_argument("--turns", type=int, default=5, help="prefix workload: turns per session")
    p.add_argument(
        "--kv-scale",
        type=float,
        default=1.0,
        help="each replica's KV pool (its prefix cache) as a share of its preset's: "
        "below 1, cache pressure (a bigger model, or long contexts running)",
    )
    p.add_argument("--slo-ttft", type=float, default=1.0)
    p.add_argument("--slo-itl", type=float, default=0.05)
    p.add_argument("--shed-below", type=float, default=SloPolicy().shed_below)
    p.add_argument("--no-shed", action="store_true", help="slo balancer without shedding")
    p.add_argument(
        "--micro", action="store_true", help="only the cost of a pick, 3 and 32 replicas"
    )
    p.add_argument("--out", type=Path, default=OUT)
    return p.parse_args(argv)


def micro(replicas: int, balancer: str, calls: int = 2000, batches: int = 30) -> float:
    """Median µs per ``pick`` over ``batches`` of ``calls`` (fresh snapshots of varied load,
    every endpoint's hold time known, so the slo balancer runs its whole prediction)."""
    rng = random.Random(replicas)
    endpoints = []
    snapshots = {}
    for i in range(replicas):
        ep = Endpoint(_Backend(f"http://r{i}/v1"), CircuitBreaker(3, 2.0),  # type: ignore[arg-type]
                      max_num_seqs=rng.choice((8, 32, 64)))  # fmt: skip
        ep.service_s = rng.uniform(0.5, 3.0)
        endpoints.append(ep)
        snapshots[ep.name] = EngineSnapshot(rng.randint(0, 40), rng.randint(1, 64), 0.0)
    pool = EndpointPool(
        "m", endpoints, balancer=balancer, snapshots=snapshots.get, rng=random.Random(1),
        policy=ReplicaPolicy(choices=3), clock=lambda: 0.5, slo=SloPolicy(shed=False),
    )  # fmt: skip
    out = []
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(calls):
            pool.pick()
        out.append((time.perf_counter() - start) / calls * 1e6)
    return round(statistics.median(out), 2)


def micro_table() -> str:
    lines = ["| replicas | round_robin µs | switchyard µs | slo µs | slo − round_robin µs |",
             "|---:|---:|---:|---:|---:|"]  # fmt: skip
    for n in (3, 32):
        rr, sy, slo = (micro(n, b) for b in ("round_robin", "switchyard", "slo"))
        lines.append(f"| {n} | {rr} | {sy} | {slo} | {round(slo - rr, 2)} |")
    return "\n".join(lines)


def median_cell(runs: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 2)


def hit_cell(runs: list[dict[str, Any]]) -> str:
    return f"{median_cell(runs, 'hit_rate'):.0%} ({median_cell(runs, 'oracle_hit_rate'):.0%})"


def markdown(table: dict[str, dict[str, dict[str, list[dict[str, Any]]]]]) -> str:
    lines = [
        "| workload | load | balancer | goodput req/s | goodput share | TTFT p50 / p99 ms "
        "(served) | shed | unfinished | prefix-cache hit rate (oracle) |",
        "|" + "---|" * 9,
    ]
    for workload, phases in table.items():
        for phase, balancers in phases.items():
            for name, runs in balancers.items():
                lines.append(
                    f"| {workload} | {phase} | {name} | {median_cell(runs, 'goodput_rps')} | "
                    f"{median_cell(runs, 'goodput_share'):.0%} | "
                    f"{median_cell(runs, 'ttft_p50_ms')} / {median_cell(runs, 'ttft_p99_ms')} | "
                    f"{median_cell(runs, 'shed'):g} | {median_cell(runs, 'unfinished'):g} | "
                    f"{hit_cell(runs) if workload == 'prefix' else '–'} |"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import json

    a = parse_args(argv)
    if a.micro:
        text = micro_table()
        print(text)
        a.out.with_name("slo_micro_bench.json").write_text(json.dumps({"markdown": text}))
        return
    seeds = [int(s) for s in a.seeds.split(",")]
    table: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {}
    started = time.perf_counter()
    for workload in a.workloads.split(","):
        for phase in a.phases.split(","):
            for name in a.balancers.split(","):
                if BALANCERS[name][1] and workload != "prefix":
                    continue
                runs = [run(name, phase, workload, seed, a) for seed in seeds]
                table.setdefault(workload, {}).setdefault(phase, {})[name] = runs
    text = markdown(table)
    print(text)
    print(f"({time.perf_counter() - started:.1f} s of wall time)")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({
        "command": " ".join(["python", "bench/slo_bench.py", *(argv or sys.argv[1:])]),
        "seeds": seeds, "duration_s": a.duration, "scrape_s": a.scrape,
        "slo": {"ttft_s": a.slo_ttft, "mean_itl_s": a.slo_itl, "shed_below": a.shed_below},
        "runs": table, "markdown": text,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
