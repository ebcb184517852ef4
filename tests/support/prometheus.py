"""A real Prometheus server for the deploy tests: the Debian package ``prometheus``, on a free
loopback port, scraping the given targets every second and evaluating the given rule files
every second, its data in a temporary directory; and every series the gateway can expose."""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client import CollectorRegistry

from switchyard.gateway.adapter_metrics import AdapterCollector
from switchyard.gateway.apis import api_requests
from switchyard.gateway.cache.hook import CacheMetrics
from switchyard.gateway.cascade import CascadeMetrics
from switchyard.gateway.discovery_metrics import DiscoveryCollector
from switchyard.gateway.metrics import GatewayMetrics
from switchyard.gateway.prefix_metrics import PrefixIndexCollector
from switchyard.gateway.settings import Settings, build_settings
from switchyard.gateway.shadow import ShadowMetrics
from switchyard.gateway.slo_metrics import SloCollector
from switchyard.gateway.tracing.metrics import TraceExportMetrics
from switchyard.gateway.upstream_metrics import UpstreamConnectionsCollector
from switchyard.gateway.upstreams import Upstreams
from tests.support.servers import free_port

INTERVAL = "1s"


def gateway_series() -> set[str]:
    """Every series name the gateway can expose, as Prometheus scrapes it."""
    metrics = GatewayMetrics(CollectorRegistry())
    metrics.watch_breakers(dict)
    metrics.watch_bandits(dict)
    upstreams = Upstreams(_one_model_settings())
    metrics.registry.register(DiscoveryCollector(upstreams))
    metrics.registry.register(PrefixIndexCollector(upstreams))
    metrics.registry.register(AdapterCollector(upstreams))
    metrics.registry.register(SloCollector(lambda: upstreams.pools))
    metrics.registry.register(UpstreamConnectionsCollector(upstreams))
    api_requests(metrics.registry)  # switchyard.gateway.apis: the Responses and Messages APIs
    TraceExportMetrics(metrics.registry)  # with tracing on
    CacheMetrics(metrics.registry)  # with the response cache on
    ShadowMetrics(metrics.registry)  # with shadow mode on
    CascadeMetrics(metrics.registry)  # the cascade routers' counters (always registered)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    return {
        family.name + suffix
        for family in metrics.registry.collect()
        for suffix in suffixes.get(family.type, ("",))
    }


def _one_model_settings() -> Settings:
    model = {"name": "m", "price_input_per_mtok": 0, "price_output_per_mtok": 0}
    return build_settings({"models": [model | {"endpoints": [{"url": "http://127.0.0.1:1/v1"}]}]})


class PrometheusServer:
    """``prometheus`` scraping ``jobs`` (job name → ``host:port`` targets) and evaluating
    ``rule_files``; ``query`` runs an instant query through the HTTP API."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def start(self, jobs: Mapping[str, Sequence[str]], rule_files: Sequence[Path]) -> None:
        config = {
            "global": {
                "scrape_interval": INTERVAL,
                "scrape_timeout": INTERVAL,
                "evaluation_interval": INTERVAL,
            },
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": list(targets)}]}
                for job, targets in jobs.items()
            ],
        }
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        log = (self.workdir / "prometheus.log").open("wb")
        self._proc = subprocess.Popen(
            [self.binary, f"--config.file={path}", f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None and self._proc.poll() is None, self.log()
            try:
                if self._client.get("/-/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"prometheus not ready within {timeout}s\n{self.log()}")

    def log(self) -> str:
        path = self.workdir / "prometheus.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now (a PromQL error fails the test)."""
        resp = self._client.get("/api/v1/query", params={"query": expr})
        body = resp.json()
        assert resp.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def has_data(self, expr: str) -> bool:
        """Whether ``expr`` returns at least one sample with a finite value."""
        return any(math.isfinite(float(s["value"][1])) for s in self.query(expr))

    def targets_up(self) -> dict[str, bool]:
        """Each active target's scrape URL and whether its last scrape succeeded."""
        active = self._client.get("/api/v1/targets").json()["data"]["activeTargets"]
        return {t["scrapeUrl"]: t["health"] == "up" for t in active}

    def stop(self) -> None:
        self._client.close()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
