"""``create_app(settings)``: the one place the gateway is assembled."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI, Request
from prometheus_client import CollectorRegistry
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from switchyard.gateway.adapter_metrics import AdapterCollector
from switchyard.gateway.admin import admin_routes
from switchyard.gateway.apis import Dialect, api_requests
from switchyard.gateway.apis.messages import MessagesDialect
from switchyard.gateway.apis.responses import ResponsesDialect
from switchyard.gateway.cache.hook import open_cache
from switchyard.gateway.discovery_metrics import DiscoveryCollector
from switchyard.gateway.errors import install_error_handlers
from switchyard.gateway.feedback import feedback_routes
from switchyard.gateway.fleet import Fleet
from switchyard.gateway.logs import configure_logging
from switchyard.gateway.metrics import GatewayMetrics
from switchyard.gateway.openapi import REQUEST_SCHEMAS
from switchyard.gateway.prefix_metrics import PrefixIndexCollector
from switchyard.gateway.proxy import Proxy
from switchyard.gateway.reload import ConfigReloader
from switchyard.gateway.requestid import RequestIdMiddleware
from switchyard.gateway.routing import RouterService
from switchyard.gateway.settings import Capability, Settings, load_settings
from switchyard.gateway.shadow import open_shadow
from switchyard.gateway.slo_metrics import SloCollector
from switchyard.gateway.system import system_routes
from switchyard.gateway.tenancy.guard import Guard
from switchyard.gateway.tenancy.store import TenancyStore, open_store
from switchyard.gateway.tracing import open_tracing
from switchyard.gateway.upstream_metrics import UpstreamConnectionsCollector
from switchyard.gateway.upstreams import Upstreams

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from switchyard.gateway.tracing.export import TracingSetup

CONFIG_ENV = "SWITCHYARD_CONFIG_FILE"  # hands the config path to uvicorn worker processes

# The proxied routes, served in raw ASGI by ``Proxy.serve`` (see ``GatewayAPI``).
PROXIED = {
    "/v1/chat/completions": (Capability.chat, "Create a chat completion (OpenAI-compatible)"),
    "/v1/completions": (Capability.completions, "Create a text completion (OpenAI-compatible)"),
    "/v1/embeddings": (Capability.embeddings, "Create embeddings (OpenAI-compatible)"),
    # passed through to models with the capability (switchyard.gateway.passthrough)
    "/v1/rerank": (Capability.rerank, "Rerank documents by relevance to a query (vLLM, Jina)"),
    "/v1/score": (Capability.score, "Score text pairs (vLLM)"),
    "/v1/audio/transcriptions": (Capability.transcriptions, "Transcribe audio (OpenAI-compatible)"),
}


class GatewayAPI(FastAPI):
    """FastAPI for everything but the proxied POST routes, which go to the proxy directly:
    FastAPI's middleware stack, router and request objects cost a pass-through request
    about as much as the proxying itself (docs/BENCHMARKS.md §2)."""

    proxy: Proxy
    dialects: dict[str, Dialect]  # other APIs served over the proxy, by path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            root = scope.get("root_path")
            if root and path.startswith(root):
                path = path[len(root) :]
            route = PROXIED.get(path)
            if route is not None:
                await self.proxy.serve(scope, receive, send, route[0])
                return
            dialect = self.dialects.get(path)
            if dialect is not None:
                await self.proxy.serve(scope, receive, send, Capability.chat, dialect)
                return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    registry: CollectorRegistry | None = None,
    config_path: str | Path | None = None,
    span_exporter: SpanExporter | None = None,
) -> FastAPI:
    """``config_path``: the file ``settings`` came from, re-read by POST /admin/config/reload;
    ``span_exporter``: where traces go instead of OTLP, when tracing is enabled (tests)."""
    registry = registry if registry is not None else CollectorRegistry()
    tracing = open_tracing(settings.tracing, registry, span_exporter)  # None when off
    metrics = GatewayMetrics(registry)
    upstreams = Upstreams(settings)
    metrics.watch_breakers(lambda: upstreams.pools)
    registry.register(DiscoveryCollector(upstreams))
    registry.register(PrefixIndexCollector(upstreams))
    registry.register(AdapterCollector(upstreams))
    registry.register(SloCollector(lambda: upstreams.pools))
    registry.register(UpstreamConnectionsCollector(upstreams))
    state = settings.state
    store = open_store(state.redis_url, state.key_prefix, state.timeout_s, state.mode)
    guard = Guard(settings.auth, store, metrics)
    routing = RouterService(settings, metrics) if settings.routers else None
    config_file = Path(config_path) if config_path else None
    reloader = ConfigReloader(upstreams, guard, routing, config_file)
    # A reload through any replica reaches the others through the state store.
    fleet = None
    if state.redis_url is not None and config_file is not None:
        fleet = Fleet(state, reloader, metrics, lambda: upstreams.settings.routing.refresh_s)

    app = GatewayAPI(
        title="Switchyard",
        version=version("switchyard"),
        description="OpenAI-compatible LLM gateway.",
        lifespan=_lifespan(settings, upstreams, guard, store, routing, fleet, tracing),
        redoc_url=None,
        # Switchyard exports its own Prometheus metrics; FastAPI's OpenTelemetry hooks
        # would only add work to every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.upstreams = upstreams
    app.state.metrics = metrics
    app.state.guard = guard
    app.state.routing = routing
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)
    app.state.tracing = tracing
    cache = open_cache(settings.cache, state, registry, routing)  # None when off
    app.state.cache = cache
    shadow = open_shadow(settings, upstreams, routing, registry)  # None when off
    app.state.shadow = shadow
    hook = tracing.hook if tracing else None
    app.proxy = Proxy(upstreams, guard, metrics, routing, hook, cache, shadow)
    requests = api_requests(registry)
    app.dialects = {d.path: d for d in (ResponsesDialect(requests), MessagesDialect(requests))}
    app.include_router(proxy_routes(app.proxy, app.dialects.values()))
    app.include_router(feedback_routes(routing, guard))
    app.include_router(system_routes(upstreams, guard, registry, routing))
    app.include_router(admin_routes(upstreams, guard, reloader, routing, fleet))
    return app


def _lifespan(
    settings: Settings,
    upstreams: Upstreams,
    guard: Guard,
    store: TenancyStore,
    routing: RouterService | None,
    fleet: Fleet | None,
    tracing: TracingSetup | None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """What starts before the first request and stops after the last, in that order."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if routing is not None:  # loads the embedder and the routers (ONNX Runtime, numpy)
            await routing.start()
        await upstreams.start()
        if fleet is not None:
            await fleet.start()
        try:
            with _tuned_gc(settings.server.gc_young_threshold):
                yield
        finally:
            if fleet is not None:
                await fleet.close()
            await guard.drain()
            await store.close()
            if (cache := getattr(app.state, "cache", None)) is not None:
                await cache.close()
            if (shadow := getattr(app.state, "shadow", None)) is not None:
                await shadow.close()  # shadow calls still under way: before the pools go
            await upstreams.close()
            if routing is not None:
                await routing.close()
            if tracing is not None:  # flushes queued spans: off the event loop
                await asyncio.to_thread(tracing.shutdown)

    return lifespan


