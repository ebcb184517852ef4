"""The tenancy store reports its own health: ``switchyard_state_store_up{store="tenancy"}`` is
1 while Redis answers, even on a gateway without routers, and 0 while it is down. An outage
is logged once when it starts and once when it ends, however many requests pass meanwhile,
and the requests admitted unchecked are counted."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from switchyard.gateway.tenancy.keys import new_key
from tests.support.gateways import Gateway, Simulator, model_entry
from tests.support.redis import RedisServer

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def eventually(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        time.sleep(0.05)


def scraped_up(gw: Gateway, store: str) -> float | None:
    """``switchyard_state_store_up{store}`` as a scrape of /metrics reads it (None: absent)."""
    gw.client.get("/metrics")  # a scrape also probes an idle store, for the next one
    for line in gw.client.get("/metrics").text.splitlines():
        if line.startswith(f'switchyard_state_store_up{{store="{store}"}}'):
            return float(line.split()[-1])
    return None


def start(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    fail_open: bool,
) -> tuple[Gateway, str]:
    """A gateway without routers on Redis; a key with an rpm limit."""
    key = new_key()
    monkeypatch.setenv("SWITCHYARD_KEY_SECRET", "health-secret")
    monkeypatch.setenv("TEST_KEY_A", key)
    auth = {
        "enabled": True,
        "fail_open": fail_open,
        "keys": [{"name": "a", "key_env": "TEST_KEY_A", "limits": {"rpm": 100_000}}],
    }
    state = {"redis_url": redis_url, "timeout_s": 0.5}
    sim = simulator("m")
    return gateway([model_entry("m", sim.base_url)], auth=auth, state=state), key


@pytest.fixture
def limited(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Gateway, str]:
    """Failing open."""
    return start(simulator, gateway, redis_server.url, monkeypatch, fail_open=True)


@pytest.fixture
def strict(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Gateway, str]:
    """Failing closed (503 while the store is down)."""
    return start(simulator, gateway, redis_server.url, monkeypatch, fail_open=False)


def burst(gw: Gateway, key: str, n: int) -> list[int]:
    """Statuses of ``n`` requests sent at once (each needs its own pooled Redis connection)."""

    def one(_: int) -> int:
        with httpx.Client(base_url=gw.url, timeout=10) as client:
            return client.post("/v1/chat/completions", json=BODY, headers=_auth(key)).status_code

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_the_tenancy_store_reports_up_while_redis_answers_without_any_router(
    limited: tuple[Gateway, str],
) -> None:
    gw, key = limited
    assert scraped_up(gw, "tenancy") == 1
    response = gw.client.post("/v1/chat/completions", json=BODY, headers=_auth(key))
    assert response.status_code == 200
    assert scraped_up(gw, "tenancy") == 1
    assert scraped_up(gw, "routing") is None  # no router: no routing state store


def test_a_redis_outage_is_logged_once_each_way_and_unchecked_admissions_are_counted(
    limited: tuple[Gateway, str],
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="switchyard.tenancy")
    gw, key = limited
    assert gw.client.post("/v1/chat/completions", json=BODY, headers=_auth(key)).is_success
    redis_server.stop()
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        for _ in range(30):
            reply = client.post("/v1/chat/completions", json=BODY, headers=_auth(key))
            assert reply.status_code == 200  # fail open
    assert gw.metric("switchyard_admitted_without_limits_total") == 30
    eventually(lambda: scraped_up(gw, "tenancy") == 0, "tenancy store marked down")

    redis_server.start()
    eventually(lambda: scraped_up(gw, "tenancy") == 1, "tenancy store marked up (idle)")
    for _ in range(5):
        assert gw.client.post("/v1/chat/completions", json=BODY, headers=_auth(key)).is_success
    assert gw.metric("switchyard_admitted_without_limits_total") == 30
    said = [r.getMessage() for r in caplog.records if r.name == "switchyard.tenancy"]
    assert sum("admitting without limits" in m for m in said) == 1, said
    assert sum("Redis unreachable" in m for m in said) == 1, said
    assert sum("Redis is back" in m for m in said) == 1, said
    assert sum("enforced again" in m for m in said) == 1, said


def test_after_a_redis_restart_no_request_fails_on_a_connection_pooled_before_it(
    strict: tuple[Gateway, str], redis_server: RedisServer
) -> None:
    gw, key = strict
    for _ in range(3):  # several connections in the tenancy store's pool
        assert burst(gw, key, 16) == [200] * 16
    redis_server.stop()
    redis_server.start()  # while the pooled connections sat idle
    first = [gw.client.post("/v1/chat/completions", json=BODY, headers=_auth(key)).status_code
             for _ in range(3)]  # fmt: skip
    assert first[-1] == 200 and first.count(503) <= 1, first  # the first may meet a dead one
    for _ in range(3):
        assert burst(gw, key, 16) == [200] * 16


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}
