"""The hook the proxy calls when tracing is on: one span per request and per step.

A proxied request's trace, under the client's ``traceparent`` when it sent one::

    POST /v1/chat/completions        server span: status, request id, model asked for
    ├─ switchyard.authenticate       the API key (with auth on)
    ├─ switchyard.route              routed requests: router, chosen model, cost weight
    ├─ switchyard.admit              limits and budgets (when a key or model limit applies)
    ├─ POST /chat/completions        client span per upstream attempt (endpoint, status,
    │                                retry number); the backend gets its traceparent
    └─ switchyard.stream             streamed answers: time to first byte, chunks, bytes,
                                     outcome

The proxy holds ``None`` instead of a ``Tracing`` when tracing is off, and every hook point
is behind ``if tracing is not None``: a request then runs no OpenTelemetry code at all.
Spans are made current in the request's own task (``contextvars``), so the steps nest under
the server span without being handed it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine, Iterable
from contextvars import ContextVar
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import Message, Scope, Send

from switchyard.backends.client import UpstreamRequest, UpstreamResponse
from switchyard.backends.endpoint import Endpoint
from switchyard.backends.errors import SwitchyardError, UpstreamError, UpstreamStatusError
from switchyard.gateway.outcomes import Route
from switchyard.gateway.tenancy.config import AuthConfig
from switchyard.gateway.tenancy.keys import KeyRecord

T = TypeVar("T")
Work = Coroutine[Any, Any, T]

AUTHENTICATE = "switchyard.authenticate"
ADMIT = "switchyard.admit"
ROUTE = "switchyard.route"
STREAM = "switchyard.stream"
_CONTEXT_HEADERS = (b"traceparent", b"tracestate")
# The request span of the running task (each request is a task of its own under uvicorn).
_REQUEST: ContextVar[RequestSpan | None] = ContextVar("switchyard_request_span", default=None)


class RequestSpan:
    """The server span of one request, current in its task until ``end``; counts what the
    response sends (a stream's span reads its share of it)."""

    __slots__ = ("_token", "bytes", "chunks", "span", "status")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.status = 0
        self.chunks = self.bytes = 0
        self._token = otel_context.attach(trace.set_span_in_context(span))

    def watch(self, send: Send) -> Send:
        """``send``, noting the response's status and counting its body messages and bytes."""

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.body":
                body = message.get("body")
                if body:
                    self.chunks += 1
                    self.bytes += len(body)
            elif message["type"] == "http.response.start":
                self.status = message["status"]
            await send(message)

        return watched

    def failed(self, exc: BaseException) -> None:
        """The request raised ``exc`` (answered as an error, or too late to); a client's
        error (4xx) is recorded, not marked as the server's failure."""
        _failed(self.span, exc)

    def end(self, asked: str) -> None:
        span = self.span
        if self.status:
            span.set_attributes(
                {"gen_ai.request.model": asked, "http.response.status_code": self.status}
            )
        if self.status >= 500:
            span.set_status(StatusCode.ERROR)
        span.end()
        otel_context.detach(self._token)


class StreamSpan:
    """A streamed answer on its way to the client: what its request's ``send`` sent from
    the stream's start (one wrapper of ``send`` per request, not one more per stream)."""

    __slots__ = ("_from", "request", "span")

    def __init__(self, span: Span, request: RequestSpan | None) -> None:
        self.span = span
        self.request = request
        self._from = (request.chunks, request.bytes) if request is not None else (0, 0)

    def end(self, outcome: str) -> None:
        span, request = self.span, self.request
        chunks, sent = (request.chunks, request.bytes) if request is not None else self._from
        span.set_attributes(
            {
                "switchyard.stream.chunks": chunks - self._from[0],
                "switchyard.stream.bytes": sent - self._from[1],
                "switchyard.stream.outcome": outcome,
            }
        )
        if outcome == "upstream_error":
            span.set_status(StatusCode.ERROR)
        span.end()


class Tracing:
    """Starts the spans of proxied requests on ``tracer``.

    Only the server span is made current (its steps find their parent there); the others
    have no children and are started and ended directly, which costs a request less."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer
        self._propagator = TraceContextTextMapPropagator()

    def request(self, scope: Scope, request_id: bytes) -> RequestSpan:
        """The server span of a request, continuing the client's trace if it sent one."""
        path: str = scope["path"]
        parent = None
        for name, _ in scope["headers"]:
            if name == b"traceparent":
                parent = self._propagator.extract(_trace_headers(scope["headers"]))
                break
        span = self.tracer.start_span(
            f"POST {path}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"url.path": path, "switchyard.request_id": request_id.decode()},
        )
        request = RequestSpan(span)
        _REQUEST.set(request)
        return request

    def authenticate(self, work: Work[T], auth: AuthConfig) -> Work[T]:
        """The API key's check (``Guard.authenticate``) in its span (none with auth off)."""
        return self._step(AUTHENTICATE, work) if auth.enabled else work

    def admit(self, work: Work[T], key: KeyRecord | None, auth: AuthConfig) -> Work[T]:
        """Admission (``Guard.admit``: limits and budgets) in its span; none when no limit
        can apply (no key, no per-model limits: ``Guard.admit``'s own shortcut)."""
        applies = key is not None or bool(auth.model_limits)
        return self._step(ADMIT, work) if applies else work

    async def _step(self, name: str, work: Work[T]) -> T:
        """Await ``work`` inside a span ``name``; an error marks the span and goes on."""
        span = self.tracer.start_span(name, kind=SpanKind.INTERNAL)
        try:
            return await work
        except Exception as exc:
            _failed(span, exc)
            raise
        finally:
            span.end()

    async def route(self, decision: Awaitable[Route]) -> Route:
        """The routing decision, with what it chose."""
        span = self.tracer.start_span(ROUTE, kind=SpanKind.INTERNAL)
        try:
            route = await decision
            span.set_attributes(
                {
                    "switchyard.router": route.router,
                    "switchyard.model": route.model,
                    "switchyard.cost_weight": route.cost_weight,
                    "switchyard.decision_id": route.decision_id,
                    "switchyard.decision_ms": route.decision_s * 1e3,
                }
            )
            return route
        except Exception as exc:
            _failed(span, exc)
            raise
        finally:
            span.end()

    async def attempt(
        self, model: str, endpoint: Endpoint, request: UpstreamRequest, retry: int
    ) -> UpstreamResponse:
        """One upstream attempt as a client span; the backend gets its ``traceparent``."""
        span = self.tracer.start_span(
            f"POST {request.path}",
            kind=SpanKind.CLIENT,
            attributes={
                "switchyard.endpoint": endpoint.name,
                "switchyard.model": model,
                "switchyard.retry": retry,
            },
        )
        request = UpstreamRequest(
            request.path, request.body, request.stream, request.request_id,
            request.headers + _context_headers(span),
        )  # fmt: skip
        try:
            response = await endpoint.backend.send(request)
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 400:
                span.set_status(StatusCode.ERROR)
            return response
        except UpstreamError as err:
            if isinstance(err, UpstreamStatusError):
                span.set_attribute("http.response.status_code", err.upstream_status)
            span.set_attribute("error.type", err.code or type(err).__name__)
            span.set_status(StatusCode.ERROR, err.message[:200])
            raise
        finally:
            span.end()

    def stream(self, ttfb_s: float) -> StreamSpan:
        """The span of a streamed answer that starts now; ``ttfb_s``: since the request came."""
        span = self.tracer.start_span(
            STREAM, kind=SpanKind.INTERNAL, attributes={"switchyard.stream.ttfb_ms": ttfb_s * 1e3}
        )
        return StreamSpan(span, _REQUEST.get())


def _failed(span: Span, exc: BaseException) -> None:
    """``exc`` ended the span's work: a client's error (4xx) is recorded with its code, a
    server's also marks the span as failed."""
    if isinstance(exc, SwitchyardError):
        span.set_attribute("error.type", exc.code or exc.type)
        if exc.status < 500:
            return
    else:
        span.set_attribute("error.type", type(exc).__name__)
    span.record_exception(exc)
    span.set_status(StatusCode.ERROR)


def _context_headers(span: Span) -> tuple[tuple[str, str], ...]:
    """W3C trace context naming ``span`` as the parent (what the SDK's propagator writes)."""
    ctx = span.get_span_context()
    parent = ("traceparent", f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}")
    if ctx.trace_state:
        return parent, ("tracestate", ctx.trace_state.to_header())
    return (parent,)


def _trace_headers(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The W3C trace context headers of a request (the propagator's carrier)."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in headers if k in _CONTEXT_HEADERS}
