"""Load-aware replica choice under open-loop load: round robin vs least-in-flight vs Switchyard.

Setup
  Three simulated vLLM replicas of one model, each its own process, with the simulator's
  presets' step timings — fast (H100-like), medium (A100-like), slow (L4-like) — and their
  batch sizes scaled down (``--max-num-seqs 32,16,4``, the same 8:4:1 spirit as 256/128/32)
  so that the replicas, the gateway and the load generator share 2 cores without the CPU
  being the bottleneck. One gateway process (``switchyard serve``) in front, its
  ``upstream.balancer`` set per run, default scrape interval (1 s); each endpoint's
  ``max_num_seqs`` is in its config, as the placement planner would write it.

Load
  Open-loop Poisson arrivals (a request is sent at its time whether or not earlier ones
  finished) of streamed chat completions with 32..96 output tokens (uniform), at 50 %, 80 %
  and 95 % of the fleet's capacity (from the performance model: full-batch tokens/s summed
  over the replicas, divided by the mean output length), plus a burst phase (50 % with 200 %
  for the middle fifth). Each (balancer, phase) runs on a freshly started fleet. Requests
  still open ``--grace`` seconds after the phase are cancelled and counted unfinished; their
  latencies enter the percentiles as lower bounds (the cut-off time).

Measured per run: p50/p99 end-to-end latency and time to first token (TTFT, first streamed
chunk at the client), goodput (requests/s meeting the SLO: TTFT <= ``--slo-ttft`` and mean
inter-token latency <= ``--slo-itl``), errors, and each replica's share of requests (the
gateway's own counters). Then the fault run: at 50 % load the medium replica is killed
(SIGKILL) a third of the way in and restarted at two thirds; requests are split into those
that had not started streaming (target: zero errors) and streams cut on the dead replica
(which must end with an error event, not silently).

    python bench/replica_bench_load.py [--duration 15] [--quick] [--out PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from benchkit import (
    LOOPBACK,
    chat_body,
    free_port,
    gateway_argv,
    log,
    simulator_argv,
    stop_group,
    wait_ready,
)
from routerkit import LoadProbe, machine_info, write_results

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from switchyard.backends.simulator.config import PRESETS  # noqa: E402

OUT = BENCH_DIR / "results" / "replicas" / "replica_bench_load.json"
BALANCERS = ("round_robin", "least_in_flight", "switchyard")
# Switchyard with two sampled replicas per pick instead of three (upstream.replica_choices).
VARIANTS: dict[str, dict[str, Any]] = {
    "switchyard_p2c": {"balancer": "switchyard", "replica_choices": 2},
    "slo_itl": {"balancer": "slo"},  # with upstream.slo.itl_s = --slo-itl (fleet_for)
}
REPLICAS = (("fast", 32), ("medium", 16), ("slow", 4))
MODEL = "m"
TOKENS = (32, 96)
PHASES = {"50%": 0.5, "80%": 0.8, "95%": 0.95, "burst": 0.5}


def capacity_rps(replicas: tuple[tuple[str, int], ...] = REPLICAS) -> float:
    """Requests/s the fleet completes at full batches (decode-bound, prompts are short)."""
    tokens_per_s = 0.0
    for preset, seqs in replicas:
        perf = PRESETS[preset]
        tokens_per_s += seqs / (perf.decode_base_s + perf.decode_s_per_seq * seqs)
    return tokens_per_s / statistics.fmean(TOKENS)


def start_process(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """``argv`` in its own session (so stopping it stops only its group), output to a log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip


