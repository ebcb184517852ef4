"""``create_app(settings)``: the one place the gateway is assembled."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from gateway.errors import install_error_handlers
from gateway.feedback import feedback_routes
from gateway.logs import configure_logging
from gateway.metrics import GatewayMetrics
from gateway.proxy import Proxy, proxy_routes
from gateway.requestid import RequestIdMiddleware
from gateway.routing import RouterService
from gateway.settings import Settings, load_settings
from gateway.system import system_routes
from gateway.tenancy.admin import admin_routes
from gateway.tenancy.guard import Guard
from gateway.tenancy.store import open_store
from gateway.upstreams import Upstreams

CONFIG_ENV = "SWITCHYARD_CONFIG_FILE"  # hands the config path to uvicorn worker processes


def create_app(
    settings: Settings,
    registry: CollectorRegistry | None = None,
    config_path: str | Path | None = None,
) -> FastAPI:
    """``config_path``: the file ``settings`` came from, re-read by POST /admin/config/reload."""
    registry = registry if registry is not None else CollectorRegistry()
    metrics = GatewayMetrics(registry)
    upstreams = Upstreams(settings)
    metrics.watch_breakers(lambda: upstreams.pools)
    state = settings.state
    store = open_store(state.redis_url, state.key_prefix, state.timeout_s)
    guard = Guard(settings.auth, store, metrics)
    routing = RouterService(settings, metrics) if settings.routers else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if routing is not None:  # loads the embedder and the routers (ONNX Runtime, numpy)
            await routing.start()
        await upstreams.start()
        # Startup objects (FastAPI, pydantic, routes) live for good: moving them out of the
        # collector's view cut full-collection time ~10x under load (bench/gc_probe.py).
        gc.freeze()
        try:
            yield
        finally:
            await guard.drain()
            await store.close()
            await upstreams.close()
            if routing is not None:
                await routing.close()

    app = FastAPI(
        title="Switchyard",
        version=version("switchyard"),
        description="OpenAI-compatible LLM gateway.",
        lifespan=lifespan,
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
    app.include_router(proxy_routes(Proxy(upstreams, guard, metrics, routing)))
    app.include_router(feedback_routes(routing, guard))
    app.include_router(system_routes(upstreams, guard, registry, routing))
    config_file = Path(config_path) if config_path else None
    app.include_router(admin_routes(upstreams, guard, config_file, routing))
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` worker processes: reads the config file again."""
    settings = load_settings(os.environ[CONFIG_ENV])
    configure_logging(settings.server.log_level)
    return create_app(settings, config_path=os.environ[CONFIG_ENV])
