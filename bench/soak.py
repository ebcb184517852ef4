"""Memory soak: the gateway's resident memory idle after start, then over a steady load.

Starts a zero-latency simulator (core 1) and ``switchyard serve`` with one worker (core 0),
waits until the gateway answers ``/healthz`` and samples its idle RSS before any proxied
request. Then runs a steady closed-loop load from this process (core 1): ``--concurrency``
workers, alternating non-streamed and streamed chat requests (``--max-tokens`` chunks),
optionally paced to ``--rate`` requests/s, for ``--minutes`` (bounded also by
``--max-requests``). The gateway's RSS (summed over its process session, from
/proc/<pid>/status) is sampled every ``--sample-s`` seconds.

Reports idle RSS, min/max/last under load, drift (last vs first sample under load) and
spread (every sample against the first), errors, and the targets (idle <= 150 MB; flat
within +-10 %). Writes ``bench/results/soak.json`` and, when matplotlib is installed,
``bench/results/soak.png``. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import benchkit as bk

WORKDIR = Path("/tmp/switchyard-bench")
IDLE_LIMIT_MB = 150.0
FLAT_LIMIT_PCT = 10.0


@dataclass(slots=True)
class Counters:
    json_ok: int = 0
    stream_ok: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return self.json_ok + self.stream_ok + self.errors

    def fail(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


@dataclass(frozen=True, slots=True)
class Sample:
    t_s: float
    rss_mb: float
    requests: int
    errors: int
    gateway_cpu_s: float


class Pacer:
    """Hands out start times ``1/rate`` apart (no pacing when rate is 0)."""

    def __init__(self, rate: float) -> None:
        self.gap = 1.0 / rate if rate > 0 else 0.0
        self.next = time.monotonic()

    async def wait(self) -> None:
        if not self.gap:
            return
        now = time.monotonic()
        slot = max(now, self.next)
        self.next = slot + self.gap
        if slot > now:
            await asyncio.sleep(slot - now)


# ---------------------------------------------------------------- load


async def one_request(
    session: aiohttp.ClientSession, url: str, body: bytes, stream: bool, counters: Counters
) -> None:
    try:
        async with session.post(url, data=body) as resp:
            data = await resp.read()
        if resp.status != 200:
            counters.fail(f"status_{resp.status}")
        elif stream and not data.rstrip().endswith(b"data: [DONE]"):
            counters.fail("stream_without_done")
        elif stream:
            counters.stream_ok += 1
        elif b'"choices"' not in data:
            counters.fail("bad_body")
        else:
            counters.json_ok += 1
    except (aiohttp.ClientError, TimeoutError, ConnectionError) as err:
        counters.fail(type(err).__name__)


async def worker(
    a: argparse.Namespace,
    session: aiohttp.ClientSession,
    pacer: Pacer,
    counters: Counters,
    deadline: float,
    index: int,
) -> None:
    url = f"http://{bk.LOOPBACK}:{a.gateway_port}/v1/chat/completions"
    bodies = [bk.chat_body(a.model, False, a.max_tokens), bk.chat_body(a.model, True, a.max_tokens)]
    turn = index
    while time.monotonic() < deadline and counters.done < a.max_requests:
        await pacer.wait()
        stream = turn % 2 == 1
        turn += 1
        await one_request(session, url, bodies[stream], stream, counters)


async def sampler(
    gateway_pid: int, counters: Counters, t0: float, every_s: float, out: list[Sample]
) -> None:
    while True:
        await asyncio.sleep(every_s)
        sample = Sample(
            round(time.monotonic() - t0, 1),
            round(bk.session_rss_mb(gateway_pid), 2),
            counters.done,
            counters.errors,
            round(bk.session_cpu_s(gateway_pid), 2),
        )
        out.append(sample)
        bk.log(
            f"t={sample.t_s:6.0f}s rss {sample.rss_mb:.1f} MB, {sample.requests} requests, "
            f"{sample.errors} errors"
        )


async def load(a: argparse.Namespace, gateway_pid: int) -> tuple[Counters, list[Sample], float]:
    counters, samples = Counters(), list[Sample]()
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=a.concurrency)
    headers = {"content-type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as s:
        t0 = time.monotonic()
        deadline = t0 + a.minutes * 60
        pacer = Pacer(a.rate)
        probe = asyncio.create_task(sampler(gateway_pid, counters, t0, a.sample_s, samples))
        await asyncio.gather(
            *(worker(a, s, pacer, counters, deadline, i) for i in range(a.concurrency))
        )
        elapsed = time.monotonic() - t0
        probe.cancel()
    return counters, samples, elapsed


# ---------------------------------------------------------------- processes


def wait_healthz(port: int, proc: Any, timeout_s: float = 60) -> None:
    url = f"http://{bk.LOOPBACK}:{port}/healthz"
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if proc.poll() is not None:
            raise SystemExit(f"gateway exited ({proc.returncode}) during start")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} not answering after {timeout_s:g}s")


def report(
    a: argparse.Namespace,
    idle: dict[str, float],
    samples: list[Sample],
    counters: Counters,
    elapsed: float,
) -> dict[str, Any]:
    rss = [s.rss_mb for s in samples] or [float("nan")]
    first, last = rss[0], rss[-1]
    spread = max(abs(v - first) for v in rss) / first * 100
    cpu = samples[-1].gateway_cpu_s - samples[0].gateway_cpu_s if len(samples) > 1 else 0.0
    reqs = samples[-1].requests - samples[0].requests if len(samples) > 1 else 0
    return {
        "idle_rss_mb_after_start": idle["start"],
        "idle_rss_mb_after_load": idle.get("end"),
        "load_rss_mb": {"first": first, "min": min(rss), "max": max(rss), "last": last},
        "drift_pct_last_vs_first": round((last - first) / first * 100, 2),
        "max_deviation_pct_from_first": round(spread, 2),
        "growth_pct_last_vs_idle": round((last - idle["start"]) / idle["start"] * 100, 2),
        "requests": counters.done,
        "json_ok": counters.json_ok,
        "stream_ok": counters.stream_ok,
        "errors": counters.errors,
        "error_kinds": counters.error_kinds,
        "load_seconds": round(elapsed, 1),
        "achieved_rps": round(counters.done / elapsed, 1) if elapsed else 0.0,
        "gateway_cpu_ms_per_req": round(1000 * cpu / reqs, 3) if reqs else None,
        "targets": {
            f"idle RSS <= {IDLE_LIMIT_MB:g} MB": idle["start"] <= IDLE_LIMIT_MB,
            f"RSS flat within +-{FLAT_LIMIT_PCT:g}% under load": spread <= FLAT_LIMIT_PCT,
            "zero errors": counters.errors == 0,
        },
    }


def plot(path: Path, idle_mb: float, samples: list[Sample], title: str) -> bool:
    """A small PNG of RSS over time; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 3), dpi=100)
    ax.plot(
        [0.0] + [s.t_s / 60 for s in samples],
        [idle_mb] + [s.rss_mb for s in samples],
        "o-",
        markersize=2,
    )
    ax.axhline(IDLE_LIMIT_MB, color="red", linestyle="--", linewidth=0.8, label="150 MB")
    ax.set_xlabel("minutes under load (0 = idle after start)")
    ax.set_ylabel("gateway RSS (MB)")
    ax.set_ylim(0, max(IDLE_LIMIT_MB * 1.1, max(s.rss_mb for s in samples) * 1.2))
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--minutes", type=float, default=10.0, help="load duration (default 10)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rate", type=float, default=0.0, help="pace to N req/s (0: closed loop)")
    ap.add_argument("--max-requests", type=int, default=5_000_000, help="cap on requests")
    ap.add_argument("--max-tokens", type=int, default=20, help="chunks per streamed answer")
    ap.add_argument("--sample-s", type=float, default=10.0, help="RSS sampling interval")
    ap.add_argument("--idle-s", type=float, default=5.0, help="idle wait before the idle sample")
    ap.add_argument("--gateway-port", type=int, default=4640)
    ap.add_argument("--sim-port", type=int, default=18640)
    ap.add_argument("--model", default="fake-model")
    ap.add_argument("--gateway-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--out", type=Path, default=bk.RESULTS / "soak.json")
    return ap.parse_args(argv)