def kill_now(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group this script started for ``proc`` (a crash, not a stop)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    proc.wait(timeout=5)


@dataclass
class Outcome:
    sent: float
    first: float | None = None
    end: float | None = None
    chunks: int = 0
    status: int = 0
    error: str = ""  # "" ok; "http", "connect", "stream_error_event", "stream_cut", "unfinished"


@dataclass
class Fleet:
    """Three simulators and a gateway, each its own process group."""

    balancer: str
    logs: Path
    sims: list[Any] = field(default_factory=list)
    sim_ports: list[int] = field(default_factory=list)
    gateway: Any = None
    port: int = 0
    upstream: dict[str, Any] = field(default_factory=dict)  # more upstream settings

    def start(self) -> None:
        for preset, seqs in REPLICAS:
            port = free_port()
            argv = [*simulator_argv(MODEL, port, preset), "--max-num-seqs", str(seqs)]
            self.sims.append(start_process(argv, self.logs / f"sim-{preset}.log"))
            self.sim_ports.append(port)
        self.port = free_port()
        config = self._config()
        self.gateway = start_process(gateway_argv(config, self.port), self.logs / "gateway.log")
        body = chat_body(MODEL, False, 1)
        for port, proc in zip(self.sim_ports, self.sims, strict=True):
            wait_ready(f"http://{LOOPBACK}:{port}/v1/chat/completions", body, proc, 30)
        wait_ready(f"{self.url}/chat/completions", body, self.gateway, 60)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/v1"

    def _config(self) -> Path:
        endpoints = [
            {"url": f"http://{LOOPBACK}:{port}/v1", "max_num_seqs": seqs,
             "prefill_s_per_token": PRESETS[preset].prefill_s_per_token}
            for port, (preset, seqs) in zip(self.sim_ports, REPLICAS, strict=True)
        ]  # fmt: skip
        config = {
            "server": {"host": LOOPBACK, "port": self.port, "workers": 1, "log_level": "warning"},
            "upstream": {
                "balancer": self.balancer,
                **VARIANTS.get(self.balancer, {}),
                **self.upstream,
                "connect_timeout_s": 0.5,
                "breaker_failures": 3,
                "breaker_cooldown_s": 2.0,
            },
            "models": [{"name": MODEL, "price_input_per_mtok": 1, "price_output_per_mtok": 2,
                        "endpoints": endpoints}],
        }  # fmt: skip
        path = Path(tempfile.mkstemp(prefix="replica-bench-", suffix=".yaml")[1])
        path.write_text(json.dumps(config))  # JSON is YAML
        return path

    def kill(self, index: int) -> None:
        kill_now(self.sims[index])

    def restart(self, index: int) -> None:
        preset, seqs = REPLICAS[index]
        argv = [*simulator_argv(MODEL, self.sim_ports[index], preset), "--max-num-seqs", str(seqs)]
        self.sims[index] = start_process(argv, self.logs / f"sim-{preset}.log")

    def shares(self) -> dict[str, float]:
        """Requests each replica finished (any status), by preset, from the gateway."""
        text = urllib.request.urlopen(f"http://{LOOPBACK}:{self.port}/metrics", timeout=5).read()
        counts = dict.fromkeys((p for p, _ in REPLICAS), 0.0)
        for line in text.decode().splitlines():
            if not line.startswith("switchyard_requests_total{"):
                continue
            for (preset, _), port in zip(REPLICAS, self.sim_ports, strict=True):
                if f":{port}/v1" in line:
                    counts[preset] += float(line.rsplit(" ", 1)[1])
        return counts

    def stop(self) -> None:
        stop_group(self.gateway)
        for proc in self.sims:
            stop_group(proc)


async def one_request(
    session: aiohttp.ClientSession, url: str, tokens: int, out: Outcome,
    messages: list[dict[str, str]] | None = None,
) -> None:  # fmt: skip
    messages = messages or [{"role": "user", "content": "Tell me about load balancing."}]
    body = {"model": MODEL, "max_tokens": tokens, "stream": True, "messages": messages}
    try:
        async with session.post(f"{url}/chat/completions", json=body) as resp:
            out.status = resp.status
            if resp.status != 200:
                out.error = "http"
                await resp.read()
                return
            done = False
            async for line in resp.content:
                if not line.startswith(b"data:"):
                    continue
                if out.first is None:
                    out.first = time.perf_counter()
                if b'"error"' in line:
                    out.error = "stream_error_event"
                elif line.strip() == b"data: [DONE]":
                    done = True
                else:
                    out.chunks += 1
            if not done and not out.error:
                out.error = "stream_cut"
    except (aiohttp.ClientError, OSError):
        out.error = out.error or ("stream_cut" if out.first is not None else "connect")
    finally:
        out.end = time.perf_counter()


def arrivals(rate: float, duration: float, burst: bool, rng: random.Random) -> list[float]:
    """Poisson arrival offsets (s); a burst phase runs 4x the rate in its middle fifth."""
    times, t = [], 0.0
    while True:
        mid = burst and 0.4 * duration <= t < 0.6 * duration
        t += rng.expovariate(rate * (4.0 if mid else 1.0))
        if t >= duration:
            return times
        times.append(t)


async def run_load(
    url: str, rate: float, duration: float, burst: bool, grace: float, seed: int,
    outcomes: list[Outcome], events: list[tuple[float, Any]] | None = None,
) -> float:  # fmt: skip
    """Send the arrivals (appending to ``outcomes``; ``events``: (offset, action) to run on
    the way); returns the wall time the phase took."""
    rng = random.Random(seed)
    plan = arrivals(rate, duration, burst, rng)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=duration + grace + 60)
    tasks: list[asyncio.Task[None]] = []
    pending_events = sorted(events or [], key=lambda e: e[0])
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        for offset in plan:
            while pending_events and pending_events[0][0] <= offset:
                pending_events.pop(0)[1]()
            await asyncio.sleep(max(0.0, start + offset - time.perf_counter()))
            out = Outcome(sent=time.perf_counter())
            outcomes.append(out)
            tokens = rng.randint(*TOKENS)
            tasks.append(asyncio.create_task(one_request(session, url, tokens, out)))
        for _, action in pending_events:
            action()
        _, late = await asyncio.wait(tasks, timeout=grace) if tasks else (set(), set())
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        for task, out in zip(tasks, outcomes, strict=True):
            if task in late:
                out.error = "unfinished"
        return time.perf_counter() - start


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1e3, 1)


