"""Circuit breaker state machine, driven by a fake clock."""

from __future__ import annotations

from switchyard.backends.breaker import BreakerState, CircuitBreaker


def state(breaker: CircuitBreaker) -> BreakerState:
    """Read afresh each time (the state moves with the clock, which mypy cannot see)."""
    return breaker.state


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=10, clock=Clock())
    breaker.on_failure()
    breaker.on_failure()
    breaker.on_success()  # resets the run of failures
    breaker.on_failure()
    breaker.on_failure()
    assert state(breaker) is BreakerState.closed
    breaker.on_failure()
    assert state(breaker) is BreakerState.open
    assert not breaker.allows()


def test_half_open_after_cooldown_lets_one_probe_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=10, clock=clock)
    breaker.on_failure()
    clock.now = 9.9
    assert state(breaker) is BreakerState.open
    clock.now = 10.0
    assert state(breaker) is BreakerState.half_open
    assert breaker.allows()
    breaker.on_send()
    assert not breaker.allows()  # the probe is out; everyone else waits


def test_successful_probe_closes_and_failed_probe_reopens() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=5, clock=clock)
    breaker.on_failure()
    clock.now = 5
    breaker.on_send()
    breaker.on_failure()
    assert state(breaker) is BreakerState.open
    clock.now = 9.9
    assert state(breaker) is BreakerState.open  # cooldown restarted at the failed probe
    clock.now = 10
    breaker.on_send()
    breaker.on_success()
    assert state(breaker) is BreakerState.closed
    assert breaker.allows()


def test_an_abandoned_probe_frees_the_slot_without_a_verdict() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=1, clock=clock)
    breaker.on_failure()
    clock.now = 1
    breaker.on_send()
    assert not breaker.allows()
    breaker.on_abandon()  # the probe's client left: neither success nor failure
    assert state(breaker) is BreakerState.half_open
    assert breaker.allows()
