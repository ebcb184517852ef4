"""Fixtures shared by every test directory: simulated vLLM servers and gateways on free ports,
the prompt embedder exported once per run, and real Redis, Redis Cluster, Redis Sentinel and
dnsmasq servers (each skipped locally, failed in CI, when its binary is missing: see
tests/support/requirements.py). The run ends with one line per group of skipped tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client import CollectorRegistry

from switchyard.backends.simulator import build_config, create_simulator_app
from switchyard.gateway.app import create_app
from switchyard.gateway.connections import protocol
from switchyard.gateway.settings import build_settings
from tests.support.dnsmasq import Dnsmasq
from tests.support.dnsmasq import available as dnsmasq_available
from tests.support.gateways import Gateway, Simulator, model_entry
from tests.support.redis import RedisServer
from tests.support.redis import available as redis_available
from tests.support.redis_topologies import (
    RedisClusterSet,
    RedisSentinelSet,
    cluster_available,
    sentinel_available,
)
from tests.support.requirements import (
    DNSMASQ,
    REDIS_CLI,
    REDIS_SENTINEL,
    REDIS_SERVER,
    require,
    skip_reason,
    skip_summary,
)
from tests.support.servers import ServerThread

if TYPE_CHECKING:
    from switchyard.routers.embedding import OnnxEmbedder, StaticEmbedder


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Iterator[None]:
    """End the run with one line per group of skipped tests: how many, what they need and how
    to enable it (after the short summary, ``-ra``, which gives each test's own reason)."""
    try:
        return (yield)
    finally:
        skipped = terminalreporter.stats.get("skipped", [])
        lines = skip_summary(skip_reason(report) for report in skipped)
        if lines:
            terminalreporter.section("skipped tests, by what they need")
            for line in lines:
                terminalreporter.write_line(line)


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


@pytest.fixture(scope="session")
def embedder_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory holding the exported prompt embedders (MiniLM and the static table
    distilled from it): the torch export runs once per test run, for every directory that
    needs it (routers, gateway, cli, deploy, bench)."""
    from switchyard.routers.embedding import distill_static, export_onnx  # torch: when used

    cache = tmp_path_factory.mktemp("switchyard-cache")
    export_onnx(cache)
    distill_static(cache)
    return cache


@pytest.fixture(scope="session")
def static_embedder(embedder_cache: Path) -> StaticEmbedder:
    """The static embedder the shipped default router is trained on."""
    from switchyard.routers.embedding import StaticEmbedder

    return StaticEmbedder(embedder_cache)


@pytest.fixture(scope="session")
def onnx_embedder(embedder_cache: Path) -> OnnxEmbedder:
    """The default int8 ONNX embedder on one intra-op thread."""
    from switchyard.routers.embedding import OnnxEmbedder

    return OnnxEmbedder(embedder_cache, threads=1)


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private ``redis-server`` on a free port (``.url``, ``.stop()``, ``.start()``)."""
    require(REDIS_SERVER, redis_available())
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def dns_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dnsmasq]:
    """A private ``dnsmasq`` on a loopback port (``.nameserver``, ``.set_records(name, ips)``)."""
    require(DNSMASQ, dnsmasq_available())
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
    require(REDIS_SERVER, redis_available())
    require(REDIS_CLI, cluster_available())
    cluster = RedisClusterSet(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def redis_sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinelSet]:
    """A master, its replica and three ``redis-sentinel`` of this test's own."""
    require(REDIS_SERVER, redis_available())
    require(REDIS_SENTINEL, sentinel_available())
    sentinels = RedisSentinelSet(tmp_path_factory.mktemp("redis-sentinel"))
    try:
        yield sentinels.start()
    finally:
        sentinels.stop()
