"""Rate limits shared by a cluster: two ``switchyard serve`` processes, one Redis, one key.

Both gateways run as real subprocesses (as in production: separate interpreters, separate
connection pools) in front of one zero-latency simulator, with the key's ``rpm`` limit kept in
a private ``redis-server``, or in a real 3-master Redis Cluster. Then Redis goes away: a
gateway that fails open admits without limits, one that fails closed answers 503
``state_store_unavailable``; both enforce the limit again as soon as Redis is back, without a
restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import yaml

from switchyard.gateway.tenancy.keys import new_key
from tests.support.gateways import Simulator, model_entry
from tests.support.redis import RedisServer
from tests.support.redis_topologies import RedisClusterSet
from tests.support.script import clean_env, script, wait_for_http
from tests.support.servers import free_port

RPM = 100
INTERVAL_S = 60.0 / RPM  # GCRA: one request refills every 0.6 s
BODY = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}


@dataclass(frozen=True)
class Replica:
    url: str
    key: str
    proc: subprocess.Popen[bytes]

    def post(self, key: str | None = None) -> httpx.Response:
        return httpx.post(
            f"{self.url}/v1/chat/completions",
            json=BODY,
            headers={"authorization": f"Bearer {key or self.key}"},
            timeout=10,
        )


def config(sim: Simulator, redis_url: str, fail_open: bool, prefix: str) -> dict[str, Any]:
    return {
        "server": {"log_level": "warning"},
        "models": [model_entry("m", sim.base_url)],
        "auth": {
            "enabled": True,
            "fail_open": fail_open,
            "keys": [{"name": "k1", "key_env": "SY_TEST_KEY", "limits": {"rpm": RPM}}],
        },
        # Generous per-command timeout: on a loaded CI host a 0.25 s timeout made the
        # fail-open replica admit a few requests uncounted, which is not what this file tests.
        "state": {"redis_url": redis_url, "timeout_s": 2.0, "key_prefix": prefix},
    }


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[Callable[..., list[Replica]]]:
    """``replicas(sim, redis_url, fail_open=(True, False))`` starts one ``switchyard serve``
    per entry, all with the same key, secret and key prefix (one of this test's own), and
    waits until each is ready."""
    procs: list[subprocess.Popen[bytes]] = []
    key = new_key()
    env = clean_env(SWITCHYARD_KEY_SECRET="cluster-test-secret", SY_TEST_KEY=key)
    prefix = f"limits-{uuid.uuid4().hex[:12]}"

    def start(sim: Simulator, redis_url: str, fail_open: tuple[bool, ...]) -> list[Replica]:
        started = []
        for i, mode in enumerate(fail_open):
            path = tmp_path / f"gateway{i}.yaml"
            settings = config(sim, redis_url, mode, prefix)
            path.write_text(yaml.safe_dump(settings), encoding="utf-8")
            port = free_port()
            with open(tmp_path / f"gateway{i}.log", "wb") as log:
                proc = subprocess.Popen(
                    [script(), "serve", "--config", str(path), "--port", str(port)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                    start_new_session=True,
                )  # fmt: skip
            procs.append(proc)
            started.append(Replica(f"http://127.0.0.1:{port}", key, proc))
        for replica in started:  # started together, waited for together
            wait_for_http(f"{replica.url}/readyz", replica.proc)
        return started

    yield start
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


async def burst(replicas: list[Replica], total: int) -> tuple[list[tuple[int, Any]], float]:
    """``total`` concurrent requests, split evenly over the replicas: ([(status, headers)],
    seconds from the first request sent to the last answer)."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(replica: Replica) -> tuple[int, Any]:
            async with session.post(
                f"{replica.url}/v1/chat/completions",
                json=BODY,
                headers={"authorization": f"Bearer {replica.key}"},
                timeout=aiohttp.ClientTimeout(total=30),
            ) as resp:
                await resp.read()
                return resp.status, resp.headers

        started = time.monotonic()
        answers = await asyncio.gather(*(one(replicas[i % len(replicas)]) for i in range(total)))
        return answers, time.monotonic() - started


@pytest.fixture(params=["redis", "redis-cluster"])
def shared_url(request: pytest.FixtureRequest) -> str:
    """A private redis-server, or the shared 3-master Redis Cluster."""
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return server.url
    cluster: RedisClusterSet = request.getfixturevalue("redis_cluster")
    return cluster.url


def test_two_gateways_sharing_redis_admit_exactly_the_rpm_limit_of_a_burst(
    simulator: Callable[..., Simulator],
    shared_url: str,
    replicas: Callable[..., list[Replica]],
) -> None:
    sim = simulator("m")
    gateways = replicas(sim, shared_url, fail_open=(True, False))

    answers, took_s = asyncio.run(burst(gateways, 2 * RPM))

    statuses = [status for status, _ in answers]
    assert set(statuses) <= {200, 429}, statuses
    ok = statuses.count(200)
    # Exactly RPM fit in the full bucket; while the burst lasts, GCRA refills one request
    # every INTERVAL_S, so a slow machine may have admitted that many more (and no others).
    refill = math.floor(took_s / INTERVAL_S)
    assert RPM <= ok <= RPM + refill, f"{ok} admitted in {took_s:.2f}s (refill bound {refill})"
    assert statuses.count(429) == 2 * RPM - ok

    for status, headers in answers:
        if status == 200:  # the store decided (no fail-open admission): OpenAI's headers
            assert headers["x-ratelimit-limit-requests"] == str(RPM)
            assert 0 <= int(headers["x-ratelimit-remaining-requests"]) < RPM
            assert re.fullmatch(r"\d+(ms|s|m\d+s)", headers["x-ratelimit-reset-requests"])
        else:
            assert 1 <= int(headers["retry-after"]) <= math.ceil(INTERVAL_S)
    assert sim.metric("vllm:request_success_total") == ok  # refused requests never went out


def test_with_redis_down_fail_open_admits_fail_closed_answers_503_and_both_recover(
    simulator: Callable[..., Simulator],
    redis_server: RedisServer,
    replicas: Callable[..., list[Replica]],
) -> None:
    sim = simulator("m")
    fail_open, fail_closed = replicas(sim, redis_server.url, fail_open=(True, False))
    for gateway in (fail_open, fail_closed):
        assert "x-ratelimit-remaining-requests" in gateway.post().headers

    redis_server.stop()
    admitted = fail_open.post()
    assert admitted.status_code == 200, admitted.text
    assert "x-ratelimit-remaining-requests" not in admitted.headers  # no limit was checked
    refused = fail_closed.post()
    assert refused.status_code == 503
    assert refused.json() == {
        "error": {
            "message": "rate limits cannot be checked (state store down); try again",
            "type": "service_unavailable",
            "param": None,
            "code": "state_store_unavailable",
        }
    }

    redis_server.start()  # same port, empty
    first, second = fail_open.post(), fail_closed.post()
    assert (first.status_code, second.status_code) == (200, 200), second.text
    assert first.headers["x-ratelimit-remaining-requests"] == str(RPM - 1)  # a fresh bucket
    assert second.headers["x-ratelimit-remaining-requests"] == str(RPM - 2)  # the same one
