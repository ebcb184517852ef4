"""``switchyard demo``: three simulated vLLM servers (cheap and fast, mid, dear and slow) as
child processes, and the gateway in front of them. No GPU, no Redis. With ``--plan DIR``,
the fleet of a placement plan instead, each simulator at its configuration's modelled speed."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from switchyard.gateway.serve import run_gateway
from switchyard.gateway.settings import Settings, build_settings
from switchyard.resources import default_router


@dataclass(frozen=True)
class DemoModel:
    name: str
    preset: str
    price_in: float  # USD per 1M tokens
    price_out: float


# Named and priced as three of the RouterBench models (switchyard/data/routerbench-prices.yaml),
# so the default router's choices (trained on RouterBench) mean something here.
DEMO_MODELS = (
    DemoModel("mistralai/mistral-7b-chat", "fast", 0.20, 0.20),
    DemoModel("mistralai/mixtral-8x7b-chat", "medium", 0.60, 0.60),
    DemoModel("gpt-4-1106-preview", "slow", 10.0, 30.0),
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"simulator on port {port} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"simulator on port {port} did not start in {timeout:g}s")


@contextlib.contextmanager
def simulators(models: tuple[DemoModel, ...]) -> Iterator[dict[str, int]]:
    """Start one simulator process per model; yield {model: port}; stop them all."""
    procs: list[subprocess.Popen[bytes]] = []
    ports: dict[str, int] = {}
    try:
        for seed, m in enumerate(models):
            port = _free_port()
            cmd = [sys.executable, "-m", "switchyard", "simulate", "--model", m.name,
                   "--port", str(port), "--preset", m.preset, "--seed", str(seed)]  # fmt: skip
            procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL))
            ports[m.name] = port
        for proc, port in zip(procs, ports.values(), strict=True):
            _wait_for(port, proc)
        yield ports
    finally:
        _stop_all(procs)


def demo_settings(
    host: str, port: int, ports: dict[str, int], cache_dir: Path | None = None
) -> Settings:
    models = [
        {
            "name": m.name,
            "price_input_per_mtok": m.price_in,
            "price_output_per_mtok": m.price_out,
            "endpoints": [{"url": f"http://127.0.0.1:{ports[m.name]}/v1"}],
        }
        for m in DEMO_MODELS
    ]
    router = {
        "name": "auto",
        "artifact": str(default_router()),
        "candidates": [m.name for m in DEMO_MODELS],
        "default": True,
    }
    return build_settings(
        {
            "server": {"host": host, "port": port},
            "models": models,
            "routers": [router],
            "routing": {"embedder_cache": str(cache_dir) if cache_dir else None},
        }
    )


def banner(base: str) -> str:
    model = DEMO_MODELS[0].name
    return f"""
Switchyard demo: gateway on {base}, models {", ".join(m.name for m in DEMO_MODELS)}

  curl {base}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{{"model": "{model}", "messages": [{{"role": "user", "content": "Hello!"}}]}}'

  python -c 'from openai import OpenAI
c = OpenAI(base_url="{base}/v1", api_key="demo")
print(c.chat.completions.create(model="{model}",
      messages=[{{"role": "user", "content": "Hello!"}}]).choices[0].message.content)'

  Routed: "auto" picks one of the three per prompt (cost_weight: quality points per USD;
  0 = best quality, larger = cheaper); the x-switchyard-model header names the choice.
  python -c 'from openai import OpenAI
c = OpenAI(base_url="{base}/v1", api_key="demo")
r = c.chat.completions.create(model="auto", extra_body={{"switchyard": {{"cost_weight": 50}}}},
      messages=[{{"role": "user", "content": "Prove that sqrt(2) is irrational."}}])
print(r.model, r.choices[0].message.content)'

  Metrics: {base}/metrics    API docs: {base}/docs    Stop: Ctrl-C
