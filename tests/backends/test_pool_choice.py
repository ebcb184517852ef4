"""Replica choice inside a pool, without a network: engine snapshots, stale ones, in-flight
counts, exclusions, Retry-After pauses, per-endpoint retry budgets and the three balancers."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from switchyard.backends.breaker import CircuitBreaker
from switchyard.backends.client import OpenAICompatBackend, Timeouts
from switchyard.backends.endpoint import RetryBudget, parse_retry_after
from switchyard.backends.engine_state import EngineSnapshot
from switchyard.backends.pool import Endpoint, EndpointPool
from switchyard.backends.replica import ReplicaPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def endpoint(name: str, clock: Clock, **extra: Any) -> Endpoint:
    session: Any = None  # pick() never sends, so no HTTP session is needed
    backend = OpenAICompatBackend(f"http://{name}/v1", session, Timeouts())
    return Endpoint(backend, CircuitBreaker(1, 60, clock=clock), clock=clock, **extra)


def pool_of(
    names: str | tuple[str, ...],
    snaps: dict[str, EngineSnapshot] | None = None,
    balancer: str = "switchyard",
    **extra: Any,
) -> tuple[EndpointPool, dict[str, Endpoint], Clock]:
    clock = Clock()
    eps = {n: endpoint(n, clock, **extra) for n in names}
    known = {f"http://{n}/v1": s for n, s in (snaps or {}).items()}
    pool = EndpointPool(
        "m",
        list(eps.values()),
        balancer=balancer,
        snapshots=known.get,
        policy=ReplicaPolicy(max_snapshot_age_s=3.0),
        rng=random.Random(7),
        clock=clock,
    )
    return pool, eps, clock


def shares(pool: EndpointPool, picks: int) -> Counter[str]:
    """Where ``picks`` requests go when each finishes before the next (no in-flight build-up)."""
    out: Counter[str] = Counter()
    for _ in range(picks):
        ep = pool.pick()
        assert ep is not None
        out[ep.name.split("/")[2]] += 1
    return out


def snap(running: int, waiting: int = 0, scraped_at: float = 1000.0) -> EngineSnapshot:
    return EngineSnapshot(waiting=waiting, running=running, scraped_at=scraped_at)


def test_a_replica_whose_engine_queues_gets_almost_no_traffic() -> None:
    snaps = {"a": snap(0), "b": snap(4), "slow": snap(32, waiting=20)}
    pool, _, _ = pool_of(("a", "b", "slow"), snaps)
    got = shares(pool, 300)
    # Two of three are sampled per request, and "slow" is the worse one of any pair.
    assert got["slow"] == 0
    assert got["a"] > got["b"] > 0


def test_stale_snapshots_fall_back_to_the_gateways_own_in_flight_counts() -> None:
    # The snapshots (10 s old, past max_snapshot_age_s) say "a" is idle and "b" is busy;
    # this gateway's own counts say the opposite, and they win.
    snaps = {"a": snap(0, scraped_at=990.0), "b": snap(200, waiting=50, scraped_at=990.0)}
    pool, eps, _ = pool_of(("a", "b"), snaps)
    eps["a"].in_flight = 40
    assert shares(pool, 50) == {"b": 50}
    assert pool.expected_delay() == 0.0  # "b" as the best replica: idle by in-flight counts


def test_requests_sent_since_the_snapshot_count_as_load_until_the_next_one() -> None:
    clock = Clock()
    eps = [endpoint(n, clock, max_num_seqs=4) for n in "ab"]
    latest = {ep.name: snap(0) for ep in eps}
    pool = EndpointPool("m", eps, balancer="switchyard", snapshots=latest.get, clock=clock)
    for _ in range(6):  # none finishes: each one sent counts against its endpoint
        ep = pool.pick()
        assert ep is not None
        ep.on_send(retry=False)
    assert eps[0].in_flight == eps[1].in_flight == 3
    assert pool.views()[0].sent_since_snapshot == 3
    latest[eps[0].name] = snap(3, scraped_at=1000.5)  # a newer scrape already holds them
    assert pool.views()[0].sent_since_snapshot == 0


def test_excluded_paused_and_broken_endpoints_are_not_eligible() -> None:
    for balancer in ("switchyard", "least_in_flight", "round_robin"):
        pool, eps, clock = pool_of(("a", "b", "c"), balancer=balancer)
        eps["a"].pause(2.0)  # the server said Retry-After: 2
        eps["b"].breaker.on_failure()
        assert {pool.pick() for _ in range(10)} == {eps["c"]}
        assert pool.pick(exclude=[eps["c"]]) is None
        assert pool.paused_for() == pytest.approx(2.0)
        clock.now += 2.0
        assert pool.pick(exclude=[eps["c"]]) is eps["a"]


def test_least_in_flight_picks_the_endpoint_with_the_fewest_requests() -> None:
    pool, eps, _ = pool_of(("a", "b", "c"), balancer="least_in_flight")
    eps["a"].in_flight, eps["b"].in_flight, eps["c"].in_flight = 3, 1, 2
    assert pool.pick() is eps["b"]


def test_a_retry_needs_the_endpoints_retry_budget() -> None:
    pool, eps, _ = pool_of(("a",), retry_budget=RetryBudget(ratio=0.5, reserve=1.0))
    a = eps["a"]
    assert pool.pick(retry=True) is a
    a.on_send(retry=True)  # spends the one token of the reserve
    assert pool.pick(retry=True) is None
    assert pool.pick() is a  # first attempts are never limited
    a.on_send(retry=False)
    a.on_send(retry=False)  # two first attempts deposit 2 x 0.5 tokens
    assert pool.pick(retry=True) is a


def test_retry_after_is_read_as_seconds_and_capped() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("86400") == 60.0
    for bad in (None, "", "soon", "-1", "nan", "Wed, 21 Oct 2015 07:28:00 GMT"):
        assert parse_retry_after(bad) is None


def test_weights_shift_traffic_and_zero_drains_an_endpoint() -> None:
    pool, eps, _ = pool_of(("a", "b", "c"), {n: snap(0) for n in "abc"})
    eps["c"].weight = 0.0
    eps["a"].weight = 3.0
    got = shares(pool, 400)
    assert got["c"] == 0
    assert got["a"] > got["b"]


def test_an_unknown_balancer_is_refused() -> None:
    with pytest.raises(ValueError, match="balancer"):
        pool_of(("a",), balancer="random")


def test_a_replica_whose_requests_take_longer_is_charged_more_for_the_same_queue() -> None:
    snaps = {"slow": snap(4, waiting=2), "quick": snap(4, waiting=2)}
    pool, eps, _ = pool_of(("slow", "quick"), snaps, max_num_seqs=4)
    for _ in range(20):  # learned from finished requests (EWMA)
        eps["slow"].observe_service(4.0)
        eps["quick"].observe_service(0.5)
    assert eps["slow"].service_s == pytest.approx(4.0)
    assert shares(pool, 20) == {"quick": 20}
    assert pool.expected_delay() == pytest.approx(0.5 * (3 / 4 + 0.5))
