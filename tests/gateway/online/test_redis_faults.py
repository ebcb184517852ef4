"""Redis going away and coming back empty: routing goes on with the last bandit statistics,
outcome records are buffered and reach the stream afterwards, the statistics are re-seeded.

Real ``redis-server`` on a free port (killed and restarted by the test), real sockets."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.gateways import Gateway, Simulator
from tests.support.redis import RedisServer
from tests.support.routed import (
    CANDIDATES,
    decisions_in,
    eventually,
    feedback,
    route,
    routed_settings,
)


@pytest.fixture
def shared_gateway(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    embedder_cache: Path,
) -> Callable[..., Gateway]:
    def start(redis_url: str, **routing: Any) -> Gateway:
        urls = {name: simulator(name).base_url for name, _, _ in CANDIDATES}
        config = routed_settings(urls, embedder_cache, None, refresh_s=0.1, **routing)
        return gateway(**config, state={"redis_url": redis_url, "timeout_s": 0.5})

    return start


def _bandit_step(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        keys: Any = client.keys("{switchyard}:bandit:*")
        return max((int(client.hget(k, "step") or 0) for k in keys), default=0)
    finally:
        client.close()


def test_records_buffered_while_redis_is_down_reach_the_stream_after_a_restart(
    shared_gateway: Callable[..., Gateway],
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="switchyard.state")
    gw = shared_gateway(redis_server.url)
    before = {route(gw.url)[1] for _ in range(3)}
    eventually(lambda: before <= decisions_in(redis_server.url), what="records in the stream")
    assert feedback(gw.url, next(iter(before)), 1.0).status_code == 200
    shared = gw.server.app.state.routing.shared
    eventually(lambda: shared.view()["last_read_step"].get("smart") == 1, what="read back")

    redis_server.stop()
    during = [route(gw.url) for _ in range(12)]  # routed with the last statistics, all 200
    assert feedback(gw.url, during[0][1], 0.0).status_code == 200  # decided here: known here
    eventually(
        lambda: gw.metric("switchyard_state_store_up", store="routing") == 0,
        what="store marked down",
    )
    assert gw.metric("switchyard_state_store_errors_total") >= 1
    assert gw.metric("switchyard_outcomes_buffered") >= 12

    redis_server.start()  # same port, empty: it had no persistence
    ids = {decision for _, decision in during}
    eventually(lambda: ids <= decisions_in(redis_server.url), what="buffered records flushed")
    eventually(
        lambda: gw.metric("switchyard_state_store_up", store="routing") == 1, what="store marked up"
    )
    assert gw.metric("switchyard_outcomes_dropped_total") == 0
    assert gw.metric("switchyard_outcomes_buffered") == 0
    # The statistics went with the old Redis: the replica seeded them from its own copy (two
    # observations), and a new one folds on top.
    eventually(lambda: _bandit_step(redis_server.url) >= 2, what="statistics re-seeded")
    assert gw.metric("switchyard_bandit_observations", router="smart") >= 2
    said = [r.getMessage() for r in caplog.records if r.name == "switchyard.state"]
    assert sum("Redis unreachable" in m for m in said) == 1  # once, not once per failure
    assert any("Redis is back" in m for m in said)
    assert any("seeded them" in m for m in said)


def test_feedback_for_a_decision_unknown_here_is_503_while_redis_is_down(
    shared_gateway: Callable[..., Gateway], redis_server: RedisServer
) -> None:
    gw = shared_gateway(redis_server.url)
    redis_server.stop()
    resp = feedback(gw.url, "0" * 32, 1.0)
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "state_store_unavailable"
    redis_server.start()
    assert feedback(gw.url, "0" * 32, 1.0).status_code == 404


def test_a_full_buffer_drops_the_oldest_records_and_counts_them(
    shared_gateway: Callable[..., Gateway], redis_server: RedisServer
) -> None:
    gw = shared_gateway(redis_server.url, buffer=4)
    redis_server.stop()
    sent = [route(gw.url)[1] for _ in range(7)]
    eventually(lambda: gw.metric("switchyard_outcomes_dropped_total") == 3, what="3 dropped")
    redis_server.start()
    eventually(lambda: set(sent[3:]) <= decisions_in(redis_server.url), what="newest 4 kept")
    assert not set(sent[:3]) & decisions_in(redis_server.url)
