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
from gateway.tenancy.guard import Guard, Ticket
from gateway.upstreams import Upstreams


class Proxy:
    def __init__(self, upstreams: Upstreams, guard: Guard, metrics: GatewayMetrics) -> None:
        self.upstreams = upstreams
        self.guard = guard
        self.metrics = metrics

    async def handle(self, request: Request, capability: Capability) -> Response:
        key = await self.guard.authenticate(request.scope["headers"])
        raw = await read_body(request, self.upstreams.settings.server.max_body_bytes)
        payload = parse_payload(raw, capability)
        model = self.upstreams.models.get(payload.model)
        if model is None:
            raise ModelNotFoundError(
                f"The model '{payload.model}' does not exist; GET /v1/models lists them",
                param="model",
            )
        if capability not in model.capabilities:
            raise InvalidRequestError(
                f"model '{model.name}' does not serve {capability.value}", param="model"
            )
        self.guard.check_model(key, model.name)
        ticket = await self.guard.admit(key, model, payload.data)
        response = await self._forward(request, model, payload, capability, ticket)
        if ticket is not None:
            response.raw_headers.extend(ticket.headers)
        return response

    async def _forward(
        self,
        request: Request,
        model: ModelConfig,
        payload: Payload,
        capability: Capability,
        ticket: Ticket | None,
    ) -> Response:
        pool = self.upstreams.pools.get(model.name)
        if pool is None:  # removed by a config reload a moment ago
            raise ModelNotFoundError(f"The model '{model.name}' is no longer served", param="model")
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
            self._record(model, "-", str(err.status), started, None, ticket)
            raise
        except asyncio.CancelledError:
            if not watch.absorb():
                raise
            in_flight.dec()  # the client left; cancelling dispatch dropped the upstream call
            self._record(model, "-", "client_closed", started, None, ticket)
            return Response(status_code=499)
        finally:
            watch.stop()
        if payload.stream and attempt.response.status == 200:
            return self._stream(model, payload, attempt, started, ticket)
        in_flight.dec()
        resp = attempt.response
        attempt.finish()
        self._record(model, attempt.endpoint.name, str(resp.status), started, resp.body, ticket)
        return Response(resp.body, status_code=resp.status, media_type=resp.content_type)

    def _stream(
        self,
        model: ModelConfig,
        payload: Payload,
        attempt: Attempt,
        started: float,
        ticket: Ticket | None,
    ) -> Response:
        self.metrics.ttft.labels(model.name).observe(time.perf_counter() - started)
        in_flight = self.metrics.in_flight.labels(model.name)

        def on_done(status: str, usage: dict[str, Any] | None) -> None:
            in_flight.dec()
            self._count(model, attempt.endpoint.name, status, started)
            self._settle(model, usage, ticket)

        return PassThroughStream(attempt, UsageTap(drop=not payload.wants_usage), on_done)

    def _record(
        self,
        model: ModelConfig,
        endpoint: str,
        status: str,
        started: float,
        body: bytes | None,
        ticket: Ticket | None,
    ) -> None:
        self._count(model, endpoint, status, started)
        usage = None
        if body and status == "200":
            try:
                usage = orjson.loads(body).get("usage")
            except (orjson.JSONDecodeError, AttributeError):
                usage = None
        self._settle(model, usage if isinstance(usage, dict) else None, ticket)

    def _count(self, model: ModelConfig, endpoint: str, status: str, started: float) -> None:
        self.metrics.requests.labels(model.name, endpoint, status).inc()
        self.metrics.duration.labels(model.name).observe(time.perf_counter() - started)

    def _settle(
        self, model: ModelConfig, usage: dict[str, Any] | None, ticket: Ticket | None
    ) -> None:
        """Count tokens and cost; settle the request's limits on them (zero if unknown)."""
        prompt = completion = 0
        if usage is not None:
            prompt = usage.get("prompt_tokens") or 0
            completion = usage.get("completion_tokens") or 0
            if not (isinstance(prompt, int) and isinstance(completion, int)):
                prompt = completion = 0
        cost = model.cost_usd(prompt, completion)
        if usage is not None:
            self.metrics.usage(model.name, prompt, completion, cost)
        self.guard.settle(ticket, prompt + completion, cost)


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
