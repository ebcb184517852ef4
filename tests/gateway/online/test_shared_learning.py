"""Two ``switchyard serve`` processes on one real Redis (one server, or a 3-master Redis
Cluster) learn together.

Requests are routed by replica A, their feedback is given to replica B (which never saw the
decisions), and both replicas' bandits end up holding every observation; feedback is idempotent
across replicas; ``switchyard outcomes export`` reads every record and feedback back."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
import yaml

from tests.support.gateways import Simulator
from tests.support.redis import RedisServer
from tests.support.redis_topologies import RedisClusterSet
from tests.support.routed import CANDIDATES, eventually, feedback, metric, route, routed_settings
from tests.support.script import clean_env, script, wait_for_http
from tests.support.servers import free_port


@pytest.fixture
def replicas(
    tmp_path: Path, simulator: Callable[..., Simulator], embedder_cache: Path
) -> Iterator[Callable[..., list[str]]]:
    """``replicas(redis_url, n, key_prefix=...)``: n gateway processes sharing one Redis;
    their base URLs."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(redis_url: str, n: int, key_prefix: str = "switchyard") -> list[str]:
        urls = {name: simulator(name).base_url for name, _, _ in CANDIDATES}
        config = routed_settings(urls, embedder_cache, None, refresh_s=0.2)
        state = {"redis_url": redis_url, "timeout_s": 2.0, "key_prefix": key_prefix}
        config |= {"state": state}
        config |= {"server": {"log_level": "warning"}}
        path = tmp_path / "gateway.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        started = []
        for i in range(n):
            port = free_port()
            with open(tmp_path / f"gateway{i}.log", "wb") as log:
                proc = subprocess.Popen(
                    [script(), "serve", "--config", str(path), "--port", str(port)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env=clean_env(), start_new_session=True,
                )  # fmt: skip
            procs.append(proc)
            started.append((f"http://127.0.0.1:{port}", proc))
        for url, proc in started:
            wait_for_http(f"{url}/readyz", proc, timeout=60)
        return [url for url, _ in started]

    yield start
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def scored(url: str, decision: str, score: float) -> bool:
    return feedback(url, decision, score).status_code == 200


@pytest.fixture(params=["redis", "redis-cluster"])
def shared(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(URL, key prefix): a private redis-server, or the shared 3-master Redis Cluster under
    a prefix of this test's own."""
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return server.url, "switchyard"
    cluster: RedisClusterSet = request.getfixturevalue("redis_cluster")
    return cluster.url, f"learn-{uuid.uuid4().hex[:12]}"


def test_two_replicas_share_feedback_and_bandit_statistics_through_redis(
    shared: tuple[str, str], replicas: Callable[..., list[str]], tmp_path: Path
) -> None:
    redis_url, prefix = shared
    a, b = replicas(redis_url, 2, key_prefix=prefix)
    decisions = [route(a)[1] for _ in range(6)]
    rewards = {}
    for i, decision in enumerate(decisions):
        # B never saw these decisions: it reads them from Redis (A writes them off the hot path).
        eventually(partial(scored, b, decision, 0.5), what="the decision reaches Redis")
        rewards[decision] = feedback(b, decision, 0.5).json()["reward"]
        if i == 0:  # the first score wins on every replica, and is learned from once
            assert feedback(a, decision, 1.0).json()["reward"] == rewards[decision]

    def learned(url: str) -> float:
        return metric(url, "switchyard_bandit_observations", router="smart")

    eventually(lambda: learned(a) == learned(b) == len(decisions), what="both hold all six")
    assert feedback(a, "f" * 32, 1.0).status_code == 404

    out = tmp_path / "outcomes.jsonl"
    done = subprocess.run(
        [script(), "outcomes", "export", "--redis-url", redis_url, "--key-prefix", prefix,
         "--out", str(out)],
        capture_output=True, text=True, env=clean_env(), timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    outcomes = {e["decision_id"]: e for e in lines if e["kind"] == "outcome"}
    scores = {e["decision_id"]: e for e in lines if e["kind"] == "feedback"}
    assert set(outcomes) == set(decisions) == set(scores)
    record = outcomes[decisions[0]]
    assert record["router"] == "smart" and record["status"] == "200"
    assert set(record["candidates"]) == {name for name, _, _ in CANDIDATES}
    assert record["prompt_tokens"] > 0 and record["latency_s"] > 0
    assert scores[decisions[0]]["reward"] == rewards[decisions[0]]
