"""Endpoint pools: the replicas of one model, round robin over those whose breaker allows
traffic, and ``dispatch`` — one request tried on up to N endpoints before the first byte."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from backends.breaker import BreakerState, CircuitBreaker
from backends.client import OpenAICompatBackend, UpstreamRequest, UpstreamResponse
from backends.errors import (
    NoHealthyEndpointError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamStatusError,
)

log = logging.getLogger("switchyard.backends")

# Worth trying elsewhere: the request never started, or the backend refused it.
RETRYABLE = (UpstreamConnectError, UpstreamStatusError)


class Endpoint:
    """One replica: its client, breaker and the gateway's own count of requests in flight."""

    __slots__ = ("backend", "breaker", "in_flight", "name")

    def __init__(self, backend: OpenAICompatBackend, breaker: CircuitBreaker) -> None:
        self.backend = backend
        self.breaker = breaker
        self.name = backend.base_url
        self.in_flight = 0


class EndpointPool:
    """The endpoints of one model, picked round robin among those whose breaker allows it."""

    def __init__(self, model: str, endpoints: Sequence[Endpoint]) -> None:
        if not endpoints:
            raise ValueError(f"model {model!r} needs at least one endpoint")
        self.model = model
        self.endpoints = tuple(endpoints)
        self._turn = itertools.count()

    def pick(self, exclude: Sequence[Endpoint] = ()) -> Endpoint | None:
        n = len(self.endpoints)
        start = next(self._turn)
        for i in range(n):
            endpoint = self.endpoints[(start + i) % n]
            if endpoint not in exclude and endpoint.breaker.allows():
                return endpoint
        return None

    def healthy(self) -> bool:
        return any(ep.breaker.state is not BreakerState.open for ep in self.endpoints)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3
    budget_s: float = 15.0


class DispatchObserver(Protocol):
    """Told about failed attempts and retries (the gateway counts them in its metrics)."""

    def upstream_error(self, model: str, endpoint: str, error: UpstreamError) -> None: ...

    def retry(self, model: str, endpoint: str) -> None: ...


class Attempt:
    """A request that reached an endpoint; ``finish`` once its response is done with."""

    __slots__ = ("_open", "endpoint", "response")

    def __init__(self, endpoint: Endpoint, response: UpstreamResponse) -> None:
        self.endpoint = endpoint
        self.response = response
        self._open = True

    def finish(self, ok: bool = True) -> None:
        if not self._open:
            return
        self._open = False
        self.endpoint.in_flight -= 1
        if not ok:
            self.endpoint.breaker.on_failure()


async def dispatch(
    pool: EndpointPool,
    request: UpstreamRequest,
    policy: RetryPolicy,
    observer: DispatchObserver | None = None,
) -> Attempt:
    """Send ``request`` to an endpoint of ``pool``, moving to another on retryable errors.

    Bounded by ``policy.max_attempts`` and ``policy.budget_s``; raises the last error, or
    ``NoHealthyEndpointError`` when no endpoint may take traffic.
    """
    tried: list[Endpoint] = []
    deadline = time.monotonic() + policy.budget_s
    last: UpstreamError | None = None
    while len(tried) < policy.max_attempts:
        endpoint = pool.pick(exclude=tried)
        if endpoint is None:
            break
        if tried and observer is not None:
            observer.retry(pool.model, endpoint.name)
        tried.append(endpoint)
        endpoint.breaker.on_send()
        endpoint.in_flight += 1
        try:
            response = await endpoint.backend.send(request)
        except UpstreamError as err:
            _failed(pool, endpoint, request, err, observer)
            last = err
            if not isinstance(err, RETRYABLE) or time.monotonic() >= deadline:
                raise
            continue
        except BaseException:
            # Cancelled (the client went away): the endpoint is not to blame.
            endpoint.in_flight -= 1
            endpoint.breaker.on_abandon()
            raise
        if endpoint.breaker.state is BreakerState.half_open:
            log.info("model %s: %s is back in service", pool.model, endpoint.name)
        endpoint.breaker.on_success()
        return Attempt(endpoint, response)
    if last is not None:
        raise last
    raise NoHealthyEndpointError(
        f"no endpoint of model {pool.model!r} can take traffic now "
        "(circuit breakers open, or a recovery probe is under way)"
    )


def _failed(
    pool: EndpointPool,
    endpoint: Endpoint,
    request: UpstreamRequest,
    err: UpstreamError,
    observer: DispatchObserver | None,
) -> None:
    """Book a failed attempt: in-flight count, breaker verdict, metrics and a log line."""
    endpoint.in_flight -= 1
    was_open = endpoint.breaker.state is BreakerState.open
    if isinstance(err, UpstreamStatusError) and err.upstream_status == 429:
        endpoint.breaker.on_abandon()  # busy, not broken: no verdict on its health
    else:
        endpoint.breaker.on_failure()
    if observer is not None:
        observer.upstream_error(pool.model, endpoint.name, err)
    log.warning(
        "model %s: %s failed (request %s): %s",
        pool.model, endpoint.name, request.request_id or "-", err.message,
    )  # fmt: skip
    if not was_open and endpoint.breaker.state is BreakerState.open:
        log.warning(
            "model %s: %s ejected; circuit open for %gs",
            pool.model, endpoint.name, endpoint.breaker.cooldown_s,
        )  # fmt: skip
