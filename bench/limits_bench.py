"""What enforcing rate limits costs a request: ``switchyard serve`` with and without
``auth`` + ``rpm``/``tpm`` limits kept in Redis, in front of a zero-latency simulator.

Two gateways run side by side with the same model and simulator: A has no auth and no limits;
B requires a key whose ``rpm`` and ``tpm`` limits are high enough never to refuse, with its
state in a private ``redis-server`` on loopback (so B pays, per request: key hashing, a prompt
token estimate, one atomic admit script and, after the response, one settle script). Requests
are sent one at a time (concurrency 1) over a kept-alive connection, in blocks that alternate
A,B / B,A per repetition. Reported: p50 and p99 latency of each, and B minus A, as the median
over repetitions [min to max]; the target is at most 1 ms added at p50.

Pinning (``taskset``, when there are two cores or more): both gateways on core 0, everything
else (simulator, Redis, this client) on core 1; only one gateway is driven at a time.
Bounded: ``--requests`` per block, ``--reps`` repetitions and a ``--max-seconds`` deadline for
the whole run. Loopback only. Prints a Markdown table and writes
``bench/results/limits_bench.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchkit import free_port

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
SWITCHYARD = REPO / ".venv" / "bin" / "switchyard"
HOST = "127.0.0.1"
MODEL = "m"
KEY_ENV = "SY_BENCH_KEY"
BODY = json.dumps(
    {
        "model": MODEL,
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "Hello, how are you today?"}],
    }
).encode()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Added latency of rate-limit enforcement (auth + rpm/tpm in Redis), "
        "gateway with limits (B) versus without (A), concurrency 1, A/B alternating.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--requests", type=int, default=1500, help="requests per block (per target)")
    p.add_argument("--reps", type=int, default=6, help="repetitions of the A,B / B,A pair")
    p.add_argument("--warmup", type=int, default=300, help="requests per target before timing")
    p.add_argument("--max-seconds", type=float, default=240, help="deadline for all the runs")
    p.add_argument("--rpm", type=int, default=10**9, help="key's requests per minute (B)")
    p.add_argument("--tpm", type=int, default=10**12, help="key's tokens per minute (B)")
    p.add_argument("--gateway-cpu", type=int, default=0, help="core of both gateways")
    p.add_argument("--other-cpu", type=int, default=1, help="core of everything else")
    p.add_argument("--no-pin", action="store_true", help="do not use taskset")
    p.add_argument("--out", type=Path, default=RESULTS / "limits_bench.json")
    args = p.parse_args(argv)
    if min(args.requests, args.reps) < 1 or args.warmup < 0:
        p.error("--requests and --reps must be at least 1, --warmup at least 0")
    return args


# --------------------------------------------------------------------------- processes


@dataclass
class Processes:
    pin: bool
    workdir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], cpu: int, env: dict[str, str]) -> None:
        prefix = ["taskset", "-c", str(cpu)] if self.pin else []
        with (self.workdir / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(
                [*prefix, *argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self.procs.append(proc)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL, each process group this script started (and only those)."""
        for proc in reversed(self.procs):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                    proc.wait(timeout=10)
                    break
                except ProcessLookupError:
                    break
                except subprocess.TimeoutExpired:
                    continue


def gateway_config(path: Path, port: int, sim_port: int, limits: dict[str, Any] | None) -> None:
    config: dict[str, Any] = {
        "server": {"host": HOST, "port": port, "workers": 1, "log_level": "warning"},
        "models": [
            {
                "name": MODEL,
                "price_input_per_mtok": 1,
                "price_output_per_mtok": 2,
                "endpoints": [{"url": f"http://{HOST}:{sim_port}/v1"}],
            }
        ],
    }
    if limits is not None:
        config["auth"] = {
            "enabled": True,
            "keys": [{"name": "bench", "key_env": KEY_ENV, "limits": limits["limits"]}],
        }
        config["state"] = {"redis_url": limits["redis_url"]}
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML


