"""Chaos run (issue 21): mixed traffic through two gateway replicas on one Redis while faults
are injected at random, one at a time.

Traffic: ``--concurrency`` clients send chat completions, JSON or streamed, routed ("auto")
or to a model, with an unlimited key or a key with an rpm limit, to a replica picked at
random (a refused connection is tried once on the other replica, as a load balancer would).
Faults, every few seconds, each healed before the next: a simulated backend killed and
restarted, a backend hanging, answering 5xx or 429 (``POST /sim/faults``), Redis killed and
restarted, a gateway replica killed and restarted.

Report (JSON on stdout and in ``--out``): requests sent, answered 2xx, errors explained by a
fault active around them (by fault), any other error (target 0), outcome records of 2xx
routed requests found in Redis's stream vs expected (target: none lost, except those a
replica answered in its last second before a kill, reported apart), the limited key's
admitted requests vs what its GCRA bound allows (never above), and each replica's RSS at
the start and the end.

    .venv/bin/python bench/chaos.py --duration 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
from chaoskit import EXPLAINS, LIMITED_KEY, MODELS, OPEN_KEY, Cluster, Fault

GRACE_S = 3.0  # after a fault is healed, breakers and backoffs settle within this
KILL_WINDOW_S = 1.0  # answers a replica gave this shortly before its kill may be unflushed


@dataclass
class Result:
    started: float
    ended: float
    replica: int
    limited: bool
    label: str  # "ok", "limited" (429 by the key's limit) or an error label
    decision: str | None = None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=300.0, help="Seconds of traffic.")
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--rpm", type=int, default=120, help="The limited key's rpm.")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--embedder-cache", type=Path, default=Path.home() / ".cache/switchyard")
    parser.add_argument("--out", type=Path, default=None, help="Also write the report here.")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="Keep the processes' logs here (default: a temporary directory, removed at the end).",
    )
    return parser.parse_args(argv)


async def one_request(client: httpx.AsyncClient, ports: list[int], rng: random.Random) -> Result:
    replica, limited = rng.randrange(len(ports)), rng.random() < 0.25
    routed, stream = rng.random() < 0.6, rng.random() < 0.4
    model = "auto" if routed else rng.choice(MODELS)[0]
    question = {"role": "user", "content": f"Question {rng.randrange(10**6)}?"}
    body = {"model": model, "max_tokens": 8, "stream": stream, "messages": [question]}
    headers = {"authorization": f"Bearer {LIMITED_KEY if limited else OPEN_KEY}"}
    started = time.monotonic()
    label, decision = "conn_refused", None
    for attempt in (replica, 1 - replica):
        url = f"http://127.0.0.1:{ports[attempt]}/v1/chat/completions"
        try:
            label, decision = await _send(client, url, body, headers, stream)
            replica = attempt
            break
        except httpx.ConnectError:
            continue
        except httpx.TimeoutException:
            label = "timeout"
            break
        except httpx.TransportError:
            label = "conn_broken"
            break
    return Result(started, time.monotonic(), replica, limited, label, decision)


async def _send(
    client: httpx.AsyncClient, url: str, body: Any, headers: dict[str, str], stream: bool
) -> tuple[str, str | None]:
    async with client.stream("POST", url, json=body, headers=headers) as resp:
        data = await resp.aread()
        decision = resp.headers.get("x-switchyard-decision-id")
        if resp.status_code != 200:
            code = json.loads(data).get("error", {}).get("code")
            if resp.status_code == 429 and code == "rate_limit_exceeded":
                return "limited", None
            return f"{resp.status_code}:{code}", None
        if stream:
            events = [ln for ln in data.split(b"\n") if ln.startswith(b"data:")]
            if not events or events[-1].strip() != b"data: [DONE]" or b'"error"' in data:
                return "stream_cut", None
        return "ok", decision


async def traffic(
    cluster: Cluster, until: float, concurrency: int, seed: int, results: list[Result]
) -> None:
    async def worker(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        timeout = httpx.Timeout(15.0, connect=1.0)
        async with httpx.AsyncClient(timeout=timeout) as client:
            while time.monotonic() < until:
                results.append(await one_request(client, cluster.gateway_ports, rng))
                await asyncio.sleep(rng.uniform(0.0, 0.02))

    await asyncio.gather(*(worker(n) for n in range(concurrency)))


async def inject(cluster: Cluster, until: float, seed: int, faults: list[Fault]) -> None:
    """One fault at a time until ``until``: wait, break something, hold, heal."""
    rng = random.Random(seed)
    order: list[str] = []
    while True:
        await asyncio.sleep(rng.uniform(2.0, 4.0))
        hold = rng.uniform(3.0, 5.0)
        if time.monotonic() + hold + 10 > until:
            return
        if not order:  # every kind once, in a random order, then again
            order = rng.sample(sorted(EXPLAINS), len(EXPLAINS))
        kind = order.pop()
        fault = await asyncio.to_thread(_break, cluster, kind, rng)
        faults.append(fault)
        await asyncio.sleep(hold)
        await asyncio.to_thread(_heal, cluster, fault)
        fault.healed = time.monotonic()
        print(f"  {kind} on {fault.target}: {fault.healed - fault.start:.1f}s", file=sys.stderr)


def _break(cluster: Cluster, kind: str, rng: random.Random) -> Fault:
    sim = rng.choice(sorted(cluster.sims))
    if kind == "backend_kill":
        cluster.sims[sim].kill()
    elif kind == "backend_hang":
        cluster.sim_faults(sim, hang_rate=0.5)
    elif kind == "backend_5xx":
        cluster.sim_faults(sim, error_rate=0.5, error_status=rng.choice([500, 502, 503]))
    elif kind == "backend_429":
        cluster.sim_faults(sim, error_rate=0.5, error_status=429)
    elif kind == "redis_kill":
        assert cluster.redis is not None
        cluster.redis.kill()
        sim = "redis"
    else:
        replica = rng.randrange(len(cluster.gateways))
        cluster.gateways[replica].kill()
        sim = f"gateway{replica}"
    return Fault(kind, sim, time.monotonic())


def _heal(cluster: Cluster, fault: Fault) -> None:
    if fault.kind == "backend_kill":
        cluster.restart_sim(fault.target)
    elif fault.kind.startswith("backend_"):
        cluster.sim_faults(fault.target, hang_rate=0.0, error_rate=0.0)
    elif fault.kind == "redis_kill":
        cluster.restart_redis()
    else:
        cluster.restart_gateway(int(fault.target.removeprefix("gateway")))


def explain(result: Result, faults: list[Fault]) -> str | None:
    """The kind of the first fault that explains this failed result, if any."""
    for fault in faults:
        if fault.explains(result.label, result.started, result.ended, GRACE_S):
            return fault.kind
    return None


def outcome_records(cluster: Cluster) -> set[str]:
    client = redis.Redis.from_url(cluster.redis_url)
    try:
        entries: Any = client.xrange("{switchyard}:outcomes")
    finally:
        client.close()
    return {json.loads(f[b"data"])["decision_id"] for _, f in entries if f[b"kind"] == b"outcome"}


def at_kill(result: Result, faults: list[Fault]) -> bool:
    return any(
        f.kind == "gateway_kill"
        and f.target == f"gateway{result.replica}"
        and f.start - KILL_WINDOW_S <= result.ended <= f.start
        for f in faults
    )


def _nearest(result: Result, faults: list[Fault], t0: float) -> dict[str, Any]:
    """When an unexplained error happened, and the fault nearest to it (for diagnosis)."""
    out: dict[str, Any] = {
        "label": result.label,
        "at_s": round(result.started - t0, 2),
        "took_s": round(result.ended - result.started, 2),
    }
    if faults:
        fault = min(faults, key=lambda f: abs(f.start - result.started))
        out["nearest_fault"] = fault.kind
        out["fault_s"] = [round(fault.start - t0, 2), round(fault.healed - t0, 2)]
    return out


def errors(results: list[Result], faults: list[Fault], t0: float) -> dict[str, Any]:
    explained: Counter[str] = Counter()
    unexplained: Counter[str] = Counter()
    details = []
    for r in results:
        if r.label in ("ok", "limited"):
            continue
        kind = explain(r, faults)
        (explained if kind else unexplained)[kind or r.label] += 1
        if kind is None:
            details.append(_nearest(r, faults, t0))
    return {
        "errors_explained_by_fault": dict(explained),
        "errors_unexplained": dict(unexplained),
        "errors_unexplained_detail": details[:20],
    }


def records(cluster: Cluster, results: list[Result], faults: list[Fault]) -> dict[str, Any]:
    routed = [r for r in results if r.label == "ok" and r.decision]
    written = outcome_records(cluster)
    risky = [r for r in routed if at_kill(r, faults)]
    lost = [r.decision for r in routed if r.decision not in written and not at_kill(r, faults)]
    return {
        "expected": len(routed),
        "written": sum(r.decision in written for r in routed),
        "lost": len(lost),
        "lost_ids": lost[:20],
        "answered_within_1s_of_a_replica_kill": len(risky),
        "lost_of_those": sum(r.decision not in written for r in risky),
    }


def admissions(results: list[Result], rpm: int) -> dict[str, Any]:
    """The limited key's requests that passed its limit (answered, or failed upstream) vs
    its GCRA bound; a broken connection's request may or may not have passed it."""
    limited = [r for r in results if r.limited]
    passed = [r for r in limited if r.label not in ("limited", "503:state_store_unavailable")]
    unknown = sum(r.label in ("conn_refused", "conn_broken", "timeout") for r in passed)
    span = (max(r.ended for r in limited) - min(r.started for r in limited)) if limited else 0
    return {
        "rpm": rpm,
        "sent": len(limited),
        "admitted": len(passed) - unknown,
        "broken_connections_admitted_or_not": unknown,
        "allowed_at_most": int(rpm * (1 + span / 60)),
        "span_s": round(span, 1),
    }


