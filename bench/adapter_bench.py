"""LoRA adapters under open-loop load: adapter-aware choice vs least-in-flight vs round robin.

Setup
  Four simulated vLLM replicas of one base model, each its own process, with 8 adapter slots
  (``--max-loras 8``: at most 8 distinct adapters in a running batch; an adapter not resident
  is swapped in, LRU, stalling that engine step by ``--lora-load-s``) and runtime loading on
  (``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``; a runtime load also takes ``--lora-load-s``).
  Steps are slowed (``decode_base_s`` 0.05 s, ``--max-num-seqs 16``) so that four replicas,
  the gateway and the load generator share 2 cores without the CPU being the bottleneck. One
  gateway process with 50 adapter models of the base (``adapters.on_demand_loading``: every
  balancer must load adapters, or its requests would fail), its balancer set per run.

Load
  Open-loop Poisson arrivals of streamed chat completions (16..32 output tokens, uniform), at
  ``--load`` (0.8) of the fleet's capacity from the performance model, each naming one of 50
  adapters drawn with Zipf popularity (exponent ``--zipf``, 1.0). Each balancer runs on a
  freshly started fleet for ``--duration`` seconds after a ``--warmup`` (not measured).

Measured per run: p50/p99 time to first token (TTFT, first streamed chunk at the client),
client errors, and adapter loads per minute (the gateway's ``switchyard_adapter_loads_total``
with outcome ``loaded``, over the measured window).

    python bench/adapter_bench.py [--duration 40] [--warmup 10] [--max-loaded 0] [--out PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import urllib.request
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
from replica_bench_load import start_process
from routerkit import LoadProbe, machine_info, write_results

BENCH_DIR = Path(__file__).resolve().parent
OUT = BENCH_DIR / "results" / "replicas" / "adapter_bench.json"
REPLICAS, SLOTS, ADAPTERS, MAX_SEQS = 4, 8, 50, 16
DECODE_BASE_S, DECODE_PER_SEQ_S = 0.05, 0.0002
TOKENS = (16, 32)
BALANCERS = ("switchyard", "least_in_flight", "round_robin")


def capacity_rps() -> float:
    """Requests/s the fleet serves with every batch full (the performance model)."""
    step = DECODE_BASE_S + DECODE_PER_SEQ_S * MAX_SEQS
    return REPLICAS * MAX_SEQS / step / (sum(TOKENS) / 2)


def zipf_weights(n: int, s: float) -> list[float]:
    raw = [1.0 / (k**s) for k in range(1, n + 1)]
    total = sum(raw)
    return [w / total for w in raw]


def gateway_yaml(port: int, sims: list[str], balancer: str, max_loaded: int) -> Path:
    models: list[dict[str, Any]] = [{
        "name": "base", "price_input_per_mtok": 1, "price_output_per_mtok": 2,
        "endpoints": [{"url": url, "max_num_seqs": MAX_SEQS} for url in sims],
    }]  # fmt: skip
    for i in range(ADAPTERS):
        adapter = {"base": "base", "name": f"ad{i}-lora", "source": f"/adapters/ad{i}"}
        models.append({"name": f"ad{i}", "price_input_per_mtok": 1, "price_output_per_mtok": 2,
                       "adapter": adapter})  # fmt: skip
    config = {
        "server": {"host": LOOPBACK, "port": port, "workers": 1, "log_level": "warning"},
        "upstream": {"balancer": balancer, "max_attempts": 1},
        "adapters": {"on_demand_loading": True, "max_loaded_per_replica": max_loaded},
        "models": models,
    }
    fd, path = tempfile.mkstemp(prefix="switchyard-adapters-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        json.dump(config, f)  # JSON is YAML
    return Path(path)


async def one(
    session: aiohttp.ClientSession, url: str, model: str, tokens: int, out: list[dict[str, Any]]
) -> None:
    body = chat_body(model, True, tokens)
    t0 = time.monotonic()
    ttft: float | None = None
    try:
        async with session.post(url, data=body, headers={"content-type": "application/json"}) as r:
            async for _ in r.content.iter_any():
                if ttft is None:
                    ttft = time.monotonic() - t0
            status = r.status
    except aiohttp.ClientError:
        status = 0
    out.append({"ok": status == 200, "status": status, "ttft": ttft, "at": t0})


async def drive(url: str, rate: float, seconds: float, weights: list[float], seed: int) -> list:
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    tasks = []
    names = [f"ad{i}" for i in range(ADAPTERS)]
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.monotonic()
        at = start
        while at - start < seconds:
            at += rng.expovariate(rate)
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            model = rng.choices(names, weights)[0]
            tasks.append(asyncio.ensure_future(one(session, url, model, rng.randint(*TOKENS), out)))
        await asyncio.gather(*tasks)
    return out


def loaded(port: int) -> float:
    with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    prefix = 'switchyard_adapter_loads_total{model="'
    lines = [ln for ln in text.splitlines() if ln.startswith(prefix) and '"loaded"' in ln]
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in lines)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run(balancer: str, a: argparse.Namespace, weights: list[float], logs: Path) -> dict[str, Any]:
    perf = logs / "perf.json"
    steps = {"decode_base_s": DECODE_BASE_S, "decode_s_per_seq": DECODE_PER_SEQ_S}
    perf.write_text(json.dumps(steps))  # JSON is YAML
    procs, urls = [], []
    try:
        for i in range(REPLICAS):
            port = free_port()
            argv = [*simulator_argv("base", port, "fast"), "--max-num-seqs", str(MAX_SEQS),
                    "--max-loras", str(SLOTS), "--lora-load-s", str(a.lora_load_s),
                    "--perf-file", str(perf), "--seed", str(i)]  # fmt: skip
            procs.append(start_process(argv, logs / f"sim{i}.log"))
            urls.append(f"http://{LOOPBACK}:{port}/v1")
        for proc, url in zip(procs, urls, strict=True):
            wait_ready(f"{url}/chat/completions", chat_body("base", False, 2), proc, 30)
        gw_port = free_port()
        config = gateway_yaml(gw_port, urls, balancer, a.max_loaded)
        gw = start_process(gateway_argv(config, gw_port), logs / f"gw-{balancer}.log")
        procs.append(gw)
        gw_url = f"http://{LOOPBACK}:{gw_port}/v1/chat/completions"
        wait_ready(gw_url, chat_body("base", False, 2), gw, 30)
        rate = a.load * capacity_rps()
        asyncio.run(drive(gw_url, rate, a.warmup, weights, a.seed))
        before = loaded(gw_port)
        t0 = time.monotonic()
        results = asyncio.run(drive(gw_url, rate, a.duration, weights, a.seed + 1))
        minutes = (time.monotonic() - t0) / 60
        loads = loaded(gw_port) - before
    finally:
        for proc in procs:
            stop_group(proc)
    ttfts = [r["ttft"] for r in results if r["ok"] and r["ttft"] is not None]
    return {
        "requests": len(results),
        "errors": sum(not r["ok"] for r in results),
        "error_statuses": sorted({r["status"] for r in results if not r["ok"]}),
        "ttft_p50_s": pct(ttfts, 0.5),
        "ttft_p99_s": pct(ttfts, 0.99),
        "adapter_loads_per_min": loads / minutes,
        "rate_rps": rate,
    }


def markdown(runs: dict[str, dict[str, Any]]) -> str:
    lines = ["| balancer | requests | errors | p50 TTFT (s) | p99 TTFT (s) | adapter loads/min |",
             "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, r in runs.items():
        lines.append(f"| {name} | {r['requests']} | {r['errors']} | {r['ttft_p50_s']:.3f} | "
                     f"{r['ttft_p99_s']:.3f} | {r['adapter_loads_per_min']:.1f} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=40.0)
    p.add_argument("--warmup", type=float, default=10.0)
    p.add_argument("--load", type=float, default=0.8)
    p.add_argument("--zipf", type=float, default=1.0)
    p.add_argument("--lora-load-s", type=float, default=0.1)
    p.add_argument("--balancers", default=",".join(BALANCERS))
    p.add_argument("--max-loaded", type=int, default=0, help="adapters.max_loaded_per_replica")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args(argv)
    # The replicas' runtime load/unload routes exist only with vLLM's own switch on.
    os.environ["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
    probe = LoadProbe()
    weights = zipf_weights(ADAPTERS, a.zipf)
    log(f"capacity {capacity_rps():.1f} req/s; offered {a.load * capacity_rps():.1f} req/s")
    with tempfile.TemporaryDirectory(prefix="adapter-bench-") as tmp:
        runs = {b: run(b, a, weights, Path(tmp)) for b in a.balancers.split(",")}
    results = {"args": {k: str(v) for k, v in vars(a).items()}, "runs": runs,
               "machine": machine_info(probe, ["aiohttp", "uvicorn"])}  # fmt: skip
    write_results(markdown(runs), results, a.out)


if __name__ == "__main__":
    sys.exit(main())
