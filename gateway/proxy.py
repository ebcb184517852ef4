"""The proxied OpenAI endpoints: chat completions, completions and embeddings.

A request is read and checked (``gateway.payload``), sent through the model's endpoint pool
(retries before the first byte happen in ``backends.pool.dispatch``), and answered either
with the backend's body as it came or with a pass-through SSE stream.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from backends.client import UpstreamRequest
from backends.errors import InvalidRequestError, ModelNotFoundError, SwitchyardError
from backends.pool import Attempt, dispatch
from gateway.disconnect import DisconnectWatch
from gateway.metrics import GatewayMetrics
from gateway.openapi import REQUEST_SCHEMAS
from gateway.payload import UPSTREAM_PATH, Payload, parse_payload, read_body, upstream_body
from gateway.settings import Capability, ModelConfig
from gateway.streaming import PassThroughStream, UsageTap
from gateway.upstreams import Upstreams


class Proxy:
    def __init__(self, upstreams: Upstreams, metrics: GatewayMetrics) -> None:
        self.upstreams = upstreams
        self.metrics = metrics
        self.settings = upstreams.settings
        self._models = {m.name: m for m in self.settings.models}

    async def handle(self, request: Request, capability: Capability) -> Response:
        raw = await read_body(request, self.settings.server.max_body_bytes)
        payload = parse_payload(raw, capability)
        model = self._models.get(payload.model)
        if model is None:
            raise ModelNotFoundError(
                f"The model '{payload.model}' does not exist; GET /v1/models lists them",
                param="model",
            )
        if capability not in model.capabilities:
            raise InvalidRequestError(
                f"model '{model.name}' does not serve {capability.value}", param="model"
            )
        return await self._forward(request, model, payload, capability)

    async def _forward(
        self, request: Request, model: ModelConfig, payload: Payload, capability: Capability
    ) -> Response:
        pool = self.upstreams.pools[model.name]
        started = time.perf_counter()
        in_flight = self.metrics.in_flight.labels(model.name)
        in_flight.inc()
        watch = DisconnectWatch(request.receive)
        try:
            attempt = await dispatch(
                pool,
                UpstreamRequest(
                    UPSTREAM_PATH[capability],
                    upstream_body(payload, model.upstream_model or model.name),
                    payload.stream,
                    request.scope["state"].get("request_id", ""),
                ),
                self.upstreams.retry,
                self.metrics,
            )
        except SwitchyardError as err:
            in_flight.dec()
            self._record(model, "-", str(err.status), started, None)
            raise
        except asyncio.CancelledError:
            if not watch.absorb():
                raise
            in_flight.dec()  # the client left; cancelling dispatch dropped the upstream call
            self._record(model, "-", "client_closed", started, None)
            return Response(status_code=499)
        finally:
            watch.stop()
        if payload.stream and attempt.response.status == 200:
            return self._stream(model, payload, attempt, started)
        in_flight.dec()
        resp = attempt.response
        attempt.finish()
        self._record(model, attempt.endpoint.name, str(resp.status), started, resp.body)
        return Response(resp.body, status_code=resp.status, media_type=resp.content_type)

    def _stream(
        self, model: ModelConfig, payload: Payload, attempt: Attempt, started: float
    ) -> Response:
        self.metrics.ttft.labels(model.name).observe(time.perf_counter() - started)
        in_flight = self.metrics.in_flight.labels(model.name)

        def on_done(status: str, usage: dict[str, Any] | None) -> None:
            in_flight.dec()
            self._count(model, attempt.endpoint.name, status, started)
            if usage is not None:
                self._usage(model, usage)

        return PassThroughStream(attempt, UsageTap(drop=not payload.wants_usage), on_done)

    def _record(
        self, model: ModelConfig, endpoint: str, status: str, started: float, body: bytes | None
    ) -> None:
        self._count(model, endpoint, status, started)
        if body and status == "200":
            try:
                usage = orjson.loads(body).get("usage")
            except (orjson.JSONDecodeError, AttributeError):
                return
            if isinstance(usage, dict):
                self._usage(model, usage)

    def _count(self, model: ModelConfig, endpoint: str, status: str, started: float) -> None:
        self.metrics.requests.labels(model.name, endpoint, status).inc()
        self.metrics.duration.labels(model.name).observe(time.perf_counter() - started)

    def _usage(self, model: ModelConfig, usage: dict[str, Any]) -> None:
        prompt = usage.get("prompt_tokens") or 0
        completion = usage.get("completion_tokens") or 0
        if isinstance(prompt, int) and isinstance(completion, int):
            cost = model.cost_usd(prompt, completion)
            self.metrics.usage(model.name, prompt, completion, cost)


def proxy_routes(proxy: Proxy) -> APIRouter:
    routes = APIRouter(prefix="/v1", tags=["openai"])

    def add(path: str, capability: Capability, summary: str) -> None:
        async def endpoint(request: Request) -> Response:
            return await proxy.handle(request, capability)

        routes.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            summary=summary,
            response_class=Response,
            openapi_extra=REQUEST_SCHEMAS[capability],
        )

    add("/chat/completions", Capability.chat, "Create a chat completion (OpenAI-compatible)")
    add("/completions", Capability.completions, "Create a text completion (OpenAI-compatible)")
    add("/embeddings", Capability.embeddings, "Create embeddings (OpenAI-compatible)")
    return routes
