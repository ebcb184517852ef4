"""The chart's two topologies under the §10 load (bench/replica_bench_load.py): one Service in
front of three unequal vLLM replicas vs the replicas discovered one by one.

Setup
  The same three simulated replicas as §10 — fast, medium, slow presets with
  ``--max-num-seqs 32,16,4`` — each its own process, as pods on 127.0.0.2, .3 and .4, all on
  one port. One gateway process (``switchyard serve``, balancer ``switchyard``, scrape 1 s).
  - ``service``: the gateway's one endpoint is a ClusterIP-like Service, bench/random_proxy.py
    (each new connection to a random pod, as kube-proxy does; the gateway's keep-alive pool
    holds many connections under load). ``max_num_seqs`` 52, the sum, as the chart's
    ``gateway.discovery.mode=service`` writes it; its /metrics scrape reaches a random pod.
  - ``discovery``: each pod found by DNS from a real dnsmasq on a loopback port — one
    headless Service per pool, as the chart renders three pools of unequal GPUs — each with
    its pool's ``max_num_seqs``.
  - ``discovery-1name``: the three pods behind one name (one headless Service) and no
    ``max_num_seqs`` at all: only the scraped state and learned service times tell them apart.

Load: open-loop Poisson streamed chat completions, 32..96 output tokens, at the given shares
of the fleet's capacity (§10's ``capacity_rps``); each (topology, phase) on a fresh fleet.
Goodput: requests/s with TTFT <= ``--slo-ttft`` and mean ITL <= ``--slo-itl``.

    python bench/discovery_bench.py [--duration 15] [--phases 50%,80%,95%] [--out PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchkit import (
    LOOPBACK,
    VENV_PYTHON,
    chat_body,
    gateway_argv,
    log,
    simulator_argv,
    stop_group,
    wait_ready,
)
from replica_bench_load import (
    MODEL,
    PHASES,
    REPLICAS,
    Outcome,
    capacity_rps,
    free_port,
    run_load,
    start_process,
    summarize,
)
from routerkit import LoadProbe, machine_info, write_results

BENCH_DIR = Path(__file__).resolve().parent
OUT = BENCH_DIR / "results" / "discovery" / "discovery_bench.json"
PODS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
TOPOLOGIES = ("service", "discovery", "discovery-1name")
DOMAIN = "bench.test"


class Dns:
    """dnsmasq on a loopback port answering ``*.bench.test`` from a hosts file."""

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.port = workdir, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def nameserver(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def start(self, records: dict[str, list[str]]) -> None:
        hosts = self.workdir / "hosts"
        hosts.write_text("".join(f"{ip} {n}\n" for n, ips in records.items() for ip in ips))
        binary = shutil.which("dnsmasq")
        if binary is None:
            raise SystemExit("dnsmasq is not installed (apt-get install dnsmasq)")
        argv = [binary, "--keep-in-foreground", "--conf-file=/dev/null", f"--port={self.port}",
                f"--listen-address={LOOPBACK}", "--bind-interfaces", "--no-resolv", "--no-hosts",
                f"--addn-hosts={hosts}", f"--local=/{DOMAIN}/"]  # fmt: skip
        if os.geteuid() == 0:  # else it drops to "nobody", who may not read the hosts file
            argv.append("--user=root")
        self.proc = start_process(argv, self.workdir / "dnsmasq.log")
        time.sleep(0.3)

    def stop(self) -> None:
        stop_group(self.proc)


class Topology:
    """Three pods (simulators), the front the topology puts before them, and a gateway."""

    def __init__(self, kind: str, logs: Path) -> None:
        self.kind, self.logs = kind, logs
        self.procs: list[subprocess.Popen[bytes]] = []
        self.pod_port = free_port()
        self.port = free_port()
        self.dns = Dns(logs)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/v1"

    def start(self) -> None:
        body = chat_body(MODEL, False, 1)
        for ip, (preset, seqs) in zip(PODS, REPLICAS, strict=True):
            argv = [*simulator_argv(MODEL, self.pod_port, preset), "--host", ip,
                    "--max-num-seqs", str(seqs)]  # fmt: skip
            proc = start_process(argv, self.logs / f"sim-{preset}.log")
            self.procs.append(proc)
            wait_ready(f"http://{ip}:{self.pod_port}/v1/chat/completions", body, proc, 30)
        config = self.logs / f"gateway-{self.kind}.yaml"
        config.write_text(json.dumps(self._config()))  # JSON is YAML
        gateway = start_process(gateway_argv(config, self.port), self.logs / "gateway.log")
        self.procs.append(gateway)
        wait_ready(f"{self.url}/chat/completions", body, gateway, 60)

    def _endpoints(self) -> list[dict[str, Any]]:
        if self.kind == "service":
            proxy_port = free_port()
            backends = ",".join(f"{ip}:{self.pod_port}" for ip in PODS)
            argv = [str(VENV_PYTHON), str(BENCH_DIR / "random_proxy.py"),
                    "--port", str(proxy_port), "--backends", backends]  # fmt: skip
            self.procs.append(start_process(argv, self.logs / "proxy.log"))
            seqs = sum(n for _, n in REPLICAS)
            return [{"url": f"http://{LOOPBACK}:{proxy_port}/v1", "max_num_seqs": seqs}]
        source = {"port": self.pod_port, "nameserver": self.dns.nameserver, "interval_s": 5}
        if self.kind == "discovery-1name":
            self.dns.start({f"pool.{DOMAIN}": list(PODS)})
            return [{"discover": source | {"name": f"pool.{DOMAIN}"}}]
        names = {
            f"pool-{preset}.{DOMAIN}": [ip] for ip, (preset, _) in zip(PODS, REPLICAS, strict=True)
        }
        self.dns.start(names)
        return [
            {"discover": source | {"name": name}, "max_num_seqs": seqs}
            for name, (_, seqs) in zip(names, REPLICAS, strict=True)
        ]

    def _config(self) -> dict[str, Any]:
        return {
            "server": {"host": LOOPBACK, "port": self.port, "workers": 1, "log_level": "warning"},
            "upstream": {"connect_timeout_s": 0.5, "breaker_failures": 3,
                         "breaker_cooldown_s": 2.0},
            "models": [{"name": MODEL, "price_input_per_mtok": 1, "price_output_per_mtok": 2,
                        "endpoints": self._endpoints()}],
        }  # fmt: skip

    def shares(self) -> dict[str, float]:
        """Requests each pod finished, from its own /metrics (the gateway cannot tell through
        a Service)."""
        counts = {}
        for ip, (preset, _) in zip(PODS, REPLICAS, strict=True):
            text = urllib.request.urlopen(f"http://{ip}:{self.pod_port}/metrics", timeout=5).read()
            counts[preset] = sum(
                float(line.rsplit(" ", 1)[1]) for line in text.decode().splitlines()
                if line.startswith("vllm:request_success_total{")
            )  # fmt: skip
        return counts

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop_group(proc)
        self.dns.stop()


def run_phase(kind: str, phase: str, a: argparse.Namespace) -> dict[str, Any]:
    logs = Path(tempfile.mkdtemp(prefix=f"discovery-bench-{kind}-"))
    topology = Topology(kind, logs)
    try:
        topology.start()
        outcomes: list[Outcome] = []
        rate = PHASES[phase] * capacity_rps()
        load = run_load(topology.url, rate, a.duration, phase == "burst", a.grace, a.seed, outcomes)
        asyncio.run(load)
        summary = summarize(outcomes, a.duration, a.slo_ttft, a.slo_itl)
        summary["pod_requests"] = topology.shares()
    finally:
        topology.stop()
    log(f"{kind} {phase}: {summary}")
    return summary


def verdicts(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    svc, pods = runs["service"]["80%"], runs["discovery"]["80%"]
    cut = 1 - pods["ttft_p99_ms"] / svc["ttft_p99_ms"] if svc["ttft_p99_ms"] else 0.0
    gain = pods["goodput_rps"] / svc["goodput_rps"] - 1 if svc["goodput_rps"] else float("inf")
    return [
        {"target": "80% load: p99 TTFT >= 30% lower with per-pod discovery",
         "measured": f"{pods['ttft_p99_ms']} ms vs {svc['ttft_p99_ms']} ms ({cut:.0%} lower)",
         "pass": cut >= 0.30},
        {"target": "80% load: goodput >= 20% higher with per-pod discovery",
         "measured": f"{pods['goodput_rps']} vs {svc['goodput_rps']} req/s ({gain:+.0%})",
         "pass": gain >= 0.20},
    ]  # fmt: skip


def markdown(runs: dict[str, dict[str, Any]], checks: list[dict[str, Any]]) -> str:
    lines = [
        "| topology | load | req/s offered | TTFT p50 / p99 ms | e2e p50 / p99 ms | "
        "goodput req/s (share) | errors (unfinished) | finished on fast / medium / slow |",
        "|" + "---|" * 8,
    ]
    for kind, phases in runs.items():
        for phase, r in phases.items():
            shares = " / ".join(f"{v:.0f}" for v in r["pod_requests"].values())
            unfinished = r["errors"].get("unfinished", 0)
            errors = f"{sum(r['errors'].values()) - unfinished} ({unfinished})"
            lines.append(
                f"| {kind} | {phase} | {r['offered_rps']} | {r['ttft_p50_ms']} / "
                f"{r['ttft_p99_ms']} | {r['e2e_p50_ms']} / {r['e2e_p99_ms']} | "
                f"{r['goodput_rps']} ({r['goodput_share']:.0%}) | {errors} | {shares} |"
            )
    lines += ["", "| target | measured | result |", "|---|---|---|"]
    lines += [f"| {c['target']} | {c['measured']} | {'pass' if c['pass'] else 'miss'} |"
              for c in checks]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=15.0, help="seconds of arrivals per run")
    p.add_argument("--grace", type=float, default=10.0, help="seconds to let requests finish")
    p.add_argument("--topologies", default=",".join(TOPOLOGIES))
    p.add_argument("--phases", default="50%,80%,95%")
    p.add_argument("--slo-ttft", type=float, default=1.0, help="goodput SLO: TTFT, seconds")
    p.add_argument("--slo-itl", type=float, default=0.05, help="goodput SLO: mean ITL, seconds")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args(argv)
    probe = LoadProbe()
    kinds, phases = a.topologies.split(","), a.phases.split(",")
    log(f"capacity {capacity_rps():.1f} req/s; SLO TTFT <= {a.slo_ttft}s, ITL <= {a.slo_itl}s")
    runs = {k: {ph: run_phase(k, ph, a) for ph in phases} for k in kinds}
    checks = verdicts(runs) if {"service", "discovery"} <= set(runs) and "80%" in phases else []
    results = {
        "command": " ".join(["python", "bench/discovery_bench.py", *(argv or sys.argv[1:])]),
        "capacity_rps": round(capacity_rps(), 2),
        "replicas": [
            {"preset": p, "max_num_seqs": n, "pod": ip}
            for ip, (p, n) in zip(PODS, REPLICAS, strict=True)
        ],
        "slo": {"ttft_s": a.slo_ttft, "mean_itl_s": a.slo_itl},
        "duration_s": a.duration,
        "runs": runs,
        "targets": checks,
        "machine": machine_info(probe, ["aiohttp", "uvicorn", "dnspython"]),
    }
    write_results(markdown(runs, checks), results, a.out)


if __name__ == "__main__":
    main()
