"""The issue's gateway benchmark: a zero-latency vLLM simulator called directly versus through
``switchyard serve`` (one worker), in one run.

Pinning (``taskset``): the gateway alone on core 0; the simulator, the load generators and
this script on core 1. Per repetition, for json and stream (``max_tokens`` = 20 streamed
chunks) and each concurrency (1, 32, 64), one bounded wrk run direct (A) and one through the
gateway (B), A,B in odd and B,A in even repetitions; then streaming time to first byte at
c=1 with the shared harness's ``loadgen.py``, A and B. Before each run the script waits for
both cores to be idle. During each run it measures the foreign load (CPU used on the cores
by processes other than the gateway, the simulator and the load generator: the machine is
shared); a direct/gateway pair disturbed by more than ``--max-foreign-pct`` is measured
again, at most ``--retries`` times (the discarded runs are kept in the JSON).

Reported, as median [min–max] over the repetitions: added latency at c=1 (p50, p99; gateway
minus direct, paired per repetition), added streaming TTFB at c=1, req/s at c=32 and 64, and
the gateway's CPU ms per request (utime + stime from /proc/<pid>/stat over the run / requests).
Prints a Markdown table and writes ``bench/results/sim_bench.json`` and ``.md``. Loopback only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import benchkit as bk

WORKDIR = Path("/tmp/switchyard-bench")
MODES = ("json", "stream")
VERSIONED = ("switchyard", "aiohttp", "uvicorn", "uvloop", "httptools", "fastapi", "starlette")


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    url: str
    bodies: dict[str, Path]


@dataclass(slots=True)
class Run:
    rep: int
    target: str
    mode: str
    concurrency: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    requests: int
    errors: int
    capped: bool
    gateway_cpu_s: float
    busy_pct: dict[str, float]
    background_pct: dict[str, float]
    waited_s: float
    noisy: bool
    foreign_pct: dict[str, float]  # CPU used during the run by processes not of this bench
    disturbance_pct: float = 0.0  # the foreign load on the cores this run used


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    at: float
    ticks: dict[int, tuple[int, int]]
    gateway_s: float
    sim_s: float
    ours_s: float  # this process and its finished children (wrk, loadgen.py)


def snapshot(gateway_pid: int, sim_pid: int) -> CpuSnapshot:
    t = os.times()
    ours = t.user + t.system + t.children_user + t.children_system
    return CpuSnapshot(
        time.monotonic(),
        bk.cpu_ticks(),
        bk.session_cpu_s(gateway_pid),
        bk.session_cpu_s(sim_pid),
        ours,
    )


def foreign_pct(s0: CpuSnapshot, s1: CpuSnapshot, gw_cpu: int, client_cpu: int) -> dict[str, float]:
    """CPU % busy on each core (softirq included: loopback network work is charged to the
    processes that cause it) that the gateway, simulator and load generator do not account for."""
    wall = s1.at - s0.at
    busy = bk.busy_pct(s0.ticks, s1.ticks)
    gw = 100 * (s1.gateway_s - s0.gateway_s) / wall
    client = 100 * (s1.sim_s - s0.sim_s + s1.ours_s - s0.ours_s) / wall
    return {
        f"cpu{gw_cpu}": round(busy[f"cpu{gw_cpu}"] - gw, 1),
        f"cpu{client_cpu}": round(busy[f"cpu{client_cpu}"] - client, 1),
    }


class Bench:
    """Holds the two processes and the runs of one benchmark session."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sim: subprocess.Popen[bytes] | None = None
        self.gateway: subprocess.Popen[bytes] | None = None
        self.config: Path | None = None
        self.runs: list[Run] = []
        self.discarded: list[Run] = []
        self.meta: dict[str, Any] = {}
        self.targets: dict[str, Target] = {}

    # -------------------------------------------------------------- setup
    def start(self) -> None:
        a = self.args
        bk.require_free(a.gateway_port, a.sim_port)
        WORKDIR.mkdir(parents=True, exist_ok=True)
        self.targets = {
            "direct": self._target("direct", a.sim_port),
            "gateway": self._target("gateway", a.gateway_port),
        }
        ts = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.sim = bk.start_pinned(
            bk.simulator_argv(a.model, a.sim_port, a.preset),
            a.client_cpu,
            WORKDIR / f"sim-{ts}.log",
        )
        json_body = self.targets["direct"].bodies["json"].read_bytes()
        bk.wait_ready(self.targets["direct"].url, json_body, self.sim, 60)
        self.config = bk.gateway_config(
            a.gateway_port, f"http://{bk.LOOPBACK}:{a.sim_port}/v1", a.model
        )
        gw_log = WORKDIR / f"gateway-{ts}.log"
        argv = bk.gateway_argv(self.config, a.gateway_port)
        self.gateway = bk.start_pinned(argv, a.gateway_cpu, gw_log)
        startup_s = bk.wait_ready(self.targets["gateway"].url, json_body, self.gateway, 60)
        self.meta.update(
            gateway_cmd=bk.shell_join(argv),
            gateway_log=str(gw_log),
            gateway_startup_s=round(startup_s, 2),
            gateway_rss_mb_start=round(bk.session_rss_mb(self.gateway.pid), 1),
            stream_events={
                t.name: bk.check_stream(t.url, t.bodies["stream"].read_bytes())
                for t in self.targets.values()
            },
        )
        bk.log(f"simulator pid {self.sim.pid}, gateway pid {self.gateway.pid}; {self.meta}")

    def _target(self, name: str, port: int) -> Target:
        bodies = {}
        for mode in MODES:
            path = WORKDIR / f"sim-body-{mode}.json"
            path.write_bytes(bk.chat_body(self.args.model, mode == "stream", self.args.max_tokens))
            bodies[mode] = path
        return Target(name, f"http://{bk.LOOPBACK}:{port}/v1/chat/completions", bodies)

    def stop(self) -> None:
        bk.stop_group(self.gateway)
        bk.stop_group(self.sim)
        if self.config is not None:
            self.config.unlink(missing_ok=True)

    # -------------------------------------------------------------- runs
    def warm_up(self) -> None:
        for target in self.targets.values():
            for mode in self.args.modes:
                bk.run_wrk(
                    target.url,
                    target.bodies[mode],
                    8,
                    self.args.warmup,
                    10**6,
                    self.args.client_cpu,
                )

    def measure(
        self, rep: int, target: str, mode: str, conc: int, fn: Callable[[], bk.LoadResult]
    ) -> Run:
        assert self.gateway is not None and self.sim is not None
        a = self.args
        background, waited = bk.wait_idle(a.max_bg_busy, a.wait_idle_max)
        s0 = snapshot(self.gateway.pid, self.sim.pid)
        res = fn()
        s1 = snapshot(self.gateway.pid, self.sim.pid)
        if self.gateway.poll() is not None:
            raise SystemExit(f"gateway died (rc {self.gateway.returncode})")
        foreign = foreign_pct(s0, s1, a.gateway_cpu, a.client_cpu)
        run = Run(
            rep,
            target,
            mode,
            conc,
            res.rps,
            res.p50_ms,
            res.p95_ms,
            res.p99_ms,
            res.requests,
            res.errors,
            res.capped,
            round(s1.gateway_s - s0.gateway_s, 3),
            bk.busy_pct(s0.ticks, s1.ticks),
            background,
            waited,
            max(background.values()) > a.max_bg_busy,
            foreign,
        )
        run.disturbance_pct = self._disturbance(run)
        bk.log(
            f"rep {rep} {target:7} {mode:11} c={conc:<3} {res.rps:9.1f} req/s "
            f"p50 {res.p50_ms:.3f} p99 {res.p99_ms:.3f} ms n={res.requests} err={res.errors} "
            f"gw cpu {run.gateway_cpu_s:.2f}s busy {run.busy_pct} foreign {foreign} "
            f"bg before {background}" + (" NOISY" if run.noisy else "")
        )
        return run

    def pair(
        self, rep: int, mode: str, conc: int, make: Callable[[Target], Callable[[], bk.LoadResult]]
    ) -> None:
        """Direct and gateway runs, A/B by repetition; redone when foreign load disturbed one."""
        order = ["direct", "gateway"] if rep % 2 else ["gateway", "direct"]
        for attempt in range(self.args.retries + 1):
            runs = [self.measure(rep, n, mode, conc, make(self.targets[n])) for n in order]
            worst = max(r.disturbance_pct for r in runs)
            if worst <= self.args.max_foreign_pct or attempt == self.args.retries:
                self.runs.extend(runs)
                return
            bk.log(f"foreign load {worst:.0f}% during the runs: measuring the pair again")
            self.discarded.extend(runs)

    def _disturbance(self, run: Run) -> float:
        """Foreign load on the cores the run used (a direct run does not use the gateway's)."""
        client = run.foreign_pct[f"cpu{self.args.client_cpu}"]
        if run.target == "direct":
            return client
        return max(client, run.foreign_pct[f"cpu{self.args.gateway_cpu}"])

    def repetition(self, rep: int) -> None:
        for mode in self.args.modes:
            for conc in self.args.concurrency:
                self.pair(rep, mode, conc, self._wrk(mode, conc))
        if self.args.ttfb_duration > 0:
            self.pair(rep, "stream_ttfb", 1, self._ttfb)

    def _wrk(self, mode: str, conc: int) -> Callable[[Target], Callable[[], bk.LoadResult]]:
        a = self.args

        def make(t: Target) -> Callable[[], bk.LoadResult]:
            return partial(
                bk.run_wrk, t.url, t.bodies[mode], conc, a.duration, a.max_requests, a.client_cpu
            )

        return make

    def _ttfb(self, t: Target) -> Callable[[], bk.LoadResult]:
        a = self.args
        return partial(
            bk.run_ttfb, t.url, t.bodies["stream"], a.ttfb_duration, a.ttfb_requests, a.client_cpu
        )