def summarize(
    outcomes: list[Outcome], duration: float, slo_ttft: float, slo_itl: float
) -> dict[str, Any]:
    ttft, e2e, good = [], [], 0
    for o in outcomes:
        end = o.end if o.end is not None else o.sent
        first = o.first if o.first is not None else end
        ttft.append(first - o.sent)
        e2e.append(end - o.sent)
        itl = (end - first) / max(o.chunks - 1, 1)
        if not o.error and first - o.sent <= slo_ttft and itl <= slo_itl:
            good += 1
    errors: dict[str, int] = {}
    for o in outcomes:
        if o.error:
            errors[o.error] = errors.get(o.error, 0) + 1
    return {
        "requests": len(outcomes),
        "offered_rps": round(len(outcomes) / duration, 2),
        "ttft_p50_ms": pct(ttft, 0.5), "ttft_p99_ms": pct(ttft, 0.99),
        "e2e_p50_ms": pct(e2e, 0.5), "e2e_p99_ms": pct(e2e, 0.99),
        "goodput_rps": round(good / duration, 2),
        "goodput_share": round(good / max(len(outcomes), 1), 3),
        "errors": errors,
    }  # fmt: skip


def fleet_for(balancer: str, a: argparse.Namespace) -> Fleet:
    """The fleet for ``balancer``; ``slo_itl`` aims at the goodput's ITL target too."""
    upstream = {"slo": {"itl_s": a.slo_itl}} if balancer == "slo_itl" else {}
    return Fleet(balancer, a.logs, upstream=upstream)


def run_phase(balancer: str, phase: str, a: argparse.Namespace) -> dict[str, Any]:
    fleet = fleet_for(balancer, a)
    try:
        fleet.start()
        rate = PHASES[phase] * capacity_rps()
        outcomes: list[Outcome] = []
        load = run_load(fleet.url, rate, a.duration, phase == "burst", a.grace, a.seed, outcomes)
        asyncio.run(load)
        summary = summarize(outcomes, a.duration, a.slo_ttft, a.slo_itl)
        summary["replica_requests"] = fleet.shares()
    finally:
        fleet.stop()
    log(f"{balancer} {phase}: {summary}")
    return summary


def run_fault(balancer: str, a: argparse.Namespace) -> dict[str, Any]:
    """50 % load; the medium replica is killed at 1/3 of the run and restarted at 2/3."""
    fleet = fleet_for(balancer, a)
    outcomes: list[Outcome] = []
    streaming: set[int] = set()

    def kill() -> None:
        streaming.update(id(o) for o in outcomes if o.first is not None and o.end is None)
        fleet.kill(1)

    try:
        fleet.start()
        events = [(a.duration / 3, kill), (2 * a.duration / 3, lambda: fleet.restart(1))]
        rate = 0.5 * capacity_rps()
        asyncio.run(run_load(fleet.url, rate, a.duration, False, a.grace, a.seed, outcomes, events))
        summary = summarize(outcomes, a.duration, a.slo_ttft, a.slo_itl)
        summary["replica_requests"] = fleet.shares()
    finally:
        fleet.stop()
    # A request that got no 200 and no byte of a stream saw its error before streaming
    # (HTTP error or connection failure); any other error cut a stream that had started.
    # ("unfinished" is the bench's own cut-off, not an error the client was shown.)
    summary["streaming_at_kill_seen_by_client"] = len(streaming)
    summary["errors_before_streaming"] = sum(o.error in ("http", "connect") for o in outcomes)
    summary["streams_cut"] = sum(o.error in ("stream_error_event", "stream_cut") for o in outcomes)
    summary["streams_cut_with_error_event"] = sum(o.error == "stream_error_event" for o in outcomes)
    log(f"{balancer} kill: {summary}")
    return summary


