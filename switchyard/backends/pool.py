"""Endpoint pools: the replicas of one model, the choice of one for the next request, and
``dispatch`` — one request tried on up to N endpoints before the first byte.

Four balancers (``EndpointPool(balancer=...)``): ``switchyard`` (``switchyard.backends.replica``:
expected delay from the latest fresh engine snapshot plus this gateway's own counts and
each endpoint's learned time per request, power of d choices, optional prefix affinity,
weights, and with a ``PrefixIndex`` the prefill each replica's prefix cache would save),
``slo`` (``switchyard.backends.slo``: the replica likeliest to meet a TTFT target, from the
same inputs and the uncached prefill; sheds with 429 when none is likely to),
``least_in_flight`` and ``round_robin``.
The endpoint set may change under discovery (``replace``) and may be empty for a while (a
model whose pods are not found yet): ``pick`` then finds none.
All skip endpoints already tried for the request, whose breaker is open, or that asked for a
pause with ``Retry-After``; a retry also needs the endpoint's retry budget.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from switchyard.backends.adapters import AdapterRoute, choose_adapter_replica
from switchyard.backends.breaker import BreakerState
from switchyard.backends.client import UpstreamRequest, UpstreamResponse
from switchyard.backends.endpoint import Endpoint, RetryBudget, parse_retry_after
from switchyard.backends.engine_state import EngineSnapshot
from switchyard.backends.errors import (
    NoHealthyEndpointError,
    OverloadedError,
    SwitchyardError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamStatusError,
)
from switchyard.backends.prefix_blocks import PromptBlocks
from switchyard.backends.prefix_index import PrefixIndex
from switchyard.backends.replica import (
    DEFAULT_POLICY,
    EndpointView,
    PrefixCosts,
    ReplicaPolicy,
    choose_replica,
)
from switchyard.backends.replica import expected_delay as view_delay
from switchyard.backends.slo import (
    DEFAULT_SLO,
    SloChoice,
    SloPolicy,
    SloShedError,
    choose_for_slo,
)

__all__ = [
    "BALANCERS",
    "Attempt",
    "AttemptTracer",
    "DispatchObserver",
    "Endpoint",
    "EndpointPool",
    "RetryBudget",
    "RetryPolicy",
    "dispatch",
]

log = logging.getLogger("switchyard.backends")

# Worth trying elsewhere: the request never started, or the backend refused it.
RETRYABLE = (UpstreamConnectError, UpstreamStatusError)
BALANCERS = ("switchyard", "least_in_flight", "round_robin", "slo")
# The slo balancer scores at most this many replicas per pick, chosen at random (power of d
# choices): the pick's cost stops growing with the pool (docs/BENCHMARKS.md section 27).
SLO_SAMPLE = 8
Snapshots = Callable[[str], EngineSnapshot | None]


def _no_snapshot(name: str) -> EngineSnapshot | None:
    return None


class EndpointPool:
    """The endpoints of one model and the balancer that picks among them."""

    def __init__(
        self,
        model: str,
        endpoints: Sequence[Endpoint],
        *,
        balancer: str = "round_robin",
        snapshots: Snapshots = _no_snapshot,
        policy: ReplicaPolicy = DEFAULT_POLICY,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        prefix_index: PrefixIndex | None = None,
        adapter: AdapterRoute | None = None,
        slo: SloPolicy = DEFAULT_SLO,
    ) -> None:
        if balancer not in BALANCERS:
            raise ValueError(f"balancer must be one of {BALANCERS}, got {balancer!r}")
        self.model = model
        self.endpoints = tuple(endpoints)
        self.balancer = balancer
        self.policy = policy
        self._snapshots = snapshots
        self._rng = rng if rng is not None else random.Random()
        self._clock = clock
        self._turn = itertools.count()
        # Shared by the gateway's pools (one memory bound); switchyard and slo balancers.
        self.prefix_index = prefix_index if balancer in ("switchyard", "slo") else None
        self.slo = slo
        self.slo_shed = 0  # requests the slo balancer refused (switchyard_slo_shed_total)
        # Per endpoint name, the mean predicted prefill of the requests sent there (EWMA).
        self._slo_prefill: dict[str, float] = {}
        # A LoRA adapter's pool (switchyard.backends.adapters): the base model's endpoints.
        self.adapter = adapter

    def replace(self, endpoints: Sequence[Endpoint]) -> None:
        """Serve ``endpoints`` from now on (discovery found a new set of pods). One
        assignment, so a pick sees the old set or the new one; an endpoint left out drains:
        it gets no new request, and the attempts holding it finish there as they would."""
        self.endpoints = tuple(endpoints)

    @property
    def scores_prefixes(self) -> bool:
        """Whether a request's prompt blocks would change the choice (worth hashing them)."""
        return self.prefix_index is not None and len(self.endpoints) > 1

    def pick(
        self,
        exclude: Sequence[Endpoint] = (),
        affinity: int | None = None,
        retry: bool = False,
        prefix: PromptBlocks | None = None,
        ttft_s: float | None = None,
    ) -> Endpoint | None:
        """The endpoint for the next attempt, or ``None`` when none may take it (``ttft_s``:
        the request's own TTFT target, which the slo balancer uses instead of its own)."""
        sheds = self.balancer == "slo" and self.adapter is None  # one replica may shed, too
        if len(self.endpoints) == 1 and not sheds:  # no choice to make (affinity has one home)
            only = self.endpoints[0]
            return only if _may_take(only, exclude, retry) else None
        ok = [_may_take(ep, exclude, retry) for ep in self.endpoints]
        if not any(ok):
            return None
        if sheds:
            # a target of 0 can only be missed: it sheds, it does not fail the policy's check
            slo = self.slo if ttft_s is None else replace(self.slo, ttft_s=max(ttft_s, 1e-3))
            return self._slo_pick(ok, retry, prefix, slo)
        if self.balancer == "round_robin":
            n = len(self.endpoints)
            start = next(self._turn)
            return next(self.endpoints[(start + i) % n] for i in range(n) if ok[(start + i) % n])
        if self.balancer == "least_in_flight":
            loads = [ep.in_flight for ep, good in zip(self.endpoints, ok, strict=True) if good]
            least = [
                ep for ep, good in zip(self.endpoints, ok, strict=True)
                if good and ep.in_flight == min(loads)
            ]  # fmt: skip
            return least[0] if len(least) == 1 else self._rng.choice(least)
        views = self.views(ok)
        if self.adapter is not None:
            pick = choose_adapter_replica(
                views, self.adapter, now=self._clock(), policy=self.policy
            )
            return None if pick is None else self.endpoints[pick.index]
        index = self.prefix_index if prefix is not None else None
        costs = None
        if index is not None and prefix is not None:
            costs = self._prefix_costs(index, prefix, ok)
        choice = choose_replica(
            views, self._rng, now=self._clock(), policy=self.policy, affinity=affinity,
            prefix=costs,
        )  # fmt: skip
        if choice is None:
            return None
        if index is not None and prefix is not None:
            self._remember(index, prefix, views[choice.index])
        return self.endpoints[choice.index]

    def _slo_pick(
        self, ok: Sequence[bool], retry: bool, prefix: PromptBlocks | None, slo: SloPolicy
    ) -> Endpoint:
        """``switchyard.backends.slo``: the replica likeliest to meet the TTFT target; raises
        ``SloShedError`` for a first attempt that none is likely to start in time. Beyond
        ``SLO_SAMPLE`` replicas it scores a random sample of them (power of d choices) and
        all of them only before shedding."""
        at = [i for i, good in enumerate(ok) if good]
        if len(at) > SLO_SAMPLE:
            choice = self._slo_choice(sorted(self._rng.sample(at, SLO_SAMPLE)), prefix, slo)
            if choice[1].shed:
                choice = self._slo_choice(at, prefix, slo)
        else:
            choice = self._slo_choice(at, prefix, slo)
        index, best = choice
        if best.shed and not retry:
            self.slo_shed += 1
            wait = best.prediction.ttft_s
            raise SloShedError(
                f"model {self.model!r} is overloaded: no replica is likely to start this "
                f"request within {slo.ttft_s:g}s (best expected {wait:.1f}s); retry later",
                wait - slo.ttft_s,
            )
        endpoint = self.endpoints[index]
        if self.prefix_index is not None and prefix is not None:
            self._remember(self.prefix_index, prefix, self.views(at=[index])[0])
            name, before = endpoint.name, self._slo_prefill.get(endpoint.name)
            now = best.prediction.prefill_s
            self._slo_prefill[name] = now if before is None else before + (now - before) / 16
        return endpoint

    def _slo_choice(
        self, at: Sequence[int], prefix: PromptBlocks | None, slo: SloPolicy
    ) -> tuple[int, SloChoice]:
        """``choose_for_slo`` over the endpoints at ``at``: (endpoint index, choice)."""
        chosen = [self.endpoints[i] for i in at]
        prefill = queued = None
        if self.prefix_index is not None and prefix is not None:
            matched = self.prefix_index.matched(prefix.hashes)
            prefill = self._prefill_s(matched, prefix, chosen)
            queued = [self._slo_prefill.get(ep.name, 0.0) for ep in chosen]
        choice = choose_for_slo(
            self.views(at=at), now=self._clock(), slo=slo,
            policy=self.policy, prefill_s=prefill, queued_prefill_s=queued,
        )  # fmt: skip
        assert choice is not None, "pick checked that an endpoint may take it"
        return at[choice.index], choice

    def _prefill_s(
        self, matched: dict[str, int], prefix: PromptBlocks, endpoints: Sequence[Endpoint] = ()
    ) -> list[float]:
        """Per endpoint (``endpoints``, or all), seconds to prefill the prompt's part not in
        its cache (``matched``: blocks the index expects there)."""
        tokens, default_rate = prefix.prompt_tokens, self.policy.default_prefill_s_per_token
        out = []
        for ep in endpoints or self.endpoints:
            # vLLM always computes a prompt's last token, cached or not.
            cached = min(matched.get(ep.name, 0) * prefix.block_tokens, max(tokens - 1, 0))
            rate = ep.prefill_s_per_token
            out.append((tokens - cached) * (default_rate if rate is None else rate))
        return out

    def _remember(self, index: PrefixIndex, prefix: PromptBlocks, view: EndpointView) -> None:
        """The prompt's blocks go to ``view``'s cache, as big as its KV pool."""
        snapshot = view.snapshot
        tokens = snapshot.kv_capacity_tokens if snapshot is not None else None
        tokens = tokens or self.policy.default_cache_tokens
        index.record(view.name, prefix.hashes, tokens // prefix.block_tokens)

    def _prefix_costs(
        self, index: PrefixIndex, prefix: PromptBlocks, ok: Sequence[bool]
    ) -> PrefixCosts | None:
        """Per endpoint, the seconds its uncached part of the prompt would take to prefill."""
        matched = index.matched(prefix.hashes)
        if not matched:
            return None
        warm = [i for i, ep in enumerate(self.endpoints) if ok[i] and matched.get(ep.name, 0)]
        return PrefixCosts(self._prefill_s(matched, prefix), warm) if warm else None

    def snapshot(self, endpoint: Endpoint) -> EngineSnapshot | None:
        return self._snapshots(endpoint.name)

    def views(
        self, ok: Sequence[bool] | None = None, at: Sequence[int] | None = None
    ) -> list[EndpointView]:
        """What replica choice sees of each endpoint now (``ok``: may it be chosen; ``at``:
        only the endpoints at these indexes)."""
        out = []
        chosen = enumerate(self.endpoints) if at is None else ((i, self.endpoints[i]) for i in at)
        for i, ep in chosen:
            snapshot = self._snapshots(ep.name)
            out.append(
                EndpointView(
                    ep.name,
                    allows=ep.allows() if ok is None else ok[i],
                    in_flight=ep.in_flight,
                    sent_since_snapshot=ep.sent_since(snapshot),
                    snapshot=snapshot,
                    weight=ep.weight,
                    max_num_seqs=ep.max_num_seqs,
                    service_s=ep.service_s,
                    starting=ep.starting,
                )
            )
        return out

    def expected_delay(self) -> float:
        """Seconds a new request is expected to wait on this model's best replica now
        (``inf`` when no endpoint may take traffic). For the routing policy and shedding."""
        now, best = self._clock(), math.inf
        for view in self.views():  # a loop, not min() of a list: it runs for every request
            if view.allows and view.weight > 0:
                delay = view_delay(view, now, self.policy)
                if delay < best:
                    best = delay
        return best

    def paused_for(self) -> float:
        """Seconds until an endpoint paused by ``Retry-After`` may take traffic (0: none is)."""
        return min((ep.paused_for() for ep in self.endpoints if ep.paused_for() > 0), default=0.0)

    def healthy(self) -> bool:
        return any(ep.breaker.state is not BreakerState.open for ep in self.endpoints)


def _may_take(endpoint: Endpoint, exclude: Sequence[Endpoint], retry: bool) -> bool:
    """Whether ``endpoint`` may take this attempt: not tried yet, its breaker lets it
    through, and for a retry, its retry budget has room."""
    return (
        endpoint not in exclude
        and endpoint.allows()
        and (not retry or endpoint.retry_budget.can_retry())
    )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3
    budget_s: float = 15.0


class DispatchObserver(Protocol):
    """Told about failed attempts and retries (the gateway counts them in its metrics)."""

    def upstream_error(self, model: str, endpoint: str, error: UpstreamError) -> None: ...

    def retry(self, model: str, endpoint: str) -> None: ...


class AttemptTracer(Protocol):
    """Sends one attempt inside a trace span (``retry``: 0 for the first attempt); the
    gateway's tracing hook, which is ``None`` when tracing is off."""

    async def attempt(
        self, model: str, endpoint: Endpoint, request: UpstreamRequest, retry: int
    ) -> UpstreamResponse: ...


class Attempt:
    """A request that reached an endpoint; ``finish`` once its response is done with."""

    __slots__ = ("_open", "answered_at", "endpoint", "response", "sent_at")

    def __init__(self, endpoint: Endpoint, response: UpstreamResponse, sent_at: float) -> None:
        self.endpoint = endpoint
        self.response = response
        self.sent_at = sent_at
        self.answered_at = time.monotonic()  # the head (and a stream's first chunk) arrived
        self._open = True

    def finish(self, ok: bool = True, served: bool = True) -> None:
        """``ok``: the endpoint is not to blame; ``served``: the whole answer went out (its
        duration then teaches the endpoint's service time)."""
        if not self._open:
            return
        self._open = False
        self.endpoint.in_flight -= 1
        if not ok:
            self.endpoint.breaker.on_failure()
        elif served:
            # A stream holds a batch slot from its first chunk to its end; a JSON answer's
            # whole wait is all there is to measure.
            start = self.answered_at if self.response.first_chunk else self.sent_at
            self.endpoint.observe_service(time.monotonic() - start)


async def dispatch(
    pool: EndpointPool,
    request: UpstreamRequest,
    policy: RetryPolicy,
    observer: DispatchObserver | None = None,
    affinity: int | None = None,
    prefix: PromptBlocks | None = None,
    tracer: AttemptTracer | None = None,
    ttft_s: float | None = None,
) -> Attempt:
    """Send ``request`` to an endpoint of ``pool``, moving to another on retryable errors.

    Bounded by ``policy.max_attempts``, ``policy.budget_s`` and each endpoint's retry
    budget; raises the last error, ``OverloadedError`` (429) when every endpoint paused
    itself with ``Retry-After``, or ``NoHealthyEndpointError`` when none may take traffic.
    """
    tried: list[Endpoint] = []
    deadline = time.monotonic() + policy.budget_s
    last: UpstreamError | None = None
    while len(tried) < policy.max_attempts:
        endpoint = pool.pick(
            exclude=tried, affinity=affinity, retry=bool(tried), prefix=prefix, ttft_s=ttft_s
        )
        if endpoint is None:
            break
        if pool.adapter is not None:  # a LoRA adapter: registered there first, if need be
            await _adapter_ready(pool, pool.adapter, endpoint)
        if tried and observer is not None:
            observer.retry(pool.model, endpoint.name)
        endpoint.on_send(retry=bool(tried))
        tried.append(endpoint)
        sent_at = time.monotonic()
        endpoint.starting += request.stream  # until its first chunk (or its failure) comes
        try:
            if tracer is None:
                response = await endpoint.backend.send(request)
            else:
                response = await tracer.attempt(pool.model, endpoint, request, len(tried) - 1)
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
        finally:
            endpoint.starting -= request.stream
        if endpoint.breaker.state is BreakerState.half_open:
            log.info("model %s: %s is back in service", pool.model, endpoint.name)
        endpoint.breaker.on_success()
        return Attempt(endpoint, response, sent_at)
    raise last if last is not None else _no_endpoint(pool)


def _no_endpoint(pool: EndpointPool) -> SwitchyardError:
    """Why no attempt could be sent: every endpoint paused itself, or none is healthy."""
    paused = pool.paused_for()
    if paused > 0:
        return OverloadedError(
            f"every endpoint of model {pool.model!r} asked for a pause (Retry-After)", paused
        )
    return NoHealthyEndpointError(
        f"no endpoint of model {pool.model!r} can take traffic now "
        "(circuit breakers open, or a recovery probe is under way)"
    )


async def _adapter_ready(pool: EndpointPool, route: AdapterRoute, endpoint: Endpoint) -> None:
    route.sent(endpoint.name)
    if route.loader is not None:
        await route.loader.ensure(pool.model, endpoint, route, pool.snapshot(endpoint))


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
    if isinstance(err, UpstreamStatusError):
        pause = parse_retry_after(err.headers.get("retry-after"))
        if pause and err.upstream_status in (429, 503):
            endpoint.pause(pause)  # the server said when to come back: not before
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
