"""``Endpoint``: one replica of a model as the pool sees it — its client, breaker, weight,
this gateway's in-flight count, what it sent since the last engine snapshot, how long its
requests hold a batch slot (learned: a slower GPU frees slots more slowly, which is what
makes a queue there cost more), its retry budget, and a pause asked for by the server's own
``Retry-After``.

The retry budget is a token bucket per endpoint (as Finagle's ``RetryBudget``): every first
attempt sent there deposits ``ratio`` tokens, every retry sent there withdraws one, and the
bucket holds at most ``reserve`` tokens (it starts full). So in steady state retries to an
endpoint stay under ``ratio`` of its requests, while a quiet endpoint can still take a few.
Without it, a fleet-wide hiccup turns every request into up to ``max_attempts`` requests on
the replicas still standing, just when they are the only ones left.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from switchyard.backends.breaker import CircuitBreaker
from switchyard.backends.client import OpenAICompatBackend
from switchyard.backends.engine_state import EngineSnapshot

__all__ = ["MAX_RETRY_AFTER_S", "Endpoint", "RetryBudget", "parse_retry_after"]

# An upstream asking for a longer pause is paused this long, then probed again.
MAX_RETRY_AFTER_S = 60.0


class RetryBudget:
    """Token bucket: first attempts deposit ``ratio``, a retry needs (and takes) one token."""

    __slots__ = ("_tokens", "ratio", "reserve")

    def __init__(self, ratio: float = 0.2, reserve: float = 10.0) -> None:
        if ratio < 0 or reserve < 0:
            raise ValueError("ratio and reserve must be >= 0")
        self.ratio = ratio
        self.reserve = reserve
        self._tokens = reserve

    @property
    def tokens(self) -> float:
        return self._tokens

    def on_request(self) -> None:
        self._tokens = min(self._tokens + self.ratio, self.reserve)

    def can_retry(self) -> bool:
        return self._tokens >= 1.0

    def on_retry(self) -> None:
        self._tokens = max(self._tokens - 1.0, 0.0)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header in delta-seconds form (HTTP dates: ``None``)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not seconds >= 0:  # also rejects NaN
        return None
    return min(seconds, MAX_RETRY_AFTER_S)


class Endpoint:
    """One replica: its client, breaker and the gateway's own view of its load."""

    __slots__ = (
        "_baseline",
        "_clock",
        "_paused_until",
        "_seen_scrape",
        "backend",
        "breaker",
        "in_flight",
        "max_num_seqs",
        "name",
        "origin",
        "prefill_s_per_token",
        "retry_budget",
        "service_s",
        "starting",
        "weight",
    )

    def __init__(
        self,
        backend: OpenAICompatBackend,
        breaker: CircuitBreaker,
        *,
        weight: float = 1.0,
        max_num_seqs: int | None = None,
        prefill_s_per_token: float | None = None,
        retry_budget: RetryBudget | None = None,
        clock: Callable[[], float] = time.monotonic,
        origin: object = None,
    ) -> None:
        self.backend = backend
        # What its owner built it from (the config entry); compared when the set changes, so
        # an endpoint that stays is kept with its counts. The pool never reads it.
        self.origin = origin
        self.breaker = breaker
        self.name = backend.base_url
        self.weight = weight
        self.max_num_seqs = max_num_seqs
        self.prefill_s_per_token = prefill_s_per_token  # from the config (the planner)
        self.retry_budget = retry_budget if retry_budget is not None else RetryBudget()
        self.in_flight = 0
        # Streams sent here whose first chunk has not come: each is a prefill still ahead of
        # the next request here (the slo balancer's prediction).
        self.starting = 0
        # Mean seconds a request holds a batch slot here (EWMA; None until one finished).
        self.service_s: float | None = None
        self._clock = clock
        self._paused_until = 0.0
        self._baseline = 0
        self._seen_scrape: float | None = None

    def pause(self, seconds: float) -> None:
        """Send nothing here for ``seconds`` (the server said ``Retry-After``)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def paused_for(self) -> float:
        """Seconds left of a ``Retry-After`` pause (0 when none)."""
        return max(self._paused_until - self._clock(), 0.0)

    def allows(self) -> bool:
        """Whether a request may be sent here now: breaker and ``Retry-After`` agree."""
        paused = self._paused_until and self._clock() < self._paused_until
        return not paused and self.breaker.allows()

    def sent_since(self, snapshot: EngineSnapshot | None) -> int:
        """Net change of this gateway's requests here since ``snapshot``: sent minus finished.

        A scrape is a second old on average while a request on a fast GPU may last less:
        counting the snapshot's ``running`` as still there would make the fastest replica
        look the busiest. The baseline is this gateway's in-flight count when the snapshot
        was first seen (within one request of the scrape itself under load)."""
        if snapshot is None:
            return 0
        if snapshot.scraped_at != self._seen_scrape:
            self._seen_scrape = snapshot.scraped_at
            self._baseline = self.in_flight
        return self.in_flight - self._baseline

    def observe_service(self, seconds: float) -> None:
        """A request finished here after holding a slot ``seconds`` (EWMA, weight 1/16)."""
        before = self.service_s
        self.service_s = seconds if before is None else before + (seconds - before) / 16

    def on_send(self, retry: bool) -> None:
        """A request leaves for this endpoint (``retry``: it failed elsewhere first)."""
        self.breaker.on_send()
        self.in_flight += 1
        if retry:
            self.retry_budget.on_retry()
        else:
            self.retry_budget.on_request()
