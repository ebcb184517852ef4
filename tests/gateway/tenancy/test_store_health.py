"""The tenancy store reports its own health: ``switchyard_state_store_up{store="tenancy"}`` is
1 while Redis answers, even on a gateway without routers, and 0 while it is down. An outage
is logged once when it starts and once when it ends, however many requests pass meanwhile,
and the requests admitted unchecked are counted."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import httpx
import pytest

from gateway.tenancy.keys import new_key
from tests.conftest import Gateway, Simulator, model_entry
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


@pytest.fixture
def limited(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Gateway, str]:
    """A gateway without routers on Redis, failing open; a key with an rpm limit."""
    key = new_key()
    monkeypatch.setenv("SWITCHYARD_KEY_SECRET", "health-secret")
    monkeypatch.setenv("TEST_KEY_A", key)
    auth = {
        "enabled": True,
        "fail_open": True,
        "keys": [{"name": "a", "key_env": "TEST_KEY_A", "limits": {"rpm": 10_000}}],
    }
    state = {"redis_url": redis_server.url, "timeout_s": 0.2}
    sim = simulator("m")
    return gateway([model_entry("m", sim.base_url)], auth=auth, state=state), key


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


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}
