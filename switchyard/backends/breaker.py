"""Circuit breaker per endpoint: closed → open after N consecutive failures → half-open
after a cooldown (one probe request) → closed on success, open again on failure."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum


class BreakerState(IntEnum):
    # Values are what the gateway exports as a gauge.
    closed = 0
    half_open = 1
    open = 2


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int = 5,
        cooldown_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._state = BreakerState.closed
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.open and self._clock() - self._opened_at >= self.cooldown_s:
            return BreakerState.half_open
        return self._state

    def allows(self) -> bool:
        """Whether a request may be sent now (a half-open breaker lets one probe through)."""
        if self._state is BreakerState.closed:  # the usual case, without the clock
            return True
        return self.state is BreakerState.half_open and not self._probe_in_flight

    def on_send(self) -> None:
        if self._state is not BreakerState.closed and self.state is BreakerState.half_open:
            self._probe_in_flight = True

    def on_success(self) -> None:
        self._failures = 0
        self._probe_in_flight = False
        self._state = BreakerState.closed

    def on_abandon(self) -> None:
        """A request was given up before any verdict (its client left): no failure is
        counted, but a half-open breaker may send a new probe instead of waiting forever."""
        self._probe_in_flight = False

    def on_failure(self) -> None:
        self._probe_in_flight = False
        if self.state is BreakerState.half_open:
            self._trip()
            return
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._trip()

    def _trip(self) -> None:
        self._state = BreakerState.open
        self._opened_at = self._clock()
        self._failures = 0
