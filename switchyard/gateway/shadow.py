"""Shadow mode (``shadow.enabled``): a sampled fraction of routed requests also goes, in the
background, to the other candidates of its router, and every model's answer to the same
prompt is kept beside the decision's outcome record: the data ``switchyard train
--label-free`` learns from (``switchyard outcomes export --format outputs`` writes it).

The user's answer never waits. ``Shadow.watch`` wraps the ASGI ``send`` of a sampled request
only, and keeps the bytes it relays (a JSON answer or an SSE stream); once the last body
message has gone out, the shadow calls are admitted and one background task per decision
sends the same request (the model replaced, ``stream`` false, ``max_tokens`` capped) to each
shadow candidate through the model's endpoint pool (``backends.pool.dispatch``, on the
gateway's one HTTP session: one attempt, no fallback, no retry). Bounds, checked when the
user's answer is done; a call over one is dropped and counted by reason:

- ``concurrency``: ``max_concurrent`` shadow calls in flight;
- ``rate``: ``max_rate_per_s`` (a token bucket holding one second's worth, at least one);
- ``budget``: ``budget_usd_per_hour`` spent over the last hour, counted from the shadow
  answers' usage at the models' prices (calls in flight may overshoot it by their cost).

The outputs (per model: text, status, usage, cost; the user's own answer marked
``"shadow": false``) go into the decision's in-process outcome record (``GET
/admin/outcomes``) and, through the shared store, into the Redis outcome stream as a
follow-up entry of kind ``shadow`` keyed by the decision id.

Off by default: ``Proxy`` then holds no ``Shadow`` and a request pays one attribute test.
Turning it on or off takes a restart; its sample and bounds follow config reloads.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import CollectorRegistry, Counter
from starlette.types import Message, Send

from switchyard.backends.client import UpstreamRequest
from switchyard.backends.errors import SwitchyardError, UpstreamStatusError
from switchyard.backends.pool import RetryPolicy, dispatch
from switchyard.gateway.payload import PROMPT_FIELD, UPSTREAM_PATH, Payload
from switchyard.gateway.settings import Capability, ModelConfig
from switchyard.gateway.shadow_config import ShadowConfig
from switchyard.gateway.shadow_text import answer_text, usage_of

if TYPE_CHECKING:
    from switchyard.gateway.outcomes import Route
    from switchyard.gateway.routing import RouterService
    from switchyard.gateway.settings import Settings
    from switchyard.gateway.upstreams import Upstreams

log = logging.getLogger("switchyard.gateway")

SHADOWABLE = frozenset({Capability.chat, Capability.completions})
DROP_REASONS = ("rate", "concurrency", "budget")
HOUR_S = 3600.0
MAX_CAPTURE_BYTES = 4 << 20  # a longer user answer is kept as missing (None)
ONE_ATTEMPT = RetryPolicy(max_attempts=1, budget_s=0.0)
# Fields a shadow call drops: it is never streamed, asks for one choice, caps max_tokens.
NOT_SENT = frozenset({"stream", "stream_options", "max_completion_tokens", "n"})
Output = dict[str, Any]


class ShadowMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        self.sampled = counter(
            "switchyard_shadow_sampled", "Routed requests sampled for shadow calls.", "router"
        )
        self.calls = counter(
            "switchyard_shadow_calls",
            "Shadow calls made, by model and status (the HTTP status, or the error code).",
            "model",
            "status",
        )
        self.dropped = counter(
            "switchyard_shadow_dropped", "Shadow calls not made: a bound was reached.", "reason"
        )
        self.spend = counter(
            "switchyard_shadow_spend_usd", "USD of shadow answers at the models' prices.", "model"
        )
        for reason in DROP_REASONS:  # present from the start: rates and alerts read zero
            self.dropped.labels(reason)


class Bounds:
    """Admission of shadow calls: concurrency, rate (token bucket) and the hourly budget."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.in_flight = 0
        self.spent = 0.0  # USD over the last hour
        self._clock = clock
        self._tokens: float | None = None  # full at the first call
        self._refilled = clock()
        self._spending: deque[tuple[float, float]] = deque()

    def admit(self, config: ShadowConfig) -> str | None:
        """Take a slot for one call, or say which bound refuses it."""
        now = self._clock()
        while self._spending and self._spending[0][0] <= now - HOUR_S:
            self.spent -= self._spending.popleft()[1]
        if self.spent >= config.budget_usd_per_hour:
            return "budget"
        if self.in_flight >= config.max_concurrent:
            return "concurrency"
        burst = max(config.max_rate_per_s, 1.0)
        tokens = burst if self._tokens is None else self._tokens
        tokens = min(burst, tokens + (now - self._refilled) * config.max_rate_per_s)
        self._refilled = now
        if tokens < 1.0:
            self._tokens = tokens
            return "rate"
        self._tokens = tokens - 1.0
        self.in_flight += 1
        return None

    def done(self, usd: float) -> None:
        """A call admitted earlier is over; ``usd`` its answer's cost."""
        self.in_flight -= 1
        if usd > 0:
            self._spending.append((self._clock(), usd))
            self.spent += usd


