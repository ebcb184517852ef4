"""The proxied OpenAI endpoints: chat completions, completions and embeddings, in raw ASGI.

``GatewayAPI`` (``switchyard.gateway.app``) hands these three POST routes straight to
``Proxy.serve``: no Starlette request, routing table, middleware or response object stands between
uvicorn and the proxy, because each would cost a request that uses nothing of it. A request is read
and checked (``switchyard.gateway.payload``), admitted (``switchyard.gateway.tenancy.guard``), sent
through the model's endpoint pool (retries before the first byte happen in
``switchyard.backends.pool.dispatch``), and answered either with the backend's body as it came or
with a pass-through SSE stream.

One ``Call`` follows each request: it opens the in-flight gauge once and closes it once,
whatever path the request takes, and carries what its outcome needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.types import Receive, Scope, Send

from switchyard.backends.errors import OverloadedError, SwitchyardError, UpstreamError
from switchyard.backends.pool import Attempt
from switchyard.gateway.apis import Dialect, Translation
from switchyard.gateway.cascade import Cascades
from switchyard.gateway.constraints import (
    Needs,
    allowing,
    check_model,
    needs_of,
)
from switchyard.gateway.disconnect import DisconnectWatch
from switchyard.gateway.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    PermissionDeniedError,
    as_switchyard_error,
    error_head,
    log_error,
)
from switchyard.gateway.http_cycle import HOLD
from switchyard.gateway.load import dispatch_chain, within_targets
from switchyard.gateway.metrics import GatewayMetrics
from switchyard.gateway.outcomes import Route
from switchyard.gateway.passthrough import PASSTHROUGH, parse_passthrough
from switchyard.gateway.payload import (
    PROMPT_FIELD,
    ClientGone,
    Payload,
    parse_payload,
    read_body,
    unservable,
)
from switchyard.gateway.payload import routed_payload as _routed
from switchyard.gateway.request_metrics import ModelMetrics
from switchyard.gateway.requestid import assign_request_id
from switchyard.gateway.routing import RouterService
from switchyard.gateway.routing_options import (
    OPTIONS_FIELD,
    concrete_needs,
    option_headers,
    parse_options,
)
from switchyard.gateway.settings import Capability, ModelConfig
from switchyard.gateway.streaming import STREAM_HEADERS, KeepAlive, UsageTap, relay
from switchyard.gateway.tenancy.guard import Guard, Ticket
from switchyard.gateway.tenancy.keys import KeyRecord
from switchyard.gateway.upstreams import Upstreams

if TYPE_CHECKING:  # the hook's module imports OpenTelemetry: only when tracing is on
    from switchyard.gateway.cache.hook import ResponseCache
    from switchyard.gateway.shadow import Shadow
    from switchyard.gateway.tracing.spans import Tracing

Usage = dict[str, Any] | None


class Call:
    """One proxied request while the gateway serves it."""

    __slots__ = (
        "_open", "answered", "asked", "extra", "metrics", "request_id", "route", "started",
        "ticket", "translation", "ttft_s",
    )  # fmt: skip

    def __init__(self, request_id: bytes) -> None:
        self.request_id = request_id
        self.started = time.perf_counter()
        self.asked = "-"  # the model named in the body, once read
        self.answered = False  # the response has started: no error response can follow
        self.route: Route | None = None
        self.ticket: Ticket | None = None
        self.metrics: ModelMetrics | None = None  # the model that serves it, once known
        self.extra: list[tuple[bytes, bytes]] = []  # response headers the gateway adds
        self.translation: Translation | None = None  # another API's request (gateway.apis)
        self.ttft_s: float | None = None  # its own TTFT target (max_ttft_ms), if it set one
        self._open = False

    def open(self, metrics: ModelMetrics) -> None:
        """The request is in flight on ``metrics``' model (again, when a fallback took it)."""
        if self._open:
            assert self.metrics is not None
            self.metrics.in_flight -= 1
        self.metrics = metrics
        self._open = True
        metrics.in_flight += 1

    def close(self) -> None:
        if self._open:
            self._open = False
            assert self.metrics is not None
            self.metrics.in_flight -= 1

    def headers(self, head: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """``head`` plus what the gateway adds to every response; the response starts."""
        self.answered = True
        head.append((b"x-request-id", self.request_id))
        if self.extra:
            head += self.extra
        if self.ticket is not None and self.ticket.headers:
            head += self.ticket.headers
        return head


class Proxy:
    def __init__(
        self,
        upstreams: Upstreams,
        guard: Guard,
        metrics: GatewayMetrics,
        routing: RouterService | None = None,
        tracing: Tracing | None = None,
        cache: ResponseCache | None = None,
        shadow: Shadow | None = None,
    ) -> None:
        self.cache = cache  # None when the response cache is off
        self.upstreams = upstreams
        self.guard = guard
        self.metrics = metrics
        self.routing = routing
        self.tracing = tracing  # None when tracing is off: no OpenTelemetry code runs then
        self.shadow = shadow  # None when shadow mode is off (gateway.shadow)
        self.cascades = Cascades(self)  # kind: cascade routers

    async def serve(
        self, scope: Scope, receive: Receive, send: Send, cap: Capability,
        dialect: Dialect | None = None,
    ) -> None:  # fmt: skip
        """Raw ASGI: one proxied request. Every error is answered in OpenAI's shape (this is
        the same mapping as ``switchyard.gateway.errors``' handler for the FastAPI routes),
        or in ``dialect``'s for another API's request (``switchyard.gateway.apis``)."""
        call = Call(assign_request_id(scope))
        span = None if self.tracing is None else self.tracing.request(scope, call.request_id)
        if span is not None:
            send = span.watch(send)
        try:
            await self._handle(scope, receive, send, cap, call, dialect)
        except ClientGone:
            call.close()
        except Exception as exc:
            call.close()
            if span is not None:
                span.failed(exc)
            if call.answered:  # too late to answer with an error: uvicorn logs it
                raise
            err = as_switchyard_error(exc)
            log_error(err, "POST", scope["path"], call.request_id.decode())
            if call.metrics is None:  # refused before dispatch: not counted yet
                name = call.asked if call.asked in self.upstreams.models else "-"
                self.metrics.refused(name, str(err.status))
            body = err.to_json() if dialect is None else dialect.error(err)
            head = call.headers(error_head(err, body))
            await send({"type": "http.response.start", "status": err.status, "headers": head,
                        HOLD: True})  # fmt: skip
            await send({"type": "http.response.body", "body": body})
        finally:
            if span is not None:
                span.end(call.asked)

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, cap: Capability, call: Call,
        dialect: Dialect | None,
    ) -> None:  # fmt: skip
        headers, tracing = scope["headers"], self.tracing
        authenticating = self.guard.authenticate(headers)
        if tracing is not None:
            authenticating = tracing.authenticate(authenticating, self.guard.auth)
        key = await authenticating
        raw = await read_body(receive, headers, self.upstreams.settings.server.max_body_bytes)
        if dialect is not None:  # the request as chat completions, for routing and admission
            payload, call.translation = dialect.parse(raw)
        elif cap in PASSTHROUGH:  # rerank, score, transcriptions
            payload = parse_passthrough(raw, headers, cap)
        else:
            payload = parse_payload(raw, cap)
        call.asked = payload.model
        if self.cache is not None and dialect is None:  # None: answered from the cache
            if (sending := await self.cache.serve(headers, payload, cap, key, call, send)) is None:
                return
            send = sending
        needs = None  # what the request needs of its model (gateway.constraints)
        if self.routing is not None and (router := self.routing.resolve(payload.model)):
            needs = needs_of(payload.data, images=True)
            deciding = self._route(headers, key, router.name, payload, cap, call, needs)
            call.route = await (deciding if tracing is None else tracing.route(deciding))
            payload = _routed(payload, call.route.model, OPTIONS_FIELD)
            call.extra += call.route.headers()
            if self.cache is not None and await self.cache.routed(send, payload, call):
                return  # a semantic hit: the chosen model's answer to a similar prompt
        elif (
            OPTIONS_FIELD in (data := payload.data) or "tools" in data or "response_format" in data
        ):
            needs, payload, call.ttft_s = concrete_needs(payload)
        model = self.upstreams.models.get(payload.model)
        if call.translation is not None and model is not None:
            cap, payload = call.translation.upstream(model, payload)
        try:
            if model is None or cap not in model.capabilities:
                raise unservable(payload.model, model, cap)
            if needs is not None and call.route is None:
                check_model(model, needs, self.metrics)
            self.guard.check_model(key, model.name)
            admitting = self.guard.admit(key, model, payload.data)
            if tracing is not None:
                admitting = tracing.admit(admitting, key, self.guard.auth)
            call.ticket = await admitting
        except SwitchyardError as err:
            if call.route is not None:
                self._outcome(call.route, call.route.model, "-", str(err.status), None, None)
            raise
        may_use: Callable[[str], bool] = key.allows if key is not None else _any
        if needs is not None:  # fallbacks must meet the constraints too
            may_use = allowing(may_use, needs, self.upstreams.models)
        if call.route is not None and await self.cascades.serve(
            receive, send, model, payload, cap, call, may_use
        ):
            return  # a cascade router's non-streamed request: its stages ran (gateway.cascade)
        await self._forward(receive, send, model, payload, cap, call, may_use)

    async def _route(
        self,
        headers: list[tuple[bytes, bytes]],
        key: KeyRecord | None,
        name: str,
        payload: Payload,
        capability: Capability,
        call: Call,
        needs: Needs | None = None,
    ) -> Route:
        """Choose the model for a request to router ``name`` (and note the request's own
        TTFT target on ``call``, for replica choice)."""
        routing = self.routing
        assert routing is not None
        if capability is Capability.embeddings or capability in PASSTHROUGH:
            raise InvalidRequestError(
                f"'{payload.model}' is a routed model; "
                f"{capability.value} requests need a concrete model",
                param="model",
            )
        if key is not None and not any(map(key.allows, routing.candidates[name])):
            raise PermissionDeniedError(
                f"this key may use none of the models of router '{name}'",
                param="model",
                code="model_not_allowed",
            )
        options = parse_options(payload.data, option_headers(headers))
        allowed = routing.allowed(name, options, key.allows if key is not None else None, needs)
        prompt = payload.data[PROMPT_FIELD[capability]]
        if capability is Capability.completions and isinstance(prompt, list):
            prompt = prompt[0] if prompt else ""
        if not isinstance(prompt, str | list):
            raise InvalidRequestError("the prompt cannot be routed", param="prompt")
        # Read on the event loop; the decision's worker thread never touches the pools.
        delays = self.upstreams.expected_delays(allowed)
        max_ttft = None if options.max_ttft_ms is None else options.max_ttft_ms / 1e3
        call.ttft_s = max_ttft
        max_queue = self.upstreams.settings.upstream.max_queue_delay_s
        try:
            allowed = within_targets(delays, max_ttft, max_queue)
        except OverloadedError:
            self.metrics.shed.labels(name).inc()
            raise
        delays = {m: delays[m] for m in allowed}
        text = routing.prompt_of(prompt)
        return await routing.decide(name, text, options, allowed, delays, key=key)

    async def _forward(
        self,
        receive: Receive,
        send: Send,
        model: ModelConfig,
        payload: Payload,
        capability: Capability,
        call: Call,
        may_use: Callable[[str], bool],
    ) -> None:
        if model.name not in self.upstreams.pools:  # removed by a config reload a moment ago
            raise ModelNotFoundError(f"The model '{model.name}' is no longer served", param="model")
        call.open(self.metrics.model(model.name))
        if self.shadow is not None and call.route is not None and call.translation is None:
            send = self.shadow.watch(call.route, payload, capability, send)  # gateway.shadow
        watch = DisconnectWatch(receive)
        try:
            await self._exchange(send, model, payload, capability, call, may_use, watch)
        except asyncio.CancelledError:
            if not watch.absorb():
                raise
        finally:
            watch.stop()

    async def _exchange(
        self,
        send: Send,
        model: ModelConfig,
        payload: Payload,
        capability: Capability,
        call: Call,
        may_use: Callable[[str], bool],
        watch: DisconnectWatch,
    ) -> None:
        """Dispatch, then answer; a client that leaves cancels this (recorded as such)."""
        asked = model
        keepalive = self._keepalive(send, payload, call, watch)
        try:
            try:
                model, attempt = await dispatch_chain(
                    self.upstreams, self.metrics, model, payload, capability,
                    call.request_id.decode(), may_use, self.tracing, call.ttft_s,
                )  # fmt: skip
            finally:
                beat = keepalive.stop() if keepalive is not None else None
                if beat is not None:
                    with contextlib.suppress(asyncio.CancelledError):
                        await beat
        except SwitchyardError as err:
            self._finish(call, model, "-", str(err.status), None, None)
            if keepalive is None or not keepalive.started:
                raise
            # the response has started: the error goes in it
            await keepalive.fail(err, _failed_event(call, err))
            return
        except asyncio.CancelledError:
            self._finish(call, model, "-", "client_closed", None, None)
            raise
        if model is not asked:  # a fallback answered: count it there, and say so
            call.open(self.metrics.model(model.name))
            call.extra.append((b"x-switchyard-fallback", model.name.encode()))
        started = keepalive is not None and keepalive.started
        if payload.stream and attempt.response.status == 200:
            await self._stream(send, model, payload, attempt, call, started)
        elif started and keepalive is not None:  # refused after keep-alives began
            attempt.finish()
            resp = attempt.response
            self._finish(call, model, attempt.endpoint.name, str(resp.status), None, None)
            refusal = _refusal(resp.status, resp.body)
            await keepalive.fail(refusal, _failed_event(call, refusal))
        else:
            await self._answer(send, model, attempt, call)

    def _keepalive(
        self, send: Send, payload: Payload, call: Call, watch: DisconnectWatch
    ) -> KeepAlive | None:
        interval = self.upstreams.settings.upstream.stream_keepalive_s
        if not (payload.stream and interval > 0):
            return None
        return KeepAlive(send, interval, lambda: call.headers(list(STREAM_HEADERS)), watch)

    async def _answer(self, send: Send, model: ModelConfig, attempt: Attempt, call: Call) -> None:
        """The backend's whole answer, as it came."""
        resp = attempt.response
        attempt.finish()
        body = resp.body
        if call.translation is not None:
            body, usage = call.translation.answer(resp.status, body)
        else:
            usage = _usage_of(body) if resp.status == 200 else None
        self._finish(call, model, attempt.endpoint.name, str(resp.status), usage, None)
        head = [
            (b"content-type", resp.content_type.encode("latin-1")),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": resp.status,
                    "headers": call.headers(head), HOLD: True})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    async def _stream(
        self,
        send: Send,
        model: ModelConfig,
        payload: Payload,
        attempt: Attempt,
        call: Call,
        started: bool,
    ) -> None:
        """Relay the stream (``started``: keep-alives began it, so no head is sent)."""
        first = time.perf_counter()
        assert call.metrics is not None
        call.metrics.ttft.observe(first - call.started)
        tap = UsageTap(drop=not payload.wants_usage)
        status = "client_closed"
        span = None if self.tracing is None else self.tracing.stream(first - call.started)
        try:
            head = None if started else call.headers(list(STREAM_HEADERS))
            if call.translation is None:
                status = await relay(send, attempt, tap, head)
            else:
                status = await call.translation.relay(send, attempt, head)
        except asyncio.CancelledError:
            attempt.response.abort()
            raise
        finally:
            attempt.finish(ok=status != "upstream_error", served=status == "200")
            ttft = first - call.route.started if call.route is not None else None
            usage = tap.usage if call.translation is None else call.translation.usage
            self._finish(call, model, attempt.endpoint.name, status, usage, ttft)
            if span is not None:
                span.end(status)

    def _finish(
        self,
        call: Call,
        model: ModelConfig,
        endpoint: str,
        status: str,
        usage: Usage,
        ttft: float | None,
    ) -> None:
        """The request is done: count it, settle its limits, record a routed outcome."""
        call.close()
        metrics = call.metrics if call.metrics is not None else self.metrics.model(model.name)
        metrics.finished(endpoint, status, self._took(call))
        spent = self._settle(model, metrics, usage, call.ticket)
        if call.route is not None:
            self._outcome(call.route, model.name, endpoint, status, spent, ttft)

    @staticmethod
    def _took(call: Call) -> float:
        return time.perf_counter() - call.started

    def _settle(
        self, model: ModelConfig, metrics: ModelMetrics, usage: Usage, ticket: Ticket | None
    ) -> tuple[int, int, float] | None:
        """Count tokens and cost; settle the request's limits on them (zero if unknown).

        Returns (prompt tokens, completion tokens, USD), or None without usage."""
        prompt = completion = 0
        if usage is not None:
            prompt = usage.get("prompt_tokens") or 0
            completion = usage.get("completion_tokens") or 0
            if not (isinstance(prompt, int) and isinstance(completion, int)):
                prompt = completion = 0
        cost = model.cost_usd(prompt, completion)
        if usage is not None:
            metrics.usage(prompt, completion, cost)
        if ticket is not None:
            self.guard.settle(ticket, prompt + completion, cost)
        return (prompt, completion, cost) if usage is not None else None

    def _outcome(
        self,
        route: Route,
        served: str,
        endpoint: str,
        status: str,
        spent: tuple[int, int, float] | None,
        ttft: float | None,
    ) -> None:
        """The routed request is done: its outcome record goes into the log. ``served`` is
        the model that answered (a fallback of the chosen one, if that could not)."""
        assert self.routing is not None
        self.routing.finish(route, route.record(served, endpoint, status, spent, ttft))


def _usage_of(body: bytes) -> Usage:
    try:
        usage = orjson.loads(body).get("usage")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return usage if isinstance(usage, dict) else None


def _refusal(status: int, body: bytes) -> SwitchyardError:
    """A backend's error answer, as an error event once a stream's response has started."""
    detail = body[:300].decode("utf-8", "replace").strip()
    message = f"upstream answered HTTP {status}: {detail}"
    return InvalidRequestError(message) if 400 <= status < 500 else UpstreamError(message)


def _failed_event(call: Call, err: SwitchyardError) -> bytes | None:
    """The error event that ends a started stream in the client's API (None: OpenAI's)."""
    return None if call.translation is None else call.translation.failed(err)


def _any(model: str) -> bool:
    return True
