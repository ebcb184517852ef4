"""System calls per proxied request, counted by strace: the kernel's share of a gateway's cost,
which valgrind's instruction counts (bench/instructions.py) leave out.

On loopback a ``write`` to a socket also runs the receiving side's TCP path, and on a virtual
machine every system call pays for its mitigations (``getpid`` ~0.7 µs here), so fewer calls
per request are a real saving even where the instruction count hardly moves. Each gateway of
bench/instructions.py runs as it is (no valgrind), gets ``--warmup`` requests, then
``strace -c -f`` is attached for ``--requests`` more at ``--concurrency``; the counts divided
by the requests are the figures. strace slows the gateway a lot: count with it, never time.

    .venv/bin/python bench/syscalls.py [--requests 3000] [--only switchyard ...]

Prints a Markdown table and writes bench/results/syscalls.json. Needs strace (Debian's
``strace``) and permission to trace the gateway (root, or ptrace_scope 0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from instructions import KEY, add_run_options, load, run_gateways, stop  # noqa: E402

from tests.support.servers import wait_for_port  # noqa: E402

SHOWN = ("write", "read", "getpid", "epoll_pwait")


def counts(path: Path) -> dict[str, int]:
    """Calls by system call name, from ``strace -c``'s summary table."""
    found: dict[str, int] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        # "% time  seconds  usecs/call  calls  [errors]  syscall"
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            found[parts[-1]] = int(parts[3])
    return found


def measure(cmd: list[str], name: str, stream: bool, args: argparse.Namespace, port: int,
            workdir: Path) -> dict[str, Any]:  # fmt: skip
    env = {**os.environ, "BENCH_KEY": KEY, "SWITCHYARD_KEY_SECRET": "bench-secret"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    auth = name.endswith("-auth")
    out = workdir / f"strace.{name}.{'stream' if stream else 'json'}"
    try:
        wait_for_port(port, timeout=60)
        asyncio.run(load(port, stream, args.warmup, args.concurrency, auth))
        tracer = subprocess.Popen(["strace", "-c", "-f", "-p", str(proc.pid), "-o", str(out)],
                                  stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(1.0)  # attached to every thread
        ok = asyncio.run(load(port, stream, args.requests, args.concurrency, auth))
        tracer.send_signal(signal.SIGINT)
        tracer.wait(30)
    finally:
        stop(proc, 30)
    calls = counts(out)
    per = {k: v / args.requests for k, v in calls.items()}
    return {"gateway": name, "mode": "stream" if stream else "json", "requests": args.requests,
            "ok": ok, "calls": calls, "per_request": per}  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| gateway | mode | " + " | ".join(SHOWN) + " | all | answered |",
             "|---|---|" + "---:|" * (len(SHOWN) + 1) + "---|"]  # fmt: skip
    for r in rows:
        per = r["per_request"]
        cells = " | ".join(f"{per.get(name, 0.0):.2f}" for name in SHOWN)
        lines.append(f"| {r['gateway']} | {r['mode']} | {cells} | {sum(per.values()):.2f} | "
                     f"{r['ok']}/{r['requests']} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_run_options(parser, 3000, ROOT / "bench/results/syscalls.json")
    args = parser.parse_args()
    if shutil.which("strace") is None:
        sys.exit("strace not found: apt-get install strace")
    rows = run_gateways(args, measure, _describe, "switchyard-syscalls-")
    print(table(rows))


def _describe(row: dict[str, Any]) -> str:
    total = sum(row["per_request"].values())
    return (f"{row['gateway']:17} {row['mode']:6} {total:6.2f} syscalls/request "
            f"({row['ok']}/{row['requests']} ok)")  # fmt: skip


if __name__ == "__main__":
    main()