def run(a: argparse.Namespace) -> dict[str, Any]:
    bk.require_free(a.gateway_port, a.sim_port)
    ts = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    backend_url = f"http://{bk.LOOPBACK}:{a.sim_port}/v1"
    sim = bk.start_pinned(
        bk.simulator_argv(a.model, a.sim_port), a.client_cpu, WORKDIR / f"soak-sim-{ts}.log"
    )
    config = bk.gateway_config(a.gateway_port, backend_url, a.model)
    gateway = None
    try:
        bk.wait_ready(f"{backend_url}/chat/completions", bk.chat_body(a.model, False, 4), sim, 60)
        gateway = bk.start_pinned(
            bk.gateway_argv(config, a.gateway_port),
            a.gateway_cpu,
            WORKDIR / f"soak-gateway-{ts}.log",
        )
        wait_healthz(a.gateway_port, gateway)
        time.sleep(a.idle_s)
        idle = {"start": round(bk.session_rss_mb(gateway.pid), 2)}
        bk.log(f"gateway pid {gateway.pid}: idle RSS after start {idle['start']:.1f} MB")
        counters, samples, elapsed = asyncio.run(load(a, gateway.pid))
        if gateway.poll() is not None:
            raise SystemExit(f"gateway died (rc {gateway.returncode})")
        time.sleep(a.idle_s)
        idle["end"] = round(bk.session_rss_mb(gateway.pid), 2)
    finally:
        bk.stop_group(gateway)
        bk.stop_group(sim)
        config.unlink(missing_ok=True)
    result = report(a, idle, samples, counters, elapsed)
    result["samples"] = [asdict(s) for s in samples]
    return result


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    bk.pin_self(a.client_cpu)
    WORKDIR.mkdir(parents=True, exist_ok=True)
    background, _ = bk.wait_idle(100, 0, pause_s=2)
    meta = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()},
        "background_pct_at_start": background,
        "versions": bk.versions(["switchyard", "aiohttp", "uvicorn", "fastapi"]),
        "source": bk.source_digest(),
    }
    result = {"meta": meta, **run(a)}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1))
    png = a.out.with_suffix(".png")
    title = f"switchyard RSS, c={a.concurrency} mixed json/stream, {meta['date']}"
    if plot(
        png, result["idle_rss_mb_after_start"], [Sample(**s) for s in result["samples"]], title
    ):
        bk.log(f"wrote {png}")
    summary = {k: v for k, v in result.items() if k not in ("samples", "meta")}
    print(json.dumps(summary, indent=1))
    bk.log(f"wrote {a.out}")


if __name__ == "__main__":
    main()