def verdicts(runs: dict[str, dict[str, Any]], faults: dict[str, Any]) -> list[dict[str, Any]]:
    rr, lif, sy = (runs[b]["80%"] for b in BALANCERS)
    cut = (rr["ttft_p99_ms"] - sy["ttft_p99_ms"]) / rr["ttft_p99_ms"] if rr["ttft_p99_ms"] else 0
    out = [
        {"target": "80% load: p99 TTFT >= 30% lower than round robin",
         "measured": f"{sy['ttft_p99_ms']} ms vs {rr['ttft_p99_ms']} ms ({cut:.0%} lower)",
         "pass": cut >= 0.30},
        {"target": "80% load: goodput higher than both baselines",
         "measured": f"{sy['goodput_rps']} vs {rr['goodput_rps']} (RR), "
                     f"{lif['goodput_rps']} (least in flight) req/s",
         "pass": sy["goodput_rps"] > max(rr["goodput_rps"], lif["goodput_rps"])},
    ]  # fmt: skip
    for balancer, f in faults.items():
        clear = f["streams_cut_with_error_event"] == f["streams_cut"]
        out.append({
            "target": f"kill 1 of 3 ({balancer}): 0 errors before streaming; cut streams end "
                      "with an error event",
            "measured": f"{f['errors_before_streaming']} errors before streaming of "
                        f"{f['requests']} requests; {f['streams_cut_with_error_event']} of "
                        f"{f['streams_cut']} cut streams with an error event",
            "pass": f["errors_before_streaming"] == 0 and clear,
        })  # fmt: skip
    return out


def markdown(runs: dict[str, dict[str, Any]], faults: dict[str, Any], checks: list[Any]) -> str:
    head = (
        "| balancer | load | req/s offered | TTFT p50 / p99 ms | e2e p50 / p99 ms | "
        "goodput req/s (share) | errors (unfinished) | finished on fast / medium / slow |"
    )
    lines = [head, "|" + "---|" * 8]
    for balancer, phases in runs.items():
        for phase, r in phases.items():
            errors, shares = run_cells(r)
            lines.append(
                f"| {balancer} | {phase} | {r['offered_rps']} | {r['ttft_p50_ms']} / "
                f"{r['ttft_p99_ms']} | {r['e2e_p50_ms']} / {r['e2e_p99_ms']} | "
                f"{r['goodput_rps']} ({r['goodput_share']:.0%}) | {errors} | {shares} |"
            )
    return "\n".join(lines + target_rows(checks))


def run_cells(r: dict[str, Any]) -> tuple[str, str]:
    """A run's "errors (unfinished)" and "finished on fast / medium / slow" table cells."""
    unfinished = r["errors"].get("unfinished", 0)
    errors = f"{sum(r['errors'].values()) - unfinished} ({unfinished})"
    return errors, " / ".join(f"{v:.0f}" for v in r["replica_requests"].values())


def target_rows(checks: list[dict[str, Any]]) -> list[str]:
    """The targets table: each target, its measured value, pass or miss."""
    rows = ["", "| target | measured | result |", "|---|---|---|"]
    return rows + [
        f"| {c['target']} | {c['measured']} | {'pass' if c['pass'] else 'miss'} |" for c in checks
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=15.0, help="seconds of arrivals per run")
    p.add_argument("--grace", type=float, default=10.0, help="seconds to let requests finish")
    p.add_argument("--balancers", default=",".join([*BALANCERS, *VARIANTS]))
    p.add_argument("--phases", default=",".join(PHASES))
    p.add_argument("--slo-ttft", type=float, default=1.0, help="goodput SLO: TTFT, seconds")
    p.add_argument("--slo-itl", type=float, default=0.05, help="goodput SLO: mean ITL, seconds")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-fault", action="store_true", help="skip the kill-a-replica runs")
    p.add_argument("--quick", action="store_true", help="5 s runs, 80%% only (a smoke test)")
    p.add_argument("--logs", type=Path, default=Path(tempfile.gettempdir()) / "replica-bench")
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args(argv)
    if a.quick:
        a.duration, a.grace, a.phases = 5.0, 5.0, "80%"
    return a


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    probe = LoadProbe()
    balancers, phases = a.balancers.split(","), a.phases.split(",")
    log(f"capacity {capacity_rps():.1f} req/s; SLO TTFT <= {a.slo_ttft}s, ITL <= {a.slo_itl}s")
    runs = {b: {ph: run_phase(b, ph, a) for ph in phases} for b in balancers}
    faults = {} if a.no_fault else {b: run_fault(b, a) for b in ("round_robin", "switchyard")}
    checks = verdicts(runs, faults) if set(BALANCERS) <= set(runs) and "80%" in phases else []
    results = {
        "command": " ".join(["python", "bench/replica_bench_load.py", *(argv or sys.argv[1:])]),
        "capacity_rps": round(capacity_rps(), 2),
        "replicas": [{"preset": p, "max_num_seqs": n} for p, n in REPLICAS],
        "slo": {"ttft_s": a.slo_ttft, "mean_itl_s": a.slo_itl},
        "duration_s": a.duration,
        "runs": runs,
        "faults": faults,
        "targets": checks,
        "machine": machine_info(probe, ["aiohttp", "uvicorn"]),
    }
    write_results(markdown(runs, faults, checks), results, a.out)


if __name__ == "__main__":
    main()
