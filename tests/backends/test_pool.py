"""Endpoint choice inside a pool: round robin among endpoints whose breaker allows traffic."""

from __future__ import annotations

from typing import Any

from switchyard.backends.breaker import CircuitBreaker
from switchyard.backends.client import OpenAICompatBackend, Timeouts
from switchyard.backends.pool import Endpoint, EndpointPool


def endpoint(url: str) -> Endpoint:
    session: Any = None  # pick() never sends, so no HTTP session is needed
    backend = OpenAICompatBackend(url, session, Timeouts())
    return Endpoint(backend, CircuitBreaker(failure_threshold=1, cooldown_s=60))


def test_round_robin_visits_every_endpoint_in_turn() -> None:
    eps = [endpoint(f"http://h{i}/v1") for i in range(3)]
    pool = EndpointPool("m", eps)
    picks = [pool.pick() for _ in range(6)]
    assert picks == eps + eps


def test_open_breakers_and_excluded_endpoints_are_skipped() -> None:
    a, b, c = (endpoint(f"http://{n}/v1") for n in "abc")
    pool = EndpointPool("m", [a, b, c])
    b.breaker.on_failure()
    assert {pool.pick() for _ in range(6)} == {a, c}
    assert pool.pick(exclude=[a, c]) is None
    assert pool.healthy()
    a.breaker.on_failure()
    c.breaker.on_failure()
    assert pool.pick() is None
    assert not pool.healthy()
