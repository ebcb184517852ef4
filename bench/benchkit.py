"""Building blocks shared by the bench scripts: pinned processes, /proc readings, wrk and
loadgen runs (the shared harness's ``chat.lua`` and ``loadgen.py``, called by path), gateway
configs, and median [min to max] statistics.

Everything binds to and targets 127.0.0.1. Every load run is bounded in time and in
request count. Processes are started in their own session, so a run's CPU time and memory
are the sums over that session, and stopping one kills only its own process group.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
SHARED = Path(os.environ.get("SHARED_BENCH", REPO.parent / "shared" / "bench")).resolve()
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
SWITCHYARD = REPO / ".venv" / "bin" / "switchyard"
LOOPBACK = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
DASH = "\u2013"  # en dash, as in the shared harness's "median [min to max]" cells


# ---------------------------------------------------------------- processes


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free loopback port that this process has not handed out before: the kernel may offer
    a port again before the server it was given to has bound it, and two servers of one fleet
    would then clash."""
    while True:
        with socket.socket() as s:
            s.bind((LOOPBACK, 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def port_open(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((LOOPBACK, port)) == 0


def require_free(*ports: int) -> None:
    for port in ports:
        if port_open(port):
            raise SystemExit(f"port {port} is already in use on {LOOPBACK}; pick another")


def start_pinned(
    argv: Sequence[str], cpu: int, log_path: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` on core ``cpu`` in a new session (pgid == pid), output to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            ["taskset", "-c", str(cpu), *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=dict(env) if env is not None else None,
        )


def stop_group(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL, the process group this script created for ``proc``."""
    if proc is None:
        return
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            time.sleep(0.2)
            if not session_pids(proc.pid):
                return
        except subprocess.TimeoutExpired:
            continue


def _proc_stat_fields(pid: str) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def session_pids(sid: int) -> list[int]:
    """Live (non-zombie) processes of session ``sid``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _proc_stat_fields(entry)
            if fields and int(fields[3]) == sid and fields[0] != "Z":
                pids.append(int(entry))
    return pids


def session_cpu_s(sid: int) -> float:
    """CPU seconds (utime + stime from /proc/<pid>/stat) used so far by session ``sid``."""
    ticks = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _proc_stat_fields(entry)
            if fields and int(fields[3]) == sid:
                ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def session_rss_mb(sid: int) -> float:
    """Resident memory (MB, 10^6 bytes) summed over the processes of session ``sid``."""
    total_kb = 0
    for pid in session_pids(sid):
        try:
            total_kb += rss_kb(pid)
        except OSError:
            continue
    return total_kb * 1024 / 1e6


def cpu_ticks() -> dict[int, tuple[int, int]]:
    """{core: (busy ticks, total ticks)} from /proc/stat (busy includes irq, softirq, steal)."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3].isdigit():
            parts = line.split()
            vals = [int(x) for x in parts[1:9]]
            idle = vals[3] + vals[4]
            out[int(parts[0][3:])] = (sum(vals) - idle, sum(vals))
    return out


def busy_pct(
    before: Mapping[int, tuple[int, int]], after: Mapping[int, tuple[int, int]]
) -> dict[str, float]:
    """% busy per core between two ``cpu_ticks()``."""
    res = {}
    for core, (busy, total) in after.items():
        d_total = total - before[core][1]
        res[f"cpu{core}"] = round(100.0 * (busy - before[core][0]) / d_total, 1) if d_total else 0.0
    return res


def wait_idle(
    max_busy: float, max_wait_s: float, pause_s: float = 1.0
) -> tuple[dict[str, float], float]:
    """Wait until every core is at most ``max_busy`` % busy over ``pause_s``; (load, waited s)."""
    waited = 0.0
    while True:
        before = cpu_ticks()
        time.sleep(pause_s)
        load = busy_pct(before, cpu_ticks())
        if max(load.values()) <= max_busy or waited >= max_wait_s:
            return load, waited
        waited += pause_s


def pin_self(cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})


# ---------------------------------------------------------------- HTTP


def post_json(url: str, body: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return int(resp.status), bytes(resp.read())


def wait_ready(url: str, body: bytes, proc: subprocess.Popen[bytes], timeout_s: float) -> float:
    """Poll ``url`` with a chat request until it answers 200; seconds it took."""
    t0 = time.monotonic()
    last: object = None
    while time.monotonic() - t0 < timeout_s:
        if proc.poll() is not None:
            raise SystemExit(f"process exited ({proc.returncode}) while waiting for {url}")
        try:
            status, data = post_json(url, body, timeout=5)
            if status == 200 and b"choices" in data:
                return time.monotonic() - t0
            last = status
        except Exception as err:
            last = repr(err)
        time.sleep(0.3)
    raise SystemExit(f"{url} not ready after {timeout_s:g}s (last: {last})")


def chat_body(model: str, stream: bool, max_tokens: int) -> bytes:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "Hello, how are you today?"}],
    }
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


def check_stream(url: str, body: bytes) -> int:
    """Number of SSE ``data:`` events of one streamed answer; raises if it did not end well."""
    status, data = post_json(url, body)
    events = [ln for ln in data.split(b"\n") if ln.startswith(b"data:")]
    if status != 200 or not events or events[-1].strip() != b"data: [DONE]":
        raise SystemExit(f"bad stream from {url}: HTTP {status} {data[:300]!r}")
    return len(events)


# ---------------------------------------------------------------- gateway


def gateway_config(port: int, backend_url: str, model: str = "fake-model") -> Path:
    """A temporary one-model, one-worker gateway config file (the caller deletes it)."""
    text = (
        f"server: {{host: {LOOPBACK}, port: {port}, workers: 1, log_level: warning}}\n"
        "models:\n"
        f"  - name: {model}\n"
        "    price_input_per_mtok: 1\n"
        "    price_output_per_mtok: 2\n"
        f'    endpoints: [{{url: "{backend_url}"}}]\n'
    )
    fd, path = tempfile.mkstemp(prefix="switchyard-bench-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return Path(path)


def simulator_argv(model: str, port: int, preset: str = "zero") -> list[str]:
    return [str(SWITCHYARD), "simulate", "--model", model, "--port", str(port), "--preset", preset]


def gateway_argv(config: Path, port: int) -> list[str]:
    return [
        str(SWITCHYARD),
        "serve",
        "--config",
        str(config),
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def source_digest() -> dict[str, str]:
    """Which gateway code was measured: a digest of the product's Python sources (the tree is
    edited while benchmarks run, and may not be committed yet) and their newest change."""
    package = REPO / "switchyard"  # since the house move (issue 20) the sources live here
    parts = ("gateway", "backends", "routers")
    files = sorted(p for d in parts for p in (package / d).rglob("*.py"))
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    newest = max((p.stat().st_mtime for p in files), default=0.0)
    changed = datetime.datetime.fromtimestamp(newest, datetime.UTC)
    return {
        "sha256_12": digest.hexdigest()[:12],
        "newest_change": changed.isoformat(timespec="seconds"),
    }


def versions(packages: Iterable[str]) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


# ---------------------------------------------------------------- load generators


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One closed-loop run: throughput, latency percentiles (ms), errors."""

    requests: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    capped: bool
    raw: dict[str, Any]


def run_wrk(
    url: str, body_file: Path, concurrency: int, duration_s: int, max_requests: int, cpu: int
) -> LoadResult:
    """wrk -t1 with the shared harness's chat.lua, pinned to ``cpu``."""
    return run_wrk_script(
        url, SHARED / "chat.lua", body_file, concurrency, duration_s, cpu, max_requests
    )


def run_wrk_script(
    url: str,
    script: Path,
    data_file: Path,
    concurrency: int,
    duration_s: int,
    cpu: int,
    max_requests: int = 0,
) -> LoadResult:
    """wrk -t1 with a Lua ``script`` that takes ``data_file`` and a request cap and prints
    a ``WRKJSON`` line (chat.lua, bench/distinct.lua), pinned to ``cpu``."""
    cmd = [
        "taskset", "-c", str(cpu), "wrk", "-t1", f"-c{concurrency}", f"-d{duration_s}s",
        "--timeout", "30s", "-s", str(script), url, "--", str(data_file), str(max_requests),
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            res = json.loads(line[8:])
            lat = res["lat_ms"]
            return LoadResult(
                requests=res["requests"],
                rps=res["rps"],
                p50_ms=lat["p50"],
                p95_ms=lat["p95"],
                p99_ms=lat["p99"],
                errors=sum(res["errors"].values()),
                capped=bool(res.get("capped")),
                raw=res,
            )
    raise RuntimeError(f"wrk gave no result: {out.stdout[-400:]} {out.stderr[-400:]}")


def run_ttfb(
    url: str, body_file: Path, duration_s: float, max_requests: int, cpu: int
) -> LoadResult:
    """Streaming time to first SSE event at c=1, with the shared harness's loadgen.py."""
    cmd = [
        "taskset", "-c", str(cpu), str(VENV_PYTHON), str(SHARED / "loadgen.py"), "--url", url,
        "--body-file", str(body_file), "--stream", "--concurrency", "1",
        "--duration", str(duration_s), "--max-requests", str(max_requests), "--warmup", "1",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 90, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stderr[-600:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    ttfb = res["ttfb_ms"] or {}
    return LoadResult(
        requests=res["requests_ok"] + res.get("warmup_requests", 0),
        rps=res["rps"],
        p50_ms=ttfb.get("p50", float("nan")),
        p95_ms=ttfb.get("p95", float("nan")),
        p99_ms=ttfb.get("p99", float("nan")),
        errors=res["errors"],
        capped=bool(res.get("capped")),
        raw=res,
    )


# ---------------------------------------------------------------- statistics


def mmm(values: Sequence[float]) -> dict[str, Any]:
    """median, min, max (and the values) of a list of repetitions."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "values": list(values),
    }


def cell(m: Mapping[str, Any] | None, prec: int = 2) -> str:
    """``median [min to max]`` joined by an en dash, as in the shared harness's tables."""
    if not m:
        return "-"
    return f"{m['median']:.{prec}f} [{m['min']:.{prec}f}{DASH}{m['max']:.{prec}f}]"


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def shell_join(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
