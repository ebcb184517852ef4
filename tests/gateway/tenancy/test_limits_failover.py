"""Rate limits through a master failover: two gateways, one key at rpm=100, traffic far above
the limit without pause, and the master holding the key's bucket killed mid-run (a Redis
Cluster promotes its replica; on Sentinel the sentinels do).

The gateways fail closed (503 while no master answers), then follow the new master by
themselves. The limit holds across the failover: the promoted replica has the bucket as the
old master last replicated it, so no fresh bucket appears and at most the admissions of the
replication lag before the kill (documented bound: ``LOST_AT_FAILOVER``) are forgotten.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import Counter
from collections.abc import Callable

import aiohttp
import pytest

from switchyard.gateway.tenancy.keys import new_key
from switchyard.gateway.tenancy.redis_store import RedisStore
from tests.support.gateways import Gateway, Simulator, model_entry
from tests.support.redis_topologies import RedisClusterSet, RedisSentinelSet

pytestmark = pytest.mark.slow
RPM = 100
INTERVAL_S = 60.0 / RPM
LOST_AT_FAILOVER = 2  # admissions a kill may take with it (replication is asynchronous)
BODY = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
BUCKET = "key:static_k1:rpm"


@pytest.fixture(params=["cluster", "sentinel"])
def topology(request: pytest.FixtureRequest) -> tuple[str, Callable[[], float]]:
    """(URL, kill the master holding the key's bucket -> seconds until its replica took over)."""
    if request.param == "cluster":
        cluster: RedisClusterSet = request.getfixturevalue("new_redis_cluster")
        tat_key = RedisStore(cluster.url).tat_key(BUCKET)
        return cluster.url, lambda: cluster.kill_master_of(tat_key)
    sentinels: RedisSentinelSet = request.getfixturevalue("redis_sentinels")
    return sentinels.url, sentinels.kill_master


async def traffic(gateways: list[Gateway], key: str, stop: threading.Event) -> list[int]:
    """Requests from 4 workers, alternating gateways, until ``stop``: their statuses."""
    statuses: list[int] = []
    headers = {"authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:

        async def worker(n: int) -> None:
            while not stop.is_set():
                url = f"{gateways[n % 2].url}/v1/chat/completions"
                async with session.post(url, json=BODY, headers=headers) as resp:
                    await resp.read()
                    statuses.append(resp.status)
                n += 1
                await asyncio.sleep(0.01)

        await asyncio.gather(*(worker(i) for i in range(4)))
    return statuses


def test_two_gateways_keep_the_rpm_limit_through_a_master_failover(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    topology: tuple[str, Callable[[], float]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, kill = topology
    key = new_key()
    monkeypatch.setenv("SWITCHYARD_KEY_SECRET", "failover-test-secret")
    monkeypatch.setenv("SY_TEST_KEY", key)
    sim = simulator("m")
    auth = {"enabled": True, "fail_open": False,
            "keys": [{"name": "k1", "key_env": "SY_TEST_KEY", "limits": {"rpm": RPM}}]}  # fmt: skip
    state = {"redis_url": url, "timeout_s": 0.5}
    gateways = [gateway([model_entry("m", sim.base_url)], auth=auth, state=state) for _ in "ab"]
    stop = threading.Event()
    started = time.monotonic()

    def failover_then_stop() -> float:
        time.sleep(1.5)  # the bucket is empty by now: every further admission is a refill
        took_s = kill()
        time.sleep(2.0)  # both gateways back on the new master
        stop.set()
        return took_s

    with_failover = threading.Thread(target=lambda: took.append(failover_then_stop()))
    took: list[float] = []
    with_failover.start()
    statuses = Counter(asyncio.run(traffic(gateways, key, stop)))
    with_failover.join()
    elapsed = time.monotonic() - started

    assert set(statuses) <= {200, 429, 503}, statuses
    refill = math.floor(elapsed / INTERVAL_S)
    assert RPM <= statuses[200] <= RPM + refill + LOST_AT_FAILOVER, (statuses, elapsed, took)
    assert statuses[429] > statuses[200]  # the limit was enforced before and after the kill
    assert sim.metric("vllm:request_success_total") == statuses[200]
    bearer = {"authorization": f"Bearer {key}"}
    after = [gw.client.post("/v1/chat/completions", json=BODY, headers=bearer) for gw in gateways]
    assert [r.status_code for r in after] in ([429, 429], [200, 429], [429, 200]), after
