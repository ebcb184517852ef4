"""CPU instructions per proxied request, counted by valgrind: a gateway's cost that the load of
a shared machine cannot blur (seconds can, instructions cannot).

Each gateway runs under ``valgrind --tool=callgrind`` with instrumentation off; after a
warm-up, ``callgrind_control`` turns it on, a client sends ``--requests`` requests at
``--concurrency``, and the instructions the gateway's process executed meanwhile, divided by
the requests, are its cost per request. The backend is the shared harness's fake backend
(``../shared/bench/fake_backend.py``) when it is there, else the project's zero-latency
simulator. Gateways: the harness's 43-line aiohttp proxy (``baseline-aiohttp``, when
``../shared/bench`` is there), ``switchyard serve`` with one plain model, and the same with
an API key checked (``switchyard-auth``). On a saturated core, throughput is about the
inverse of this cost, so the ratio of two gateways' instructions per request is the ratio
of their single-core throughputs, less the kernel's share (not counted here).

    .venv/bin/python bench/instructions.py [--requests 2000] [--concurrency 32]

Writes bench/results/instructions.json and prints a Markdown table. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.servers import free_port, wait_for_port  # noqa: E402

SHARED = ROOT.parent / "shared" / "bench"
PY = sys.executable
KEY = "sk-sy-instructions-0123456789abcdef0123"
BODY: dict[str, Any] = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}


def start_backend(port: int) -> subprocess.Popen[bytes]:
    if (SHARED / "fake_backend.py").exists():
        cmd = [PY, str(SHARED / "fake_backend.py"), "--port", str(port), "--model", "fake-model"]
    else:
        cmd = [str(ROOT / ".venv/bin/switchyard"), "simulate", "--model", "fake-model",
               "--port", str(port), "--preset", "zero"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    return proc


def gateway_commands(backend: int, port: int, workdir: Path) -> dict[str, list[str]]:
    config = workdir / "gateway.yaml"
    model = (f"models: [{{name: fake-model, price_input_per_mtok: 1, price_output_per_mtok: 2, "
             f"endpoints: [{{url: 'http://127.0.0.1:{backend}/v1'}}]}}]\n")  # fmt: skip
    config.write_text(f"server: {{log_level: warning}}\n{model}")
    auth = workdir / "gateway-auth.yaml"
    auth.write_text(config.read_text() + "auth: {enabled: true, keys: [{name: bench, "
                    "key_env: BENCH_KEY, limits: {rpm: 100000000}}]}\n")  # fmt: skip
    serve = [str(ROOT / ".venv/bin/switchyard"), "serve", "--port", str(port), "--config"]
    commands = {"switchyard": [*serve, str(config)], "switchyard-auth": [*serve, str(auth)]}
    if (SHARED / "gateways/baseline_proxy_aiohttp.py").exists():
        commands["baseline-aiohttp"] = [
            PY, str(SHARED / "gateways/baseline_proxy_aiohttp.py"), "--port", str(port),
            "--upstream", f"http://127.0.0.1:{backend}",
        ]  # fmt: skip
    return dict(sorted(commands.items()))


async def load(port: int, stream: bool, n: int, concurrency: int, auth: bool) -> int:
    """Send ``n`` requests; the number answered 200 in full (others are printed)."""
    body = {**BODY, "stream": stream}
    headers = {"authorization": f"Bearer {KEY}"} if auth else {}
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    ok = 0
    todo = iter(range(n))

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal ok
        for _ in todo:
            try:
                async with session.post(url, json=body, headers=headers) as resp:
                    data = await resp.read()
            except aiohttp.ClientError as err:
                print(f"  request failed: {err!r}", flush=True)
                continue
            if resp.status == 200 and (not stream or data.endswith(b"[DONE]\n\n")):
                ok += 1
            else:
                print(f"  answered {resp.status}: {data[:160]!r}", flush=True)

    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return ok


def stop(proc: subprocess.Popen[bytes], wait_s: float) -> None:
    """Interrupt a gateway as Ctrl-C would; kill it if it has not exited in ``wait_s``."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        proc.kill()


def instructions(out: Path) -> int:
    """Total Ir of the dump files callgrind wrote for the measured part."""
    total = 0
    for path in out.parent.glob(out.name + "*"):
        match = re.search(r"^(?:summary|totals): (\d+)", path.read_text(), re.M)
        if match and not path.name.endswith(out.name):  # dumps are <name>.<n>; skip the exit one
            total += int(match.group(1))
    return total