def wait_redis(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), 0.5) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(64) == b"+PONG\r\n":
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"redis-server on port {port} did not answer")


# --------------------------------------------------------------------------- client


class Client:
    """One kept-alive HTTP/1.1 connection; ``post()`` returns (status, headers, seconds)."""

    def __init__(self, port: int, key: str | None) -> None:
        self.conn = http.client.HTTPConnection(HOST, port, timeout=10)
        self.headers = {"content-type": "application/json"}
        if key is not None:
            self.headers["authorization"] = f"Bearer {key}"

    def post(self) -> tuple[int, http.client.HTTPMessage, float]:
        started = time.perf_counter()
        self.conn.request("POST", "/v1/chat/completions", BODY, self.headers)
        resp = self.conn.getresponse()
        resp.read()
        took = time.perf_counter() - started
        return resp.status, resp.headers, took

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                if self.post()[0] == 200:
                    return
            except (OSError, http.client.HTTPException):
                self.conn.close()
            time.sleep(0.1)
        raise SystemExit(f"gateway on port {self.conn.port} not ready")

    def block(self, n: int, deadline: float) -> list[float]:
        """Up to ``n`` sequential requests (fewer if the deadline passes): latencies in ms.
        Starts on a new connection (the server may have closed an idle one), opened untimed."""
        self.conn.close()
        self.post()
        out = []
        for _ in range(n):
            status, _, took = self.post()
            if status != 200:
                raise SystemExit(f"HTTP {status} from port {self.conn.port}")
            out.append(took * 1000)
            if time.monotonic() > deadline:
                break
        return out


def cpu_ticks() -> dict[str, tuple[int, int]]:
    """{"cpuN": (busy ticks, all ticks)} from /proc/stat; {} where there is none."""
    out = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("cpu") and line[3].isdigit():
                name, *fields = line.split()
                vals = [int(x) for x in fields[:8]]
                out[name] = (sum(vals) - vals[3] - vals[4], sum(vals))
    return out


def busy_pct(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> dict[str, float]:
    """Per core, % busy between two readings (all processes: ours and anyone else's)."""
    return {
        core: round(100 * (busy - before[core][0]) / max(total - before[core][1], 1), 1)
        for core, (busy, total) in after.items()
        if core in before
    }


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))]


