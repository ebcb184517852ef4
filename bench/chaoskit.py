"""The parts of the chaos run (bench/chaos.py): real processes on free loopback ports.

``Cluster`` starts and stops one ``redis-server`` (append-only file, fsync always, so a kill
loses nothing Redis acknowledged), simulated vLLM servers (``switchyard simulate``, two per
model) and gateway replicas (``switchyard serve``, run as ``python -m switchyard`` from this
checkout), each in its own session so that a kill reaches only that process group.
``Fault`` is one injected fault and what errors it may explain.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import benchkit as bk
import yaml
from benchkit import free_port

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
# (model, input, output) USD per 1M tokens, as switchyard/data/default-router knows them.
MODELS = (("mistralai/mistral-7b-chat", 0.2, 0.2), ("gpt-3.5-turbo-1106", 1.0, 2.0))
SIMS_PER_MODEL = 2
KEY_SECRET = "chaos-secret-" + "k" * 20
OPEN_KEY = "sk-sy-chaos-open-" + "a" * 24
LIMITED_KEY = "sk-sy-chaos-limited-" + "b" * 24

# What each fault may explain: error labels are "<status>:<code>" or a transport failure.
UPSTREAM = {"502", "503", "504", "stream_cut", "timeout"}
EXPLAINS = {
    "backend_kill": UPSTREAM,
    "backend_hang": UPSTREAM,
    "backend_5xx": UPSTREAM,
    "backend_429": UPSTREAM | {"429"},
    "redis_kill": {"503:state_store_unavailable"},
    "gateway_kill": {"conn_refused", "conn_broken", "stream_cut", "timeout"},
}


def wait_until(ready: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if ready():
                return
        time.sleep(0.1)
    raise RuntimeError(f"not ready after {timeout:g}s: {what}")


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return int(resp.status) == 200


@dataclass
class Fault:
    kind: str
    target: str
    start: float  # monotonic
    healed: float = 0.0  # when the target was back (0 while active)

    def explains(self, label: str, started: float, ended: float, grace: float) -> bool:
        until = (self.healed or time.monotonic()) + grace
        if ended < self.start - 0.5 or started > until:
            return False
        allowed = EXPLAINS[self.kind]
        return label in allowed or label.split(":")[0] in allowed


@dataclass
class Proc:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] | None = None
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=self.env, cwd=REPO,
            )  # fmt: skip
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL the process group (a crash), and reap it."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        bk.stop_group(self.popen)

    def rss_mb(self) -> float:
        if self.popen is None or self.popen.poll() is not None:
            return 0.0
        return bk.rss_kb(self.popen.pid) / 1000


@dataclass
class Cluster:
    workdir: Path
    embedder_cache: Path
    rpm: int
    redis_port: int = field(default_factory=free_port)
    sims: dict[str, Proc] = field(default_factory=dict)  # by "model#i"
    sim_ports: dict[str, int] = field(default_factory=dict)
    gateways: list[Proc] = field(default_factory=list)
    gateway_ports: list[int] = field(default_factory=list)
    redis: Proc | None = None

    @property
    def redis_url(self) -> str:
        return f"redis://{LOOPBACK}:{self.redis_port}/0"

    def start(self, replicas: int = 2) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._start_redis()
        for model, _, _ in MODELS:
            for i in range(SIMS_PER_MODEL):
                name, port = f"{model}#{i}", free_port()
                argv = [sys.executable, "-m", "switchyard", "simulate", "--model", model,
                        "--port", str(port), "--preset", "zero", "--seed", str(i)]  # fmt: skip
                self.sim_ports[name] = port
                self.sims[name] = Proc(name, argv, self.workdir / f"sim-{port}.log")
                self.sims[name].start()
        config = self.workdir / "gateway.yaml"
        config.write_text(yaml.safe_dump(self.gateway_config()), encoding="utf-8")
        env = os.environ | {"SWITCHYARD_KEY_SECRET": KEY_SECRET, "CHAOS_KEY_OPEN": OPEN_KEY,
                            "CHAOS_KEY_LIMITED": LIMITED_KEY, "PYTHONPATH": str(REPO)}  # fmt: skip
        for i in range(replicas):
            port = free_port()
            argv = [sys.executable, "-m", "switchyard", "serve", "--config", str(config),
                    "--port", str(port)]  # fmt: skip
            self.gateway_ports.append(port)
            self.gateways.append(Proc(f"gateway{i}", argv, self.workdir / f"gw{i}.log", env))
            self.gateways[i].start()
        for name, port in self.sim_ports.items():
            wait_until(lambda p=port: http_ok(f"http://{LOOPBACK}:{p}/health"), name)
        for i, port in enumerate(self.gateway_ports):
            wait_until(lambda p=port: http_ok(f"http://{LOOPBACK}:{p}/readyz"), f"gateway {i}", 120)

    def _start_redis(self) -> None:
        data = self.workdir / "redis"
        data.mkdir(exist_ok=True)
        argv = ["redis-server", "--port", str(self.redis_port), "--bind", LOOPBACK,
                "--dir", str(data), "--save", "", "--appendonly", "yes",
                "--appendfsync", "always"]  # fmt: skip
        self.redis = Proc("redis", argv, self.workdir / "redis.log")
        self.restart_redis()

    def restart_redis(self) -> None:
        assert self.redis is not None
        self.redis.start()
        wait_until(lambda: _ping(self.redis_port), "redis")

    def restart_sim(self, name: str) -> None:
        self.sims[name].start()
        wait_until(lambda: http_ok(f"http://{LOOPBACK}:{self.sim_ports[name]}/health"), name)

    def restart_gateway(self, i: int) -> None:
        self.gateways[i].start()
        url = f"http://{LOOPBACK}:{self.gateway_ports[i]}/readyz"
        wait_until(lambda: http_ok(url), f"gateway {i}", timeout=120)

    def sim_faults(self, name: str, **faults: Any) -> None:
        import json

        body = json.dumps(faults).encode()
        url = f"http://{LOOPBACK}:{self.sim_ports[name]}/sim/faults"
        req = urllib.request.Request(url, body, {"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=5):
            pass

    def gateway_config(self) -> dict[str, Any]:
        from switchyard.resources import default_router

        models = [
            {"name": model, "price_input_per_mtok": p_in, "price_output_per_mtok": p_out,
             "endpoints": [{"url": f"http://{LOOPBACK}:{self.sim_ports[f'{model}#{i}']}/v1"}
                           for i in range(SIMS_PER_MODEL)]}
            for model, p_in, p_out in MODELS
        ]  # fmt: skip
        keys = [{"name": "open", "key_env": "CHAOS_KEY_OPEN"},
                {"name": "limited", "key_env": "CHAOS_KEY_LIMITED",
                 "limits": {"rpm": self.rpm}}]  # fmt: skip
        return {
            "server": {"host": LOOPBACK, "log_level": "warning"},
            "upstream": {
                "connect_timeout_s": 0.5,
                "first_byte_timeout_s": 2.0,
                "read_timeout_s": 5.0,
                "retry_budget_s": 6.0,
                "breaker_cooldown_s": 2.0,
                "scrape_interval_s": 0.5,
            },
            "models": models,
            "routers": [
                {
                    "name": "smart",
                    "artifact": str(default_router()),
                    "default": True,
                    "candidates": [m for m, _, _ in MODELS],
                }
            ],
            "routing": {"embedder_cache": str(self.embedder_cache), "refresh_s": 0.5},
            "state": {"redis_url": self.redis_url, "timeout_s": 0.25},
            "auth": {"enabled": True, "fail_open": False, "keys": keys, "admin_key_env": None},
        }

    def stop(self) -> None:
        for proc in [*self.gateways, *self.sims.values()]:
            proc.stop()
        if self.redis is not None:
            self.redis.stop()


def _ping(port: int) -> bool:
    with socket.create_connection((LOOPBACK, port), 1) as conn:
        conn.sendall(b"*1\r\n$4\r\nPING\r\n")
        return conn.recv(64) == b"+PONG\r\n"