def report(
    cluster: Cluster,
    results: list[Result],
    faults: list[Fault],
    rss: dict[str, float],
    args: argparse.Namespace,
    t0: float,
) -> dict[str, Any]:
    return {
        "requests_sent": len(results),
        "answered_2xx": sum(r.label == "ok" for r in results),
        "refused_by_rate_limit": sum(r.label == "limited" for r in results),
        **errors(results, faults, t0),
        "faults_injected": dict(Counter(f.kind for f in faults)),
        "outcome_records": records(cluster, results, faults),
        "limited_key": admissions(results, args.rpm),
        "rss_mb": {
            name: {"start": rss[name], "end": round(proc.rss_mb(), 1), "starts": proc.starts}
            for name, proc in ((p.name, p) for p in cluster.gateways)
        },
    }


async def run(args: argparse.Namespace, cluster: Cluster) -> dict[str, Any]:
    results: list[Result] = []
    faults: list[Fault] = []
    rss = {proc.name: round(proc.rss_mb(), 1) for proc in cluster.gateways}
    t0 = time.monotonic()
    until = t0 + args.duration
    await asyncio.gather(
        traffic(cluster, until, args.concurrency, args.seed, results),
        inject(cluster, until, args.seed, faults),
    )
    await asyncio.sleep(3.0)  # buffered records reach Redis
    out = report(cluster, results, faults, rss, args, t0)
    out["faults"] = [asdict(f) | {"held_s": round(f.healed - f.start, 1)} for f in faults]
    for fault in out["faults"]:
        fault.pop("start"), fault.pop("healed")
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from switchyard.routers.embedding.export import export_onnx

    export_onnx(args.embedder_cache)  # once; nothing is written when it is already there
    with tempfile.TemporaryDirectory(prefix="switchyard-chaos-") as tmp:
        cluster = Cluster(args.workdir or Path(tmp), args.embedder_cache, args.rpm)
        try:
            cluster.start()
            out = asyncio.run(run(args, cluster))
        finally:
            cluster.stop()
    out["command"] = " ".join(["bench/chaos.py", *(argv if argv is not None else sys.argv[1:])])
    text = json.dumps(out, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":
    main()