def measure(cmd: list[str], name: str, stream: bool, args: argparse.Namespace, port: int,
            workdir: Path) -> dict[str, Any]:  # fmt: skip
    out = workdir / f"callgrind.{name}.{'stream' if stream else 'json'}"
    env = {**os.environ, "BENCH_KEY": KEY, "SWITCHYARD_KEY_SECRET": "bench-secret"}
    vg = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
          "--trace-children=no"]  # fmt: skip
    proc = subprocess.Popen([*vg, *cmd], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    auth = name.endswith("-auth")
    try:
        wait_for_port(port, timeout=180)  # valgrind starts slowly
        asyncio.run(load(port, stream, args.warmup, args.concurrency, auth))
        ctl = ["callgrind_control", str(proc.pid)]
        subprocess.run([*ctl[:1], "-i", "on", *ctl[1:]], check=True, capture_output=True)
        ok = asyncio.run(load(port, stream, args.requests, args.concurrency, auth))
        subprocess.run([*ctl[:1], "-d", *ctl[1:]], check=True, capture_output=True)
    finally:
        stop(proc, 60)
    total = instructions(out)
    return {"gateway": name, "mode": "stream" if stream else "json", "requests": args.requests,
            "ok": ok, "instructions": total, "per_request": total / args.requests}  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    base = {r["mode"]: r["per_request"] for r in rows if r["gateway"] == "baseline-aiohttp"}
    lines = ["| gateway | mode | instructions per request | vs baseline-aiohttp | answered |",
             "|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        ratio = f"{r['per_request'] / base[r['mode']]:.2f}×" if r["mode"] in base else "-"
        lines.append(f"| {r['gateway']} | {r['mode']} | {r['per_request']:,.0f} | {ratio} | "
                     f"{r['ok']}/{r['requests']} |")  # fmt: skip
    return "\n".join(lines)


def add_run_options(parser: argparse.ArgumentParser, requests: int, out: Path) -> None:
    """The options this script and bench/syscalls.py share."""
    parser.add_argument("--requests", type=int, default=requests, help="measured requests per run")
    parser.add_argument("--warmup", type=int, default=300, help="requests before measuring")
    parser.add_argument("--concurrency", type=int, default=32, help="client connections")
    parser.add_argument("--out", type=Path, default=out)
    parser.add_argument("--only", nargs="*", default=None, help="gateways to measure (names)")
    parser.add_argument("--modes", nargs="*", default=["json", "stream"], help="json, stream")


Measure = Callable[[list[str], str, bool, argparse.Namespace, int, Path], dict[str, Any]]


def run_gateways(
    args: argparse.Namespace,
    measure: Measure,
    describe: Callable[[dict[str, Any]], str],
    prefix: str,
    done: Callable[[Path], None] | None = None,
) -> list[dict[str, Any]]:
    """``measure`` each gateway asked for in each mode, against one backend; the rows
    (``done``: given the work directory before it goes)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        workdir, backend_port = Path(tmp), free_port()
        backend = start_backend(backend_port)
        try:
            port = free_port()
            for name, cmd in gateway_commands(backend_port, port, workdir).items():
                if args.only is not None and name not in args.only:
                    continue
                for stream in (mode == "stream" for mode in args.modes):
                    row = measure(cmd, name, stream, args, port, workdir)
                    print(describe(row), flush=True)
                    rows.append(row)
        finally:
            backend.terminate()
        if done is not None:
            done(workdir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"concurrency": args.concurrency, "rows": rows}, indent=2))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_run_options(parser, 2000, ROOT / "bench/results/instructions.json")
    parser.add_argument("--keep", type=Path, default=None,
                        help="copy callgrind's dumps here (for callgrind_annotate)")  # fmt: skip
    args = parser.parse_args()

    def keep(workdir: Path) -> None:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            for dump in workdir.glob("callgrind.*"):
                shutil.copy(dump, args.keep / dump.name)

    rows = run_gateways(args, measure, _describe, "switchyard-instr-", keep)
    print(table(rows))


def _describe(row: dict[str, Any]) -> str:
    return (f"{row['gateway']:17} {row['mode']:6} {row['per_request']:12,.0f} "
            f"instructions/request ({row['ok']}/{row['requests']} ok)")  # fmt: skip


if __name__ == "__main__":
    main()
