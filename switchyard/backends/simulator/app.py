"""The simulator's ASGI application: routing, lifespan and the small endpoints.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``POST /v1/responses`` (over
the chat engine, as vLLM), ``POST /v1/embeddings`` (when the config serves embeddings),
``POST /v1/rerank``, ``/v1/score`` and ``/v1/audio/transcriptions`` (``scoring``, ``audio``),
``GET /v1/models``, ``GET /health``, ``GET /metrics``,
``GET``/``POST /sim/faults`` to read or change the injected faults while running, and
``GET /sim/traces``: the ``traceparent`` headers received lately (``simulator.traces``);
with LoRA on, vLLM's ``POST /v1/load_lora_adapter`` and ``/v1/unload_lora_adapter``
(``simulator.lora``).
Every error is a JSON body in OpenAI's shape; only the injected error fault answers 500.
With ``api_key`` set, a ``/v1`` request without ``Authorization: Bearer <key>`` gets vLLM's
own refusal, 401 ``{"error": "Unauthorized"}``; ``/health`` and ``/metrics`` stay open, as
there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from switchyard.backends.prefix_blocks import BLOCK_TOKENS
from switchyard.backends.simulator.asgi import (
    ClientGone,
    Receive,
    Scope,
    Send,
    read_body,
    send_bytes,
    send_error,
)
from switchyard.backends.simulator.audio import TranscriptionHandler
from switchyard.backends.simulator.config import Faults, SimulatorConfig
from switchyard.backends.simulator.embeddings import EmbeddingsHandler
from switchyard.backends.simulator.engine import Engine
from switchyard.backends.simulator.generation import GenerationHandler
from switchyard.backends.simulator.lora import (
    AdapterSlots,
    LoraCollector,
    LoraRoutes,
    adapter_cards,
)
from switchyard.backends.simulator.metrics import SimulatorMetrics, register_metrics
from switchyard.backends.simulator.prefix_cache import PrefixCache
from switchyard.backends.simulator.protocol import ApiError, parse_json_object
from switchyard.backends.simulator.responses_api import ResponsesHandler
from switchyard.backends.simulator.scoring import ScoringHandler
from switchyard.backends.simulator.traces import ReceivedTraces

Handler = Callable[[Receive, Send, bytes], Awaitable[None]]
_METRICS_TYPE = (b"content-type", CONTENT_TYPE_LATEST.encode())
_TEXT_TYPE = (b"content-type", b"text/plain; charset=utf-8")
_UNAUTHORIZED = b'{"error":"Unauthorized"}'


class SimulatorApp:
    """One simulated vLLM server as an ASGI application.

    ``faults`` may be changed at run time (by the owner or ``POST /sim/faults``); ``engine``
    exposes the batch and queue sizes, e.g. for tests that wait for a slot to be freed.
    """

    def __init__(self, config: SimulatorConfig, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self.faults: Faults = config.faults
        self.metrics = SimulatorMetrics()
        self.adapters = AdapterSlots(config.lora) if config.lora is not None else None
        self.engine = Engine(config.perf, self.metrics, _prefix_cache(config), self.adapters)
        self.registry = registry if registry is not None else CollectorRegistry()
        register_metrics(self.registry, config.model, self.metrics, self.engine)
        if config.lora is not None:
            self.registry.register(LoraCollector(config.lora, self.engine))
        self._generation = GenerationHandler(config, self.engine, self.metrics)
        self._embeddings = EmbeddingsHandler(
            config.model,
            config.seed,
            config.embedding_dim,
            config.perf.max_model_len,
            self.metrics,
        )
        self._models_body = _models_body(config)
        self.traces = ReceivedTraces()
        self._auth = None if config.api_key is None else b"Bearer " + config.api_key.encode()
        self._routes: dict[str, dict[str, Handler]] = {
            "/v1/chat/completions": {"POST": self._chat},
            "/v1/completions": {"POST": self._completions},
            "/v1/responses": {"POST": ResponsesHandler(self._generation)},
            "/v1/models": {"GET": self._models},
            "/health": {"GET": self._health},
            "/metrics": {"GET": self._metrics},
            "/sim/faults": {"GET": self._get_faults, "POST": self._set_faults},
            "/sim/traces": {"GET": self._traces},
        }
        if config.serves_embeddings:
            self._routes["/v1/embeddings"] = {"POST": self._embed}
        self._add_passthrough_routes(config)
        self.lora_routes: LoraRoutes | None = None
        if self.adapters is not None and config.lora is not None and config.lora.runtime_updating:
            self.lora_routes = routes = LoraRoutes(self.adapters)
            self._routes["/v1/load_lora_adapter"] = {"POST": _text_handler(routes.load)}
            self._routes["/v1/unload_lora_adapter"] = {"POST": _text_handler(routes.unload)}

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
            if self._auth is not None and not self._authorized(scope):
                await send_bytes(send, 401, _UNAUTHORIZED)
                return
            if handler is None:
                raise ApiError(
                    405, f"method {scope['method']} not allowed", code="method_not_allowed"
                )
            body = b""
            if scope["method"] == "POST":
                self.traces.note(scope)
                body = await read_body(receive)
            await handler(receive, send, body)
        except ApiError as error:
            await send_error(send, error)
        except ClientGone:
            return

    def _authorized(self, scope: Scope) -> bool:
        """vLLM's --api-key check: only /v1 paths need the key."""
        if not scope["path"].startswith("/v1"):
            return True
        return any(n == b"authorization" and v == self._auth for n, v in scope["headers"])

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

    def _add_passthrough_routes(self, config: SimulatorConfig) -> None:
        """Rerank, score and transcriptions, at vLLM's paths (the gateway decides which
        models may be asked for them, by their capabilities)."""
        scoring = ScoringHandler(config.model, config.seed, config.perf.max_model_len,
                                 self.metrics)  # fmt: skip
        audio = TranscriptionHandler(config.model, config.seed)
        for path, respond in (("/v1/rerank", scoring.rerank), ("/v1/score", scoring.score),
                              ("/v1/audio/transcriptions", audio.respond)):  # fmt: skip
            self._routes[path] = {"POST": _json_handler(respond)}

    async def _models(self, receive: Receive, send: Send, body: bytes) -> None:
        if self.adapters is None:
            await send_bytes(send, 200, self._models_body)
            return
        listed = orjson.loads(self._models_body)
        listed["data"] += adapter_cards(self.adapters, self.config.model, int(time.time()))
        await send_bytes(send, 200, orjson.dumps(listed))

    async def _health(self, receive: Receive, send: Send, body: bytes) -> None:
        await send_bytes(send, 200, b"")

    async def _metrics(self, receive: Receive, send: Send, body: bytes) -> None:
        await send_bytes(send, 200, generate_latest(self.registry), _METRICS_TYPE)

    async def _traces(self, receive: Receive, send: Send, body: bytes) -> None:
        await send_bytes(send, 200, self.traces.body())

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


def _json_handler(respond: Callable[[bytes], bytes]) -> Handler:
    async def handle(receive: Receive, send: Send, body: bytes) -> None:
        await send_bytes(send, 200, respond(body))

    return handle


def _text_handler(respond: Callable[[bytes], Awaitable[bytes]]) -> Handler:
    async def handle(receive: Receive, send: Send, body: bytes) -> None:
        await send_bytes(send, 200, await respond(body), _TEXT_TYPE)

    return handle


def _prefix_cache(config: SimulatorConfig) -> PrefixCache | None:
    if not config.prefix_caching:
        return None
    return PrefixCache(max(config.perf.kv_cache_tokens // BLOCK_TOKENS, 1), BLOCK_TOKENS)


def create_simulator_app(
    config: SimulatorConfig, registry: CollectorRegistry | None = None
) -> SimulatorApp:
    """A simulated vLLM server; its metrics go to ``registry`` (a fresh one if None)."""
    return SimulatorApp(config, registry)
