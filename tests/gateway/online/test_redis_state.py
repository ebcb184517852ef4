"""``RedisState`` on a real Redis (plain, a one-node Cluster through a single-node client, and
a 3-master Redis Cluster through the cluster client): replicas folding at once lose no
observation and end with identical statistics."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from switchyard.gateway.metrics import GatewayMetrics
from switchyard.gateway.online.learner import Learner, WorkerBandits
from switchyard.gateway.online.redis_state import RedisState
from switchyard.gateway.settings import BanditConfig, RoutingConfig
from switchyard.gateway.state import StateConfig
from switchyard.routers.online.stats import Observation
from tests.support.redis import available, redis_running
from tests.support.redis_topologies import RedisClusterSet
from tests.support.requirements import REDIS_SERVER, require

pytestmark = pytest.mark.anyio
ARMS = ["small", "large"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["redis", "cluster", "redis-cluster"])
def redis_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "redis-cluster":
        cluster: RedisClusterSet = request.getfixturevalue("redis_cluster")
        yield cluster.url
        return
    require(REDIS_SERVER, available())
    with redis_running(tmp_path, cluster=request.param == "cluster") as server:
        yield server.url


@pytest.fixture
def prefix() -> str:
    return f"fold-{uuid.uuid4().hex[:12]}"  # the shared Cluster outlives this test


async def _replica(
    url: str, prefix: str, executor: ThreadPoolExecutor
) -> tuple[RedisState, Learner]:
    learner = Learner()
    learner.add("r", ARMS, BanditConfig(dim=8), input_dim=16, embedder="test")
    routing = RoutingConfig(refresh_s=0.05)
    config = StateConfig(redis_url=url, key_prefix=prefix)
    state = RedisState(config, routing, GatewayMetrics(CollectorRegistry()))
    await state.start(WorkerBandits(learner, executor))
    return state, learner


def _rows(n: int, seed: int) -> list[Observation]:
    rng = np.random.default_rng(seed)
    return [
        Observation(ARMS[i % 2], tuple(rng.normal(size=9)), float(rng.normal())) for i in range(n)
    ]


async def test_replicas_folding_at_once_share_every_observation(
    redis_url: str, prefix: str
) -> None:
    with ThreadPoolExecutor(1) as executor:
        (one, first), (two, second) = [
            await _replica(redis_url, prefix, executor) for _ in range(2)
        ]
        try:
            for a, b in zip(_rows(60, 1), _rows(60, 2), strict=True):
                one.observe("r", a)
                two.observe("r", b)
            for _ in range(200):
                await asyncio.sleep(0.05)
                if first.steps()["r"] == second.steps()["r"] == 120:
                    break
            assert first.steps()["r"] == second.steps()["r"] == 120
            view_one, view_two = first.view()["r"], second.view()["r"]
            assert view_one["arms"] == view_two["arms"]
            assert view_one["key"] == view_two["key"]
        finally:
            await one.close()
            await two.close()
