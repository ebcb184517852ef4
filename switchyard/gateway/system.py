"""Routes that are not proxied: the model list, liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import time

import orjson
from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.responses import Response

from switchyard.gateway.connections import STATS_KEY
from switchyard.gateway.errors import ModelNotFoundError
from switchyard.gateway.routing import RouterService
from switchyard.gateway.settings import ModelConfig
from switchyard.gateway.tenancy.guard import Guard
from switchyard.gateway.upstreams import Upstreams


def _model_card(name: str, created: int, max_context: int) -> dict[str, object]:
    return {
        "id": name,
        "object": "model",
        "created": created,
        "owned_by": "switchyard",
        "max_model_len": max_context,
    }


def _metadata(model: ModelConfig) -> dict[str, object]:
    """What requests may constrain on (``switchyard.gateway.constraints``), where given."""
    given = {"params_b": model.params_b, "released": model.released}
    card: dict[str, object] = {k: v for k, v in given.items() if v is not None}
    card["capabilities"] = [c.value for c in model.capabilities]
    if model.tags:
        card["tags"] = list(model.tags)
    return card


def _router_card(
    name: str, created: int, candidates: tuple[str, ...], upstreams: Upstreams
) -> dict[str, object]:
    contexts = [m.max_context for c in candidates if (m := upstreams.models.get(c))]
    return {
        "id": name,
        "object": "model",
        "created": created,
        "owned_by": "switchyard-router",
        "max_model_len": min(contexts, default=0),
        "candidates": list(candidates),
    }


def system_routes(
    upstreams: Upstreams,
    guard: Guard,
    registry: CollectorRegistry,
    routing: RouterService | None = None,
) -> APIRouter:
    routes = APIRouter()
    created = int(time.time())

    async def visible(request: Request) -> dict[str, dict[str, object]]:
        """The models the caller may use (all of them when auth is off), routers last."""
        key = await guard.authenticate(request.scope["headers"])
        cards = {
            m.name: _model_card(m.name, created, m.max_context) | _metadata(m)
            for m in upstreams.models.values()
            if key is None or key.allows(m.name)
        }
        for name, candidates in routing.cards() if routing is not None else ():
            if key is None or any(map(key.allows, candidates)):
                cards[name] = _router_card(name, created, candidates, upstreams)
        return cards

    @routes.get("/v1/models", tags=["openai"], summary="List the models this gateway serves")
    async def list_models(request: Request) -> Response:
        cards = list((await visible(request)).values())
        body = orjson.dumps({"object": "list", "data": cards})
        return Response(body, media_type="application/json")

    @routes.get("/v1/models/{model}", tags=["openai"], summary="Describe one model")
    async def get_model(model: str, request: Request) -> Response:
        cards = await visible(request)
        if model not in cards:
            raise ModelNotFoundError(f"The model '{model}' does not exist", param="model")
        return Response(orjson.dumps(cards[model]), media_type="application/json")

    @routes.get("/healthz", tags=["ops"], summary="Liveness: the process answers")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    @routes.get("/readyz", tags=["ops"], summary="Readiness: every model has a usable endpoint")
    async def readyz() -> Response:
        down = [name for name, pool in upstreams.pools.items() if not pool.healthy()]
        ready = upstreams.started and not down
        body = {"status": "ready" if ready else "not_ready", "unhealthy_models": down}
        return Response(orjson.dumps(body), 200 if ready else 503, media_type="application/json")

    @routes.get("/metrics", tags=["ops"], summary="Prometheus metrics")
    async def metrics(request: Request) -> Response:
        stats = request.scope.get("state", {}).get(STATS_KEY)
        if stats is not None:  # the HTTP server's counts (gateway.connections)
            guard.metrics.watch_connections(stats)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return routes