# ---------------------------------------------------------------- summary


def select(runs: list[Run], target: str, mode: str, conc: int) -> list[Run]:
    return sorted(
        (r for r in runs if (r.target, r.mode, r.concurrency) == (target, mode, conc)),
        key=lambda r: r.rep,
    )


def summarize_cell(runs: list[Run]) -> dict[str, Any]:
    return {
        "rps": bk.mmm([r.rps for r in runs]),
        "p50_ms": bk.mmm([r.p50_ms for r in runs]),
        "p95_ms": bk.mmm([r.p95_ms for r in runs]),
        "p99_ms": bk.mmm([r.p99_ms for r in runs]),
        "gateway_cpu_ms_per_req": bk.mmm(
            [1000 * r.gateway_cpu_s / r.requests for r in runs if r.requests]
        ),
        "gateway_core_busy_pct": bk.mmm([r.busy_pct.get("cpu0", 0.0) for r in runs]),
        "client_core_busy_pct": bk.mmm([r.busy_pct.get("cpu1", 0.0) for r in runs]),
        "errors": sum(r.errors for r in runs),
        "requests": sum(r.requests for r in runs),
        "capped_runs": sum(r.capped for r in runs),
        "noisy_runs": sum(r.noisy for r in runs),
        "disturbance_pct_max": max(r.disturbance_pct for r in runs),
    }


