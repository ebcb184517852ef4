"""Routing at proxy speed (issue 15), counted in CPU instructions: what a ``"model": "auto"``
request costs the gateway next to one that names its model, without the noise of a shared
machine (seconds move with the neighbours' load; instructions do not).

One ``switchyard serve`` (one worker, the demo's config: the shipped default router over three
zero-latency simulators) runs under ``valgrind --tool=callgrind`` with instrumentation off.
For each variant, after a warm-up, ``callgrind_control`` turns it on while a client sends
``--requests`` requests at ``--concurrency`` (each request a different ~62-token window of the
RouterDC test questions, as ``bench/routing_speed.py`` sends), and the gateway's instructions
meanwhile, divided by the requests, are the variant's cost:

  A  ``"model": "mistralai/mistral-7b-chat"`` (pass-through);
  S  ``"model": "auto"`` (the default router decides per prompt, in micro-batches).

On a saturated core, throughput is about the inverse of this cost, so A / S estimates
``routing_speed.py``'s "share of pass-through" (the kernel's share of each request, the
same for both, is not counted, so the estimate is a little low). A decision batch holds the
prompts read in one turn of the event loop; at c=32 under valgrind that is ~7 prompts, close
to the ~8 of ``routing_speed.py``'s c=32 on one core (the mean batch is reported, from the
gateway's ``switchyard_routing_batches`` counter). Needs ``valgrind`` and the reference data
in ``../shared/data``.

    .venv/bin/python bench/routing_instructions.py [--requests 2000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
from benchkit import RESULTS, SWITCHYARD, simulator_argv, source_digest
from instructions import instructions, stop
from routing_speed import DIRECT, distinct_prompts

from switchyard.cli.demo import DEMO_MODELS, demo_settings
from tests.support.servers import free_port, wait_for_port

VARIANTS = {"A": DIRECT, "S": "auto"}


async def load(port: int, bodies: list[bytes], concurrency: int) -> tuple[int, int]:
    """Post every body once; (answered 200, batches the gateway reported meanwhile)."""
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    todo, ok = iter(bodies), 0
    headers = {"content-type": "application/json"}

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal ok
        for body in todo:
            async with session.post(url, data=body, headers=headers) as resp:
                text = await resp.read()
            if resp.status == 200:
                ok += 1
            else:
                print(f"  answered {resp.status}: {text[:160]!r}", flush=True)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=900)) as session:
        before = await batches(session, port)
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return ok, await batches(session, port) - before


async def batches(session: aiohttp.ClientSession, port: int) -> int:
    async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith("switchyard_routing_batches_total "):
            return int(float(line.split()[1]))
    return 0


def bodies(model: str, prompts: list[str]) -> list[bytes]:
    return [
        json.dumps({"model": model, "max_tokens": 1, "messages": [message]}).encode()
        for message in ({"role": "user", "content": text} for text in prompts)
    ]


def quiet(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(args: argparse.Namespace, workdir: Path, prompts: list[str]) -> list[dict[str, Any]]:
    sims = {m.name: free_port() for m in DEMO_MODELS}
    procs = [quiet([*simulator_argv(name, port), "--host", "127.0.0.1"])
             for name, port in sims.items()]  # fmt: skip
    port = free_port()
    config = demo_settings("127.0.0.1", port, sims).model_dump(mode="json")
    config["server"].update(workers=1, log_level="warning")
    config["routing"].update(embedder_threads=1)
    # valgrind slows the gateway ~50x: its own clock must not give up on the simulators
    config["upstream"].update(connect_timeout_s=60, first_byte_timeout_s=300, scrape_interval_s=0)
    path = workdir / "gateway.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    out = workdir / "callgrind.gateway"
    vg = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    gateway = quiet([*vg, str(SWITCHYARD), "serve", "-c", str(path)])
    ctl = ["callgrind_control", str(gateway.pid)]
    rows: list[dict[str, Any]] = []
    try:
        for p in [*sims.values(), port]:
            wait_for_port(p, timeout=300)
        start = args.warmup
        for variant, model in VARIANTS.items():
            asyncio.run(load(port, bodies(model, prompts[: args.warmup]), args.concurrency))
            sent = bodies(model, prompts[start : start + args.requests])
            start += args.requests
            subprocess.run([ctl[0], "-z", ctl[1]], check=True, capture_output=True)
            for old in workdir.glob("callgrind.gateway.*"):
                old.unlink()
            subprocess.run([ctl[0], "-i", "on", ctl[1]], check=True, capture_output=True)
            ok, made = asyncio.run(load(port, sent, args.concurrency))
            subprocess.run([ctl[0], "-d", ctl[1]], check=True, capture_output=True)
            total = instructions(out)
            rows.append({"variant": variant, "model": model, "requests": len(sent), "ok": ok,
                         "instructions": total, "per_request": total / len(sent),
                         "mean_batch": len(sent) / made if made else None})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    finally:
        stop(gateway, 60)
        for proc in procs:
            proc.terminate()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="measured requests each")
    parser.add_argument("--warmup", type=int, default=300, help="requests before measuring")
    parser.add_argument("--concurrency", type=int, default=32, help="client connections")
    parser.add_argument("--out", type=Path, default=RESULTS / "routing_instructions.json")
    args = parser.parse_args()
    prompts = distinct_prompts(2 * (args.warmup + args.requests), 62, None)
    with tempfile.TemporaryDirectory(prefix="switchyard-route-instr-") as tmp:
        rows = measure(args, Path(tmp), prompts)
    a, s = (next(r for r in rows if r["variant"] == v) for v in VARIANTS)
    share = a["per_request"] / s["per_request"]
    print("\n| variant | instructions per request | mean batch |\n|---|---|---|")
    for r in rows:
        batch = "-" if r["mean_batch"] is None else f"{r['mean_batch']:.1f}"
        print(f"| {r['variant']}: {r['model']} | {r['per_request']:,.0f} | {batch} |")
    print(f"\nA / S = {share:.1%} (the share target is >= 40 %), c={args.concurrency}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"concurrency": args.concurrency, "digest": source_digest(),
                                    "rows": rows, "share": share}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