class Capture:
    """The ASGI ``send`` of a sampled request: relays every message at once, keeps the body,
    and hands the request to ``Shadow.answered`` after its last body message went out."""

    __slots__ = ("_send", "_shadow", "cap", "parts", "payload", "route", "served", "size", "status")

    def __init__(
        self, shadow: Shadow, route: Route, payload: Payload, cap: Capability, send: Send
    ) -> None:
        self._shadow, self._send = shadow, send
        self.route, self.payload, self.cap = route, payload, cap
        self.served = route.model  # or the fallback that answered
        self.status = 0
        self.parts: list[bytes] = []
        self.size = 0

    async def __call__(self, message: Message) -> None:
        await self._send(message)
        kind = message["type"]
        if kind == "http.response.body":
            body: bytes = message.get("body", b"")
            if body and self.size <= MAX_CAPTURE_BYTES:
                self.parts.append(body)
                self.size += len(body)
            if not message.get("more_body", False):
                self._shadow.answered(self)
        elif kind == "http.response.start":
            self.status = message["status"]
            for name, value in message.get("headers", ()):
                if name == b"x-switchyard-fallback":
                    self.served = value.decode("latin-1")

    def answer(self) -> str | None:
        """The user's answer text (None when it cannot be read or was too long)."""
        if self.size > MAX_CAPTURE_BYTES:
            return None
        return answer_text(b"".join(self.parts), self.cap, self.payload.stream)