def mmm(values: Sequence[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def cell(m: dict[str, float]) -> str:
    return f"{m['median']:.3f} [{m['min']:.3f} to {m['max']:.3f}]"


# --------------------------------------------------------------------------- the run


def start_all(args: argparse.Namespace, procs: Processes) -> tuple[Client, Client, dict[str, Any]]:
    redis_port, sim_port, a_port, b_port = (free_port() for _ in range(4))
    key = "sk-sy-" + secrets.token_urlsafe(32)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    env |= {"SWITCHYARD_KEY_SECRET": secrets.token_hex(16), KEY_ENV: key}
    other, gw = args.other_cpu, args.gateway_cpu
    redis_bin = shutil.which("redis-server") or "/usr/bin/redis-server"
    procs.start(
        "redis",
        [redis_bin, "--port", str(redis_port), "--bind", HOST, "--save", "",
         "--appendonly", "no", "--dir", str(procs.workdir)],
        other, env,
    )  # fmt: skip
    procs.start(
        "simulator",
        [str(SWITCHYARD), "simulate", "--model", MODEL, "--port", str(sim_port),
         "--host", HOST, "--preset", "zero"],
        other, env,
    )  # fmt: skip
    limits = {"rpm": args.rpm, "tpm": args.tpm}
    redis_url = f"redis://{HOST}:{redis_port}/0"
    for name, port, enforce in (("A", a_port, None), ("B", b_port, limits)):
        path = procs.workdir / f"gateway-{name}.yaml"
        extra = {"limits": enforce, "redis_url": redis_url} if enforce else None
        gateway_config(path, port, sim_port, extra)
        procs.start(f"gateway-{name}", [str(SWITCHYARD), "serve", "-c", str(path)], gw, env)
    deadline = time.monotonic() + 60
    wait_redis(redis_port, deadline)
    a, b = Client(a_port, None), Client(b_port, key)
    a.wait_ready(deadline)
    b.wait_ready(deadline)
    _, headers, _ = b.post()
    if headers.get("x-ratelimit-limit-requests") != str(args.rpm):
        raise SystemExit("gateway B answered without x-ratelimit headers: limits not enforced")
    if b.post()[1].get("x-ratelimit-limit-tokens") != str(args.tpm):
        raise SystemExit("gateway B does not report its tpm limit")
    meta = {"redis_url": redis_url, "limits_B": limits, "ports": [sim_port, a_port, b_port]}
    return a, b, meta


def run(args: argparse.Namespace, a: Client, b: Client) -> list[dict[str, Any]]:
    deadline = time.monotonic() + args.max_seconds
    for client in (a, b):
        client.block(args.warmup, deadline)
    reps = []
    for rep in range(args.reps):
        order = (("A", a), ("B", b)) if rep % 2 == 0 else (("B", b), ("A", a))
        lat, busy = {}, {}
        for name, client in order:
            before = cpu_ticks()
            lat[name] = client.block(args.requests, deadline)
            busy[name] = busy_pct(before, cpu_ticks())
        reps.append(
            {
                "rep": rep,
                "order": "".join(name for name, _ in order),
                "requests": {k: len(v) for k, v in lat.items()},
                **{f"{k}_p50_ms": round(pct(v, 0.50), 4) for k, v in lat.items()},
                **{f"{k}_p99_ms": round(pct(v, 0.99), 4) for k, v in lat.items()},
                "busy_pct": busy,  # per core, during each block: noise shows here
            }
        )
        print(f"rep {rep} {reps[-1]}", file=sys.stderr, flush=True)
        if time.monotonic() > deadline:
            break
    return reps


def summarize(reps: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for q in ("p50", "p99"):
        out[f"A_{q}_ms"] = mmm([r[f"A_{q}_ms"] for r in reps])
        out[f"B_{q}_ms"] = mmm([r[f"B_{q}_ms"] for r in reps])
        out[f"added_{q}_ms"] = mmm([r[f"B_{q}_ms"] - r[f"A_{q}_ms"] for r in reps])
    out["target_added_p50_ms"] = 1.0
    out["meets_target"] = out["added_p50_ms"]["median"] <= 1.0
    return out


def table(summary: dict[str, Any], reps: int, requests: int) -> str:
    rows = [
        f"| c=1, ms (median [min to max] over {reps} reps x {requests} req) | p50 | p99 |",
        "|---|---|---|",
    ]
    for label, key in (
        ("A: no auth, no limits", "A"),
        ("B: auth + rpm/tpm in Redis", "B"),
        ("added by enforcement (B - A)", "added"),
    ):
        rows.append(f"| {label} | {cell(summary[f'{key}_p50_ms'])} | "
                    f"{cell(summary[f'{key}_p99_ms'])} |")  # fmt: skip
    verdict = "meets" if summary["meets_target"] else "MISSES"
    rows.append(f"\nTarget: at most 1 ms added at p50: {verdict} it.")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pin = not args.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) > 1
    if pin:
        os.sched_setaffinity(0, {args.other_cpu})
    with tempfile.TemporaryDirectory(prefix="limits-bench-") as tmp:
        procs = Processes(pin, Path(tmp))
        try:
            a, b, meta = start_all(args, procs)
            reps = run(args, a, b)
        finally:
            procs.stop()
    summary = summarize(reps)
    result = {
        "bench": "limits_bench",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "pinned": {"gateways": args.gateway_cpu, "others": args.other_cpu} if pin else None,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        **meta,
        "summary": summary,
        "reps": reps,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(table(summary, len(reps), args.requests))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