def summarize(runs: list[Run]) -> dict[str, Any]:
    keys = sorted({(r.mode, r.concurrency) for r in runs})
    out: dict[str, Any] = {}
    for mode, conc in keys:
        direct, gateway = select(runs, "direct", mode, conc), select(runs, "gateway", mode, conc)
        pairs = [(d, g) for d in direct for g in gateway if d.rep == g.rep]
        out[f"{mode}@c{conc}"] = {
            "direct": summarize_cell(direct),
            "gateway": summarize_cell(gateway),
            "added_p50_ms": bk.mmm([g.p50_ms - d.p50_ms for d, g in pairs]),
            "added_p99_ms": bk.mmm([g.p99_ms - d.p99_ms for d, g in pairs]),
        }
    return out


def check_targets(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue with its measured median and pass/miss."""

    def med(key: str, *path: str) -> float | None:
        node: Any = summary.get(key)
        for p in path:
            node = node.get(p) if node else None
        return float(node["median"]) if node else None

    errors = sum(c[t]["errors"] for c in summary.values() for t in ("direct", "gateway"))
    specs = [
        ("added latency p50, json c=1", med("json@c1", "added_p50_ms"), "<=", 1.0, "ms"),
        ("added latency p99, json c=1", med("json@c1", "added_p99_ms"), "<=", 2.5, "ms"),
        ("added streaming TTFB p50, c=1", med("stream_ttfb@c1", "added_p50_ms"), "<=", 1.0, "ms"),
        ("req/s json c=32", med("json@c32", "gateway", "rps"), ">=", 1500, "req/s"),
        ("req/s json c=64", med("json@c64", "gateway", "rps"), ">=", 1500, "req/s"),
        ("streams/s c=32", med("stream@c32", "gateway", "rps"), ">=", 800, "streams/s"),
        ("streams/s c=64", med("stream@c64", "gateway", "rps"), ">=", 800, "streams/s"),
        ("errors (all runs)", float(errors), "<=", 0, ""),
    ]
    out = []
    for name, value, op, limit, unit in specs:
        ok = value is not None and (value <= limit if op == "<=" else value >= limit)
        out.append(
            {
                "target": f"{name} {op} {limit:g} {unit}".strip(),
                "measured": value,
                "unit": unit,
                "pass": ok,
            }
        )
    return out


def number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def markdown(summary: dict[str, Any], targets: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"sim_bench {meta['date']}: {meta['repeats']} repetitions x {meta['duration_s']} s per "
        f"wrk run; gateway on cpu{meta['gateway_cpu']}, simulator+load on cpu{meta['client_cpu']}; "
        f"{meta.get('redone_pairs', 0)} direct/gateway pair(s) redone for foreign load",
        "",
        "| mode | c | direct req/s | gateway req/s | direct p50 ms | gateway p50 ms | "
        "added p50 ms | added p99 ms | gateway CPU ms/req | gw core busy % | errors | "
        "max foreign load % |",
        "|" + "---|" * 12,
    ]
    for key, c in summary.items():
        mode, conc = key.split("@c")
        d, g = c["direct"], c["gateway"]
        lines.append(
            f"| {mode} | {conc} | {bk.cell(d['rps'], 0)} | {bk.cell(g['rps'], 0)} "
            f"| {bk.cell(d['p50_ms'], 3)} | {bk.cell(g['p50_ms'], 3)} "
            f"| {bk.cell(c['added_p50_ms'], 3)} | {bk.cell(c['added_p99_ms'], 3)} "
            f"| {bk.cell(g['gateway_cpu_ms_per_req'], 3)} "
            f"| {bk.cell(g['gateway_core_busy_pct'], 0)} "
            f"| {d['errors'] + g['errors']} "
            f"| {max(d['disturbance_pct_max'], g['disturbance_pct_max']):.0f} |"
        )
    lines += ["", "| target | measured (median) | result |", "|---|---|---|"]
    for t in targets:
        value = "-" if t["measured"] is None else f"{number(t['measured'])} {t['unit']}".strip()
        lines.append(f"| {t['target']} | {value} | {'pass' if t['pass'] else 'MISS'} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--gateway-port", type=int, default=4630)
    ap.add_argument("--sim-port", type=int, default=18630)
    ap.add_argument("--model", default="fake-model")
    ap.add_argument("--preset", default="zero", help="simulator preset (default zero)")
    ap.add_argument("--max-tokens", type=int, default=20, help="streamed chunks per request")
    ap.add_argument("--concurrency", default="1,32,64")
    ap.add_argument("--modes", default="json,stream")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per target/mode")
    ap.add_argument("--max-requests", type=int, default=500_000, help="cap per wrk run")
    ap.add_argument("--ttfb-duration", type=float, default=8, help="0 skips the TTFB runs")
    ap.add_argument("--ttfb-requests", type=int, default=3000, help="cap per TTFB run")
    ap.add_argument("--gateway-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--max-bg-busy", type=float, default=15.0, help="idle threshold, %% busy")
    ap.add_argument("--wait-idle-max", type=float, default=120.0, help="max wait for idle, s")
    ap.add_argument(
        "--max-foreign-pct",
        type=float,
        default=10.0,
        help="redo a direct/gateway pair when other processes used more than this %% of a core",
    )
    ap.add_argument("--retries", type=int, default=2, help="redos per pair (then kept, flagged)")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--report-only", action="store_true", help="only render --out as Markdown")
    ap.add_argument("--out", type=Path, default=bk.RESULTS / "sim_bench.json")
    a = ap.parse_args(argv)
    a.concurrency = [int(c) for c in a.concurrency.split(",") if c]
    a.modes = [m for m in a.modes.split(",") if m in MODES]
    return a


def session_meta(a: argparse.Namespace) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "repeats": a.repeats,
        "duration_s": a.duration,
        "gateway_cpu": a.gateway_cpu,
        "client_cpu": a.client_cpu,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()},
        "host": {
            "kernel": platform.release(),
            "python": platform.python_version(),
            "cpus": len(bk.cpu_ticks()),
        },
        "versions": bk.versions(VERSIONED),
        "source": bk.source_digest(),
    }


def run_session(a: argparse.Namespace) -> dict[str, Any]:
    """Start both processes, run every repetition, stop them; the result document."""
    bk.pin_self(a.client_cpu)
    bench = Bench(a)
    bench.meta = session_meta(a)
    bench.meta["background_pct_at_start"], _ = bk.wait_idle(100, 0, pause_s=2)
    try:
        bench.start()
        bench.warm_up()
        for rep in range(1, a.repeats + 1):
            bench.repetition(rep)
        assert bench.gateway is not None
        bench.meta["gateway_rss_mb_end"] = round(bk.session_rss_mb(bench.gateway.pid), 1)
    finally:
        bench.stop()
    bench.meta["redone_pairs"] = len(bench.discarded) // 2
    summary = summarize(bench.runs)
    return {
        "meta": bench.meta,
        "summary": summary,
        "targets": check_targets(summary),
        "runs": [asdict(r) for r in bench.runs],
        "discarded_runs": [asdict(r) for r in bench.discarded],
    }


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    if a.report_only:
        result = json.loads(a.out.read_text())
    else:
        result = run_session(a)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1))
        bk.log(f"wrote {a.out}")
    table = markdown(result["summary"], result["targets"], result["meta"])
    a.out.with_suffix(".md").write_text(table)
    print(table)
    if a.check and not all(t["pass"] for t in result["targets"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