class Shadow:
    """Samples routed requests, bounds and sends their shadow calls, records the outputs."""

    def __init__(
        self, upstreams: Upstreams, routing: RouterService, registry: CollectorRegistry
    ) -> None:
        self.upstreams = upstreams
        self.routing = routing
        self.metrics = ShadowMetrics(registry)
        self.bounds = Bounds()
        self._rng = random.Random(upstreams.settings.shadow.seed)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def config(self) -> ShadowConfig:
        return self.upstreams.settings.shadow  # follows config reloads

    def watch(self, route: Route, payload: Payload, cap: Capability, send: Send) -> Send:
        """``send`` itself, or for a sampled request a ``Capture`` around it."""
        config = self.config
        routers = config.routers
        if cap not in SHADOWABLE or (routers is not None and route.router not in routers):
            return send
        if self._rng.random() >= config.sample:
            return send
        self.metrics.sampled.labels(route.router).inc()
        return Capture(self, route, payload, cap, send)

    def answered(self, capture: Capture) -> None:
        """The user's answer went out: admit the shadow calls, start them in the background."""
        if capture.status != 200:
            return  # an error answer: the same request would most likely fail elsewhere too
        config, admitted = self.config, []
        for model in self._targets(capture):
            reason = self.bounds.admit(config)
            if reason is None:
                admitted.append(model)
            else:
                self.metrics.dropped.labels(reason).inc()
        if admitted:
            task = asyncio.get_running_loop().create_task(self._run(capture, admitted))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _targets(self, capture: Capture) -> list[ModelConfig]:
        """The shadow candidates of the request: configured, served, able to answer it, and
        not the model that answered the user."""
        names = self.config.candidates or self.routing.candidates.get(capture.route.router, ())
        models, pools = self.upstreams.models, self.upstreams.pools
        return [
            models[name]
            for name in names
            if name != capture.served
            and name in models
            and name in pools
            and capture.cap in models[name].capabilities
        ]

    async def close(self) -> None:
        """Cancel the shadow calls still under way (at shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, capture: Capture, models: list[ModelConfig]) -> None:
        route = capture.route
        data = {k: v for k, v in capture.payload.data.items() if k not in NOT_SENT}
        limit = self.config.max_tokens
        asked = data.get("max_tokens")
        data["max_tokens"] = asked if isinstance(asked, int) and 0 < asked < limit else limit
        request_id = f"shadow-{route.decision_id}"
        try:
            calls = [self._call(m, data, capture.cap, request_id) for m in models]
            outputs = dict(await asyncio.gather(*calls))
            outputs[capture.served] = self._own(capture)
            self._attach(route, capture.payload.data.get(PROMPT_FIELD[capture.cap]), outputs)
        except Exception:  # a bug here must never reach the user's request, nor stay silent
            log.exception("shadow calls of decision %s failed", route.decision_id)

    async def _call(
        self, model: ModelConfig, data: dict[str, Any], cap: Capability, request_id: str
    ) -> tuple[str, Output]:
        cost = 0.0
        try:
            out = await self._send(model, data, cap, request_id)
            cost = out["cost_usd"] or 0.0
        finally:
            self.bounds.done(cost)
        self.metrics.calls.labels(model.name, out["status"]).inc()
        if cost:
            self.metrics.spend.labels(model.name).inc(cost)
        return model.name, out

    async def _send(
        self, model: ModelConfig, data: dict[str, Any], cap: Capability, request_id: str
    ) -> Output:
        """One shadow call: its answer's text, status, usage and cost."""
        body = orjson.dumps({**data, "model": model.upstream_model or model.name})
        request = UpstreamRequest(UPSTREAM_PATH[cap], body, False, request_id)
        out: Output = {"text": None, "status": "", "usage": None, "cost_usd": None,
                       "shadow": True}  # fmt: skip
        started, pool = time.perf_counter(), self.upstreams.pools.get(model.name)
        if pool is None:  # removed by a config reload since the call was admitted
            out["status"] = "not_served"
            return out
        try:
            attempt = await dispatch(pool, request, ONE_ATTEMPT)
        except SwitchyardError as err:
            status = err.upstream_status if isinstance(err, UpstreamStatusError) else None
            out["status"] = str(status) if status is not None else (err.code or "error")
            return out
        resp = attempt.response
        attempt.finish()
        out["status"] = str(resp.status)
        out["latency_s"] = time.perf_counter() - started
        if resp.status == 200:
            out["text"] = answer_text(resp.body, cap, stream=False)
            usage = usage_of(resp.body)
            if usage is not None:
                out["usage"] = usage
                out["cost_usd"] = model.cost_usd(usage["prompt_tokens"], usage["completion_tokens"])
        return out

    def _own(self, capture: Capture) -> Output:
        """The user's answer as an output; usage and cost from its outcome record."""
        record = self.routing.outcomes.record(capture.route.decision_id)
        usage = None
        if record is not None:
            usage = {"prompt_tokens": record.prompt_tokens,
                     "completion_tokens": record.completion_tokens}  # fmt: skip
        return {
            "text": capture.answer(),
            "status": str(capture.status),
            "usage": usage,
            "cost_usd": None if record is None else record.cost_usd,
            "shadow": False,
        }

    def _attach(self, route: Route, prompt: Any, outputs: dict[str, Output]) -> None:
        """The outputs go beside the outcome record, here and in the shared store."""
        record = self.routing.outcomes.record(route.decision_id)
        if record is not None:
            record.prompt, record.outputs = prompt, outputs
        entry = {"decision_id": route.decision_id, "router": route.router, "model": route.model,
                 "prompt": prompt, "outputs": outputs, "time": time.time()}  # fmt: skip
        self.routing.shared.append("shadow", orjson.dumps(entry))


def open_shadow(
    settings: Settings,
    upstreams: Upstreams,
    routing: RouterService | None,
    registry: CollectorRegistry,
) -> Shadow | None:
    """The proxy's shadow hook: None when shadow mode is off (or nothing is routed)."""
    if not settings.shadow.enabled or routing is None:
        return None
    return Shadow(upstreams, routing, registry)
