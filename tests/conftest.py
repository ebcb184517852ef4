"""Fixtures that start real components on free ports: simulated vLLM servers and gateways."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from switchyard.backends.simulator import build_config, create_simulator_app
from switchyard.gateway.app import create_app
from switchyard.gateway.connections import protocol
from switchyard.gateway.settings import build_settings
from tests.support.dnsmasq import Dnsmasq
from tests.support.dnsmasq import available as dnsmasq_available
from tests.support.redis import RedisServer
from tests.support.redis import available as redis_available
from tests.support.redis_topologies import (
    RedisClusterSet,
    RedisSentinelSet,
    cluster_available,
    sentinel_available,
)
from tests.support.servers import ServerThread


@dataclass
class Simulator:
    server: ServerThread
    app: Any

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/v1"

    def metric(self, name: str) -> float:
        """A vLLM metric's value summed over its samples, read from the real /metrics."""
        text = httpx.get(f"{self.server.url}/metrics").text
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == name
        )


@dataclass
class Gateway:
    server: ServerThread
    registry: CollectorRegistry
    settings: Any
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.server.url, timeout=30)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/v1"

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


def model_entry(name: str, *urls: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "price_input_per_mtok": extra.pop("price_in", 1.0),
        "price_output_per_mtok": extra.pop("price_out", 2.0),
        "endpoints": [{"url": u} for u in urls],
        **extra,
    }


@pytest.fixture
def simulator() -> Iterator[Callable[..., Simulator]]:
    """``simulator(model="m", preset="zero", port=None, **faults_and_perf)`` starts one."""
    started: list[ServerThread] = []

    def start(model: str = "m", preset: str = "zero", port: int | None = None,
              seed: int = 0, **overrides: Any) -> Simulator:  # fmt: skip
        app = create_simulator_app(build_config(model, preset, seed, **overrides))
        server = ServerThread(app, port, lifespan="off").start()
        started.append(server)
        return Simulator(server, app)

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def gateway() -> Iterator[Callable[..., Gateway]]:
    """``gateway(models=[model_entry(...)], upstream={...}, server={...})`` starts one."""
    started: list[Gateway] = []

    def start(models: list[dict[str, Any]], **sections: Any) -> Gateway:
        settings = build_settings({"models": models, **sections})
        registry = CollectorRegistry()
        app = create_app(settings, registry)
        server = ServerThread(app, http=protocol(settings.server)).start()
        gw = Gateway(server, registry, settings)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.client.close()
        gw.server.stop()


@pytest.fixture
def sim_gateway(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> tuple[Simulator, Gateway]:
    """One zero-latency simulator serving model "m" behind a gateway."""
    sim = simulator("m")
    return sim, gateway([model_entry("m", sim.base_url)])


def require(installed: bool, what: str) -> None:
    """Skip without ``what`` outside CI; in CI (which installs it, .ci/run) fail."""
    if not installed:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is not installed")
        pytest.skip(f"{what} is not installed")


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private ``redis-server`` on a free port (``.url``, ``.stop()``, ``.start()``)."""
    require(redis_available(), "redis-server")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def dns_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dnsmasq]:
    """A private ``dnsmasq`` on a loopback port (``.nameserver``, ``.set_records(name, ips)``)."""
    if not dnsmasq_available():
        if os.environ.get("CI"):  # CI installs it (.ci/run): missing there is a failure
            pytest.fail("dnsmasq is not installed")
        pytest.skip("dnsmasq is not installed (apt-get install dnsmasq)")
    server = Dnsmasq(tmp_path_factory.mktemp("dns")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterSet]:
    """A real Redis Cluster (3 masters, 3 replicas), started once per test run and shared:
    give each test its own key prefix, and kill nodes only in ``new_redis_cluster``'s."""
    yield from _cluster(tmp_path_factory)


@pytest.fixture
def new_redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterSet]:
    """A Redis Cluster of this test's own, to kill a master in."""
    yield from _cluster(tmp_path_factory)


def _cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterSet]:
    require(redis_available() and cluster_available(), "redis-server and redis-cli")
    cluster = RedisClusterSet(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def redis_sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinelSet]:
    """A master, its replica and three ``redis-sentinel`` of this test's own."""
    require(redis_available() and sentinel_available(), "redis-sentinel")
    sentinels = RedisSentinelSet(tmp_path_factory.mktemp("redis-sentinel"))
    try:
        yield sentinels.start()
    finally:
        sentinels.stop()
