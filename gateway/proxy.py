"""The proxied OpenAI endpoints: chat completions, completions and embeddings.

A request is read and checked (``gateway.payload``), sent through the model's endpoint pool
(retries before the first byte happen in ``backends.pool.dispatch``), and answered either
with the backend's body as it came or with a pass-through SSE stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from backends.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    OverloadedError,
    PermissionDeniedError,
    SwitchyardError,
)
from backends.pool import Attempt
from gateway.disconnect import DisconnectWatch
from gateway.load import dispatch_chain, within_targets
from gateway.metrics import GatewayMetrics
from gateway.openapi import REQUEST_SCHEMAS
from gateway.outcomes import OutcomeRecord, Route
from gateway.payload import (
    PROMPT_FIELD,
    Payload,
    parse_payload,
    read_body,
    routed_payload,
)
from gateway.routing import OPTIONS_FIELD, RouterService, parse_options
from gateway.settings import Capability, ModelConfig
from gateway.streaming import PassThroughStream, UsageTap
from gateway.tenancy.guard import Guard, Ticket
from gateway.tenancy.keys import KeyRecord
from gateway.upstreams import Upstreams


class Proxy:
    def __init__(
        self,
        upstreams: Upstreams,
        guard: Guard,
        metrics: GatewayMetrics,
        routing: RouterService | None = None,
    ) -> None:
        self.upstreams = upstreams
        self.guard = guard
        self.metrics = metrics
        self.routing = routing

    async def handle(self, request: Request, capability: Capability) -> Response:
        key = await self.guard.authenticate(request.scope["headers"])
        raw = await read_body(request, self.upstreams.settings.server.max_body_bytes)
        payload = parse_payload(raw, capability)
        route = None
        if self.routing is not None and (router := self.routing.resolve(payload.model)):
            route = await self._route(request, key, router.name, payload, capability)
            payload = routed_payload(payload, route.model, OPTIONS_FIELD)
        elif OPTIONS_FIELD in payload.data:  # routing options mean nothing to a backend
            payload = routed_payload(payload, payload.model, OPTIONS_FIELD)
        model = self.upstreams.models.get(payload.model)
        try:
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
        except SwitchyardError as err:
            if route is not None:
                self._outcome(route, route.model, "-", str(err.status), None, None)
            raise
        may_use = key.allows if key is not None else _any
        response = await self._forward(request, model, payload, capability, ticket, route, may_use)
        if ticket is not None:
            response.raw_headers.extend(ticket.headers)
        if route is not None:
            response.raw_headers.extend(
                [
                    (b"x-switchyard-model", route.model.encode()),
                    (b"x-switchyard-router", route.router.encode()),
                    (b"x-switchyard-decision-id", route.decision_id.encode()),
                ]
            )
        return response

    async def _route(
        self,
        request: Request,
        key: KeyRecord | None,
        name: str,
        payload: Payload,
        capability: Capability,
    ) -> Route:
        """Choose the model for a request to router ``name``."""
        routing = self.routing
        assert routing is not None
        if capability is Capability.embeddings:
            raise InvalidRequestError(
                f"'{payload.model}' is a routed model; embeddings need a concrete model",
                param="model",
            )
        if key is not None and not any(map(key.allows, routing.candidates[name])):
            raise PermissionDeniedError(
                f"this key may use none of the models of router '{name}'",
                param="model",
                code="model_not_allowed",
            )
        options = parse_options(payload.data, request.headers)
        allowed = routing.allowed(name, options, key.allows if key is not None else _any)
        prompt = payload.data[PROMPT_FIELD[capability]]
        if capability is Capability.completions and isinstance(prompt, list):
            prompt = prompt[0] if prompt else ""
        if not isinstance(prompt, str | list):
            raise InvalidRequestError("the prompt cannot be routed", param="prompt")
        # Read on the event loop; the decision's worker thread never touches the pools.
        delays = self.upstreams.expected_delays(allowed)
        max_ttft = None if options.max_ttft_ms is None else options.max_ttft_ms / 1e3
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
        request: Request,
        model: ModelConfig,
        payload: Payload,
        capability: Capability,
        ticket: Ticket | None,
        route: Route | None,
        may_use: Callable[[str], bool],
    ) -> Response:
        if model.name not in self.upstreams.pools:  # removed by a config reload a moment ago
            raise ModelNotFoundError(f"The model '{model.name}' is no longer served", param="model")
        started = time.perf_counter()
        in_flight = self.metrics.in_flight.labels(model.name)
        in_flight.inc()
        watch = DisconnectWatch(request.receive)
        asked = model
        try:
            model, attempt = await dispatch_chain(
                self.upstreams,
                self.metrics,
                model,
                payload,
                capability,
                request.scope["state"].get("request_id", ""),
                may_use,
            )
        except SwitchyardError as err:
            in_flight.dec()
            self._record(model, "-", str(err.status), started, None, ticket, route)
            raise
        except asyncio.CancelledError:
            if not watch.absorb():
                raise
            in_flight.dec()  # the client left; cancelling dispatch dropped the upstream call
            self._record(model, "-", "client_closed", started, None, ticket, route)
            return Response(status_code=499)
        finally:
            watch.stop()
        if model is not asked:  # a fallback answered: count it there, and say so
            in_flight.dec()
            self.metrics.in_flight.labels(model.name).inc()
        response = self._respond(model, payload, attempt, started, ticket, route)
        if model is not asked:
            response.raw_headers.append((b"x-switchyard-fallback", model.name.encode()))
        return response

    def _respond(
        self,
        model: ModelConfig,
        payload: Payload,
        attempt: Attempt,
        started: float,
        ticket: Ticket | None,
        route: Route | None,
    ) -> Response:
        if payload.stream and attempt.response.status == 200:
            return self._stream(model, payload, attempt, started, ticket, route)
        self.metrics.in_flight.labels(model.name).dec()
        resp = attempt.response
        attempt.finish()
        self._record(
            model, attempt.endpoint.name, str(resp.status), started, resp.body, ticket, route
        )
        return Response(resp.body, status_code=resp.status, media_type=resp.content_type)

    def _stream(
        self,
        model: ModelConfig,
        payload: Payload,
        attempt: Attempt,
        started: float,
        ticket: Ticket | None,
        route: Route | None,
    ) -> Response:
        first = time.perf_counter()
        self.metrics.ttft.labels(model.name).observe(first - started)
        in_flight = self.metrics.in_flight.labels(model.name)

        def on_done(status: str, usage: dict[str, Any] | None) -> None:
            in_flight.dec()
            self._count(model, attempt.endpoint.name, status, started)
            spent = self._settle(model, usage, ticket)
            if route is not None:
                ttft = first - route.started
                self._outcome(route, model.name, attempt.endpoint.name, status, spent, ttft)

        return PassThroughStream(attempt, UsageTap(drop=not payload.wants_usage), on_done)

    def _record(
        self,
        model: ModelConfig,
        endpoint: str,
        status: str,
        started: float,
        body: bytes | None,
        ticket: Ticket | None,
        route: Route | None = None,
    ) -> None:
        self._count(model, endpoint, status, started)
        usage = None
        if body and status == "200":
            try:
                usage = orjson.loads(body).get("usage")
            except (orjson.JSONDecodeError, AttributeError):
                usage = None
        spent = self._settle(model, usage if isinstance(usage, dict) else None, ticket)
        if route is not None:
            self._outcome(route, model.name, endpoint, status, spent, None)

    def _count(self, model: ModelConfig, endpoint: str, status: str, started: float) -> None:
        self.metrics.requests.labels(model.name, endpoint, status).inc()
        self.metrics.duration.labels(model.name).observe(time.perf_counter() - started)

    def _settle(
        self, model: ModelConfig, usage: dict[str, Any] | None, ticket: Ticket | None
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
            self.metrics.usage(model.name, prompt, completion, cost)
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
        prompt, completion, cost = spent if spent is not None else (0, 0, None)
        self.routing.finish(
            route,
            OutcomeRecord(
                decision_id=route.decision_id,
                router=route.router,
                candidates={
                    m: {"quality": q, "cost": route.cost[m]} for m, q in route.quality.items()
                },
                model=served,
                endpoint=endpoint,
                status=status,
                prompt_tokens=prompt,
                completion_tokens=completion,
                cost_usd=cost,
                latency_s=time.perf_counter() - route.started,
                ttft_s=ttft,
                cost_weight=route.cost_weight,
                time=time.time(),
            ),
        )


def _any(model: str) -> bool:
    return True


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
