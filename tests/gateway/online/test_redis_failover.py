"""Outcome records survive a master failover, on a real Redis Cluster and on Redis Sentinel.

Two ``RedisState`` replicas publish records without pause while the master holding the outcome
stream is killed and its replica promoted. Once both buffers are empty (every record
acknowledged: written and confirmed by a replica with WAIT), every record is in the stream and
every decision can be looked up, on the new master.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from switchyard.gateway.metrics import GatewayMetrics
from switchyard.gateway.online.learner import Learner, WorkerBandits
from switchyard.gateway.online.redis_state import RedisState
from switchyard.gateway.outcomes import Decided, OutcomeRecord
from switchyard.gateway.redis_client import connect, parse_target
from switchyard.gateway.settings import BanditConfig, RoutingConfig
from switchyard.gateway.state import StateConfig
from tests.support.redis_topologies import RedisClusterSet, RedisSentinelSet

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
DECIDED = Decided("r", "small", 0.0, 0.0, 0.5, None)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["cluster", "sentinel"])
def topology(request: pytest.FixtureRequest) -> tuple[str, Callable[[str], float]]:
    """(URL, kill(stream key) -> seconds until the replica took over)."""
    if request.param == "cluster":
        cluster: RedisClusterSet = request.getfixturevalue("new_redis_cluster")
        return cluster.url, cluster.kill_master_of
    sentinels: RedisSentinelSet = request.getfixturevalue("redis_sentinels")
    return sentinels.url, lambda _key: sentinels.kill_master()


def record(i: int) -> OutcomeRecord:
    return OutcomeRecord(f"d{i:06d}", "r", {}, "small", "e", "200", 1, 1, 0.0, 0.01, None, 0.0)


async def _replica(url: str, executor: ThreadPoolExecutor) -> RedisState:
    learner = Learner()
    learner.add("r", ["small", "large"], BanditConfig(dim=8), input_dim=16, embedder="test")
    state = RedisState(
        StateConfig(redis_url=url, timeout_s=0.5),
        RoutingConfig(refresh_s=0.1),
        GatewayMetrics(CollectorRegistry()),
    )
    await state.start(WorkerBandits(learner, executor))
    return state


async def _stream_ids(url: str, key: str) -> set[str]:
    client: Any = connect(parse_target(url), 5.0, 4)
    try:
        entries = await client.xrange(key)
        return {orjson.loads(fields[b"data"])["decision_id"] for _, fields in entries}
    finally:
        await client.aclose()


async def test_no_acknowledged_outcome_record_is_lost_when_the_master_fails_over(
    topology: tuple[str, Callable[[str], float]],
) -> None:
    url, kill = topology
    with ThreadPoolExecutor(1) as executor:
        replicas = [await _replica(url, executor) for _ in range(2)]
        try:
            published = 0

            async def publish_for(seconds: float) -> None:
                nonlocal published
                until = time.monotonic() + seconds
                while time.monotonic() < until:
                    replicas[published % 2].publish(record(published), DECIDED)
                    published += 1
                    await asyncio.sleep(0.002)

            await publish_for(1.0)
            assert all(r.view()["replicated"] for r in replicas)  # WAIT 1 answered 1
            failover = asyncio.create_task(asyncio.to_thread(kill, replicas[0].stream_key))
            while not failover.done():
                await publish_for(0.1)
            took_s = await failover
            await publish_for(1.0)

            deadline = time.monotonic() + 30
            while any(r.view()["buffered_records"] for r in replicas):
                assert time.monotonic() < deadline, [r.view() for r in replicas]
                await asyncio.sleep(0.1)

            # The promoted master has no replica left: batches are kept, and the view says so.
            assert not any(r.view()["replicated"] for r in replicas)
            written = await _stream_ids(url, replicas[0].stream_key)
            missing = {record(i).decision_id for i in range(published)} - written
            assert not missing, f"{len(missing)} of {published} lost ({took_s:.1f} s failover)"
            for i in range(0, published, max(published // 50, 1)):  # decisions survived too
                assert await replicas[1].lookup(record(i).decision_id) == DECIDED
        finally:
            for replica in replicas:
                await replica.close()