"""


def run_demo(host: str, port: int, cache_dir: Path | None = None) -> None:
    with simulators(DEMO_MODELS) as ports:
        settings = demo_settings(host, port, ports, cache_dir)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        print(banner(f"http://{shown}:{port}"), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            run_gateway(settings)


# --- switchyard demo --plan DIR ------------------------------------------------------------


@contextlib.contextmanager
def plan_simulators(plan_dir: Path, work: Path) -> Iterator[list[tuple[dict[str, Any], int]]]:
    """One simulator per planned configuration, standing for all its replicas (its speed and
    capacity from the plan's ``simulators.yaml``); yield [(entry, port)]; stop them all."""
    entries = yaml.safe_load((plan_dir / "simulators.yaml").read_text())["simulators"]
    procs: list[subprocess.Popen[bytes]] = []
    started: list[tuple[dict[str, Any], int]] = []
    try:
        for seed, entry in enumerate(entries):
            perf_file = work / f"{entry['config']}.yaml"
            perf_file.write_text(yaml.safe_dump(entry["perf"]))
            port = _free_port()
            cmd = [sys.executable, "-m", "switchyard", "simulate", "--model", entry["model"],
                   "--port", str(port), "--preset", "zero", "--seed", str(seed),
                   "--perf-file", str(perf_file), *_lora_flags(entry)]  # fmt: skip
            env = _lora_env(entry)
            procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, env=env))
            started.append((entry, port))
        for proc, (_, port) in zip(procs, started, strict=True):
            _wait_for(port, proc)
        yield started
    finally:
        _stop_all(procs)


def _lora_flags(entry: dict[str, Any]) -> list[str]:
    """``switchyard simulate`` flags for a planned pool's LoRA adapters (none without)."""
    lora = entry.get("lora")
    if not lora:
        return []
    flags = ["--max-loras", str(lora["max_loras"])]
    for name, path in lora["lora_modules"].items():
        flags += ["--lora-modules", f"{name}={path}"]
    return flags


def _lora_env(entry: dict[str, Any]) -> dict[str, str] | None:
    """The environment with vLLM's runtime-loading switch, for pools loaded on demand."""
    if not (entry.get("lora") or {}).get("runtime_lora_updating"):
        return None
    return {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}


def _stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


def plan_settings(
    host: str,
    port: int,
    started: list[tuple[dict[str, Any], int]],
    gateway: dict[str, Any] | None = None,
) -> Settings:
    """The demo gateway's settings; ``gateway``: the plan's additions (its LoRA adapters as
    models, on-demand loading), from ``simulators.yaml``."""
    extra = dict(gateway or {})
    models: dict[str, dict[str, Any]] = {}
    for entry, sim_port in started:
        model = models.setdefault(entry["model"], {
            "name": entry["model"], "price_input_per_mtok": entry["price_per_mtok"],
            "price_output_per_mtok": entry["price_per_mtok"], "endpoints": [],
        })  # fmt: skip
        # The plan's traffic share of each pool becomes its endpoint's weight.
        url = f"http://127.0.0.1:{sim_port}/v1"
        model["endpoints"].append({"url": url, "weight": entry["weight"]})
    listed = list(models.values()) + list(extra.pop("models", []))
    return build_settings({"server": {"host": host, "port": port}, "models": listed, **extra})


def run_plan_demo(host: str, port: int, plan_dir: Path) -> None:
    with tempfile.TemporaryDirectory() as work, plan_simulators(plan_dir, Path(work)) as started:
        fleet = yaml.safe_load((plan_dir / "simulators.yaml").read_text())
        settings = plan_settings(host, port, started, fleet.get("gateway"))
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        models = sorted({entry["model"] for entry, _ in started})
        print(f"\nSwitchyard demo of plan {plan_dir}: gateway on http://{shown}:{port}, "
              f"models {', '.join(models)} on {len(started)} simulated pools. Stop: Ctrl-C\n",
              flush=True)  # fmt: skip
        with contextlib.suppress(KeyboardInterrupt):
            run_gateway(settings)
