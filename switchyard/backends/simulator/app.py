"""The simulator's ASGI application: routing, lifespan and the small endpoints.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``POST /v1/embeddings``
(when the config serves embeddings), ``GET /v1/models``, ``GET /health``, ``GET /metrics``,
and ``GET``/``POST /sim/faults`` to read or change the injected faults while running.
Every error is a JSON body in OpenAI's shape; only the injected error fault answers 500.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from switchyard.backends.simulator.asgi import (
    ClientGone,
    Receive,
    Scope,
    Send,
    read_body,
    send_bytes,
    send_error,
)
from switchyard.backends.simulator.config import Faults, SimulatorConfig
from switchyard.backends.simulator.embeddings import EmbeddingsHandler
from switchyard.backends.simulator.engine import Engine
from switchyard.backends.simulator.generation import GenerationHandler
from switchyard.backends.simulator.metrics import SimulatorMetrics, register_metrics
from switchyard.backends.simulator.protocol import ApiError, parse_json_object

Handler = Callable[[Receive, Send, bytes], Awaitable[None]]
_METRICS_TYPE = (b"content-type", CONTENT_TYPE_LATEST.encode())


class SimulatorApp:
    """One simulated vLLM server as an ASGI application.

    ``faults`` may be changed at run time (by the owner or ``POST /sim/faults``); ``engine``
    exposes the batch and queue sizes, e.g. for tests that wait for a slot to be freed.
    """

    def __init__(self, config: SimulatorConfig, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self.faults: Faults = config.faults
        self.metrics = SimulatorMetrics()
        self.engine = Engine(config.perf, self.metrics)
        self.registry = registry if registry is not None else CollectorRegistry()
        register_metrics(self.registry, config.model, self.metrics, self.engine)
        self._generation = GenerationHandler(config, self.engine, self.metrics)
        self._embeddings = EmbeddingsHandler(
            config.model,
            config.seed,
            config.embedding_dim,
            config.perf.max_model_len,
            self.metrics,
        )
        self._models_body = _models_body(config)
        self._routes: dict[str, dict[str, Handler]] = {
            "/v1/chat/completions": {"POST": self._chat},
            "/v1/completions": {"POST": self._completions},
            "/v1/models": {"GET": self._models},
            "/health": {"GET": self._health},
            "/metrics": {"GET": self._metrics},
            "/sim/faults": {"GET": self._get_faults, "POST": self._set_faults},
        }
        if config.serves_embeddings:
            self._routes["/v1/embeddings"] = {"POST": self._embed}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        # Anything else (websocket) is refused by returning without accepting it.

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        methods = self._routes.get(scope["path"])
        try:
            if methods is None:
                raise ApiError(404, f"no route {scope['path']}", code="not_found")
            handler = methods.get(scope["method"])
            if handler is None:
                raise ApiError(
                    405, f"method {scope['method']} not allowed", code="method_not_allowed"
                )
            body = await read_body(receive) if scope["method"] == "POST" else b""
            await handler(receive, send, body)
        except ApiError as error:
            await send_error(send, error)
        except ClientGone:
            return

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            try:
                message = await receive()
            except asyncio.CancelledError:
                # The server is exiting without a shutdown event (uvicorn's force_exit): the
                # loop goes away with the engine, and re-raising would only log a traceback.
                return
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.engine.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _chat(self, receive: Receive, send: Send, body: bytes) -> None:
        await self._generation(receive, send, body, True)

    async def _completions(self, receive: Receive, send: Send, body: bytes) -> None:
        await self._generation(receive, send, body, False)

    async def _embed(self, receive: Receive, send: Send, body: bytes) -> None:
        await send_bytes(send, 200, self._embeddings.respond(body))

    async def _models(self, receive: Receive, send: Send, body: bytes) -> None:
        await send_bytes(send, 200, self._models_body)

    async def _health(self, receive: Receive, send: Send, body: bytes) -> None:
        await send_bytes(send, 200, b"")

    async def _metrics(self, receive: Receive, send: Send, body: bytes) -> None:
        await send_bytes(send, 200, generate_latest(self.registry), _METRICS_TYPE)

    async def _get_faults(self, receive: Receive, send: Send, body: bytes) -> None:
        await send_bytes(send, 200, orjson.dumps(self.faults.to_dict()))

    async def _set_faults(self, receive: Receive, send: Send, body: bytes) -> None:
        changes = parse_json_object(body)
        try:
            self.faults.update(changes)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        await send_bytes(send, 200, orjson.dumps(self.faults.to_dict()))


def _models_body(config: SimulatorConfig) -> bytes:
    card = {
        "id": config.model,
        "object": "model",
        "created": int(time.time()),
        "owned_by": "vllm",
        "root": config.model,
        "parent": None,
        "max_model_len": config.perf.max_model_len,
        "permission": [],
    }
    return orjson.dumps({"object": "list", "data": [card]})


def create_simulator_app(
    config: SimulatorConfig, registry: CollectorRegistry | None = None
) -> SimulatorApp:
    """A simulated vLLM server; its metrics go to ``registry`` (a fresh one if None)."""
    return SimulatorApp(config, registry)
