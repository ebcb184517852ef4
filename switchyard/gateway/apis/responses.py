"""``POST /v1/responses``: OpenAI's Responses API, for concrete and routed models.

A model whose ``capabilities`` include ``responses`` (vLLM serves the route) gets the
client's request as it came (its model name and the routing options changed, as for chat);
any other model gets it translated to chat completions, and the answer or stream translated
back (``switchyard.backends.translate.responses``). Errors are OpenAI's shape, as on every
OpenAI route. ``previous_response_id`` is refused with a 400 either way: the gateway stores
no responses, and a backend's own store lives on one replica, which the next request may
not reach.
"""

from __future__ import annotations

from typing import Any

import orjson
from prometheus_client import Counter

from switchyard.backends.errors import SwitchyardError
from switchyard.backends.translate import Json, TranslationError
from switchyard.backends.translate import responses as translate
from switchyard.backends.translate.responses_stream import ResponsesEvents
from switchyard.backends.translate.sse import ChunkReader
from switchyard.gateway.apis import (
    EventTranslator,
    Translation,
    Usage,
    chat_payload,
    invalid,
    read_object,
)
from switchyard.gateway.payload import Payload
from switchyard.gateway.routing_options import OPTIONS_FIELD
from switchyard.gateway.settings import Capability, ModelConfig

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["model", "input"],
    "properties": {
        "model": {"type": "string", "description": "A model from GET /v1/models, or a router."},
        "input": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
        "instructions": {"type": "string"},
        "stream": {"type": "boolean", "default": False},
        "max_output_tokens": {"type": "integer", "minimum": 1, "maximum": 4096},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "tools": {"type": "array", "items": {"type": "object"}},
        "tool_choice": {"anyOf": [{"enum": ["none", "auto", "required"]}, {"type": "object"}]},
    },
}


class ResponsesDialect:
    path = "/v1/responses"
    summary = "Create a model response (OpenAI Responses API)"
    schema = SCHEMA

    def __init__(self, requests: Counter) -> None:
        self._refused = requests.labels("responses", "refused")
        self._served = (requests.labels("responses", "translated"),
                        requests.labels("responses", "native"))  # fmt: skip

    def parse(self, raw: bytes) -> tuple[Payload, Translation]:
        data, _ = read_object(raw)
        try:
            chat = translate.chat_request(data)
        except TranslationError as err:
            self._refused.inc()
            raise invalid(err) from None
        return chat_payload(data, chat), ResponsesTranslation(data, *self._served)

    def error(self, err: SwitchyardError) -> bytes:
        return err.to_json()


class ResponsesTranslation(Translation):
    def __init__(self, request: Json, translated: Any, native: Any) -> None:
        self.request = request
        self.native = False  # passed through to a backend that serves the Responses API
        self._counted = (translated, native)  # the two children of switchyard_api_requests

    def upstream(self, model: ModelConfig, payload: Payload) -> tuple[Capability, Payload]:
        if Capability.responses not in model.capabilities:
            self._counted[0].inc()
            return Capability.chat, payload
        self._counted[1].inc()
        self.native = True
        data = {k: v for k, v in self.request.items() if k != OPTIONS_FIELD}
        data["model"] = payload.model
        return Capability.responses, Payload(
            orjson.dumps(data), data, payload.model, payload.stream, True
        )

    def answer(self, status: int, body: bytes) -> tuple[bytes, Usage]:
        if status != 200:
            return body, None
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body, None
        if not isinstance(answer, dict):
            return body, None
        if self.native:
            return body, translate.chat_usage(answer.get("usage"))
        usage = answer.get("usage")
        return orjson.dumps(translate.from_chat(answer, self.request)), usage

    def events(self) -> EventTranslator:
        return _NativeEvents() if self.native else ResponsesEvents(self.request)


class _NativeEvents:
    """A backend's own Responses stream, passed on as it came; the usage is read from its
    ``response.completed`` (or ``response.incomplete``) event."""

    def __init__(self) -> None:
        self._reader = ChunkReader()
        self.usage: Usage = None

    def feed(self, chunk: bytes) -> bytes:
        for obj in self._reader.feed(chunk):
            response = obj.get("response")
            if isinstance(response, dict) and response.get("usage"):
                self.usage = translate.chat_usage(response["usage"])
        return chunk

    def flush(self) -> bytes:
        return b""

    def fail(self, code: str, message: str) -> bytes:
        error = {"type": "error", "code": code, "message": message, "param": None}
        return b"event: error\ndata: " + orjson.dumps(error) + b"\n\n"
