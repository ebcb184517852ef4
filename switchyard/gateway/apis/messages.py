"""``POST /v1/messages``: Anthropic's Messages API, for concrete and routed models.

Always translated to chat completions and back (``switchyard.backends.translate.messages``);
every error, the gateway's own and a backend's, is answered in Anthropic's shape:
``{"type": "error", "error": {"type": "invalid_request_error", "message": ...}}``.
"""

from __future__ import annotations

from typing import Any

import orjson
from prometheus_client import Counter

from switchyard.backends.errors import SwitchyardError
from switchyard.backends.translate import Json, TranslationError
from switchyard.backends.translate import messages as translate
from switchyard.backends.translate.messages_stream import MessagesEvents
from switchyard.gateway.apis import (
    EventTranslator,
    Translation,
    Usage,
    chat_payload,
    invalid,
    read_object,
)
from switchyard.gateway.payload import Payload
from switchyard.gateway.settings import Capability, ModelConfig

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["model", "max_tokens", "messages"],
    "properties": {
        "model": {"type": "string", "description": "A model from GET /v1/models, or a router."},
        "max_tokens": {"type": "integer", "minimum": 1, "maximum": 4096},
        "system": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {
                    "role": {"enum": ["user", "assistant"]},
                    "content": {
                        "anyOf": [
                            {"type": "string"},
                            {"type": "array", "items": {"type": "object"}},
                        ]
                    },
                },
            },
        },
        "stream": {"type": "boolean", "default": False},
        "stop_sequences": {"type": "array", "items": {"type": "string"}},
        "tools": {"type": "array", "items": {"type": "object"}},
        "tool_choice": {"type": "object"},
    },
}


class MessagesDialect:
    path = "/v1/messages"
    summary = "Create a message (Anthropic Messages API)"
    schema = SCHEMA

    def __init__(self, requests: Counter) -> None:
        self._refused = requests.labels("messages", "refused")
        self._translated = requests.labels("messages", "translated")

    def parse(self, raw: bytes) -> tuple[Payload, Translation]:
        data, _ = read_object(raw)
        try:
            chat = translate.chat_request(data)
        except TranslationError as err:
            self._refused.inc()
            raise invalid(err) from None
        return chat_payload(data, chat), MessagesTranslation(data, self._translated)

    def error(self, err: SwitchyardError) -> bytes:
        return orjson.dumps(translate.error_body(err.status, err.message))


class MessagesTranslation(Translation):
    def __init__(self, request: Json, translated: Any) -> None:
        self.request = request
        self._translated = translated  # its child of switchyard_api_requests

    def upstream(self, model: ModelConfig, payload: Payload) -> tuple[Capability, Payload]:
        self._translated.inc()
        return Capability.chat, payload

    def answer(self, status: int, body: bytes) -> tuple[bytes, Usage]:
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            answer = None
        if status != 200:  # a backend's refusal, in OpenAI's shape: say it in Anthropic's
            error = answer.get("error") if isinstance(answer, dict) else None
            message = error.get("message") if isinstance(error, dict) else None
            text = message if isinstance(message, str) else body[:300].decode("utf-8", "replace")
            return orjson.dumps(translate.error_body(status, text)), None
        if not isinstance(answer, dict):
            return orjson.dumps(translate.error_body(502, "the backend's answer is not JSON")), None
        usage = answer.get("usage")
        return orjson.dumps(translate.from_chat(answer, self.request)), usage

    def events(self) -> EventTranslator:
        return MessagesEvents(self.request)