@contextmanager
def _tuned_gc(young_threshold: int) -> Iterator[None]:
    """Startup objects (FastAPI, pydantic, routes) live for good: moving them out of the
    collector's view cut full-collection time ~10x under load (bench/gc_probe.py). Young
    collections every ``young_threshold`` allocations (0: Python's default) while serving."""
    gc.freeze()
    thresholds = gc.get_threshold()
    if young_threshold:
        gc.set_threshold(young_threshold, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


class _Proxied(Response):
    """A proxied route reached through FastAPI's routing (``GatewayAPI`` mounted inside
    another app): served the same way."""

    def __init__(
        self, proxy: Proxy, capability: Capability, dialect: Dialect | None = None
    ) -> None:
        self._proxy, self._capability, self._dialect = proxy, capability, dialect

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._proxy.serve(scope, receive, send, self._capability, self._dialect)


def proxy_routes(proxy: Proxy, dialects: Iterable[Dialect] = ()) -> APIRouter:
    """The proxied routes as FastAPI sees them: for the OpenAPI document, and for a
    ``GatewayAPI`` mounted inside another app (whose own ``__call__`` is then bypassed)."""
    routes = APIRouter(tags=["openai"])
    for dialect in dialects:
        routes.add_api_route(
            dialect.path,
            _endpoint(proxy, Capability.chat, dialect),
            methods=["POST"],
            summary=dialect.summary,
            response_class=Response,
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/json": {"schema": dialect.schema}}}},
        )  # fmt: skip
    for path, (capability, summary) in PROXIED.items():
        routes.add_api_route(
            path,
            _endpoint(proxy, capability),
            methods=["POST"],
            summary=summary,
            response_class=Response,
            openapi_extra=REQUEST_SCHEMAS[capability],
        )
    return routes


def _endpoint(
    proxy: Proxy, capability: Capability, dialect: Dialect | None = None
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return _Proxied(proxy, capability, dialect)

    return endpoint


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` worker processes: reads the config file again."""
    settings = load_settings(os.environ[CONFIG_ENV])
    configure_logging(settings.server.log_level)
    return create_app(settings, config_path=os.environ[CONFIG_ENV])
