"""Reading and checking an OpenAI request body on the hot path.

Bodies are parsed once with orjson and checked by hand for the few fields the gateway itself
needs (``model``, ``stream``, the prompt field); everything else is the backend's to judge
and passes through untouched. No pydantic here: it would cost more than the proxying.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.types import Receive

from switchyard.backends.errors import SwitchyardError
from switchyard.backends.multipart import Form
from switchyard.gateway.errors import (
    InvalidRequestError,
    MalformedJSONError,
    ModelNotFoundError,
    PayloadTooLargeError,
)
from switchyard.gateway.settings import Capability, ModelConfig

# The field that carries the prompt, by capability, and the upstream path.
PROMPT_FIELD = {
    Capability.chat: "messages",
    Capability.completions: "prompt",
    Capability.embeddings: "input",
}
UPSTREAM_PATH = {
    Capability.chat: "/chat/completions",
    Capability.completions: "/completions",
    Capability.embeddings: "/embeddings",
    Capability.responses: "/responses",
    Capability.rerank: "/rerank",
    Capability.score: "/score",
    Capability.transcriptions: "/audio/transcriptions",
}


@dataclass(slots=True)
class Payload:
    """A parsed request body: the raw bytes plus the fields the gateway acts on."""

    raw: bytes
    data: dict[str, Any]
    model: str
    stream: bool
    wants_usage: bool  # the client asked for stream_options.include_usage
    form: Form | None = None  # a multipart body (switchyard.gateway.passthrough)


class ClientGone(Exception):
    """The client disconnected before its request body was read."""


async def read_body(receive: Receive, headers: list[tuple[bytes, bytes]], limit: int) -> bytes:
    """The whole request body (raw ASGI); 413 past ``limit`` bytes, ``ClientGone`` on a
    disconnect. A declared ``content-length`` over the limit is refused before reading."""
    for name, value in headers:
        if name == b"content-length":
            if value.isdigit() and int(value) > limit:
                raise PayloadTooLargeError(_too_large(int(value), limit))
            break
    message = await receive()
    if message["type"] != "http.request":
        raise ClientGone
    body: bytes = message.get("body", b"")
    size = len(body)
    if not message.get("more_body", False) and size <= limit:
        return body  # the usual case: one message holds the whole body
    parts = [body]
    while True:
        if size > limit:
            raise PayloadTooLargeError(_too_large(size, limit))
        if not message.get("more_body", False):
            return b"".join(parts)
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGone
        part = message.get("body", b"")
        size += len(part)
        parts.append(part)


def _too_large(size: int, limit: int) -> str:
    return f"request body of {size} bytes is over the limit of {limit} bytes"


def read_object(raw: bytes) -> tuple[dict[str, Any], bool]:
    """The body as a JSON object with a ``model`` string, and whether it asks for a stream
    (``stream`` must be a boolean if given); the gateway's 400s otherwise (every JSON route
    reads its body this way)."""
    if not raw:
        raise MalformedJSONError("request body is empty; expected a JSON object")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise MalformedJSONError(f"request body is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("request body must be a JSON object")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("'model' is required and must be a string", param="model")
    stream = data.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequestError("'stream' must be a boolean", param="stream")
    return data, stream is True


def parse_payload(raw: bytes, capability: Capability) -> Payload:
    data, stream = read_object(raw)
    field = PROMPT_FIELD[capability]
    if field not in data:
        raise InvalidRequestError(f"'{field}' is required", param=field)
    if capability is Capability.chat and not (isinstance(data[field], list) and data[field]):
        raise InvalidRequestError("'messages' must be a non-empty array", param="messages")
    if stream and capability is Capability.embeddings:
        raise InvalidRequestError("embeddings cannot be streamed", param="stream")
    options = data.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequestError("'stream_options' must be an object", param="stream_options")
    wants_usage = bool(options and options.get("include_usage") is True)
    return Payload(raw, data, data["model"], stream, wants_usage)


def upstream_body(payload: Payload, upstream_model: str) -> bytes:
    """The body to send: the client's bytes untouched unless the gateway must change them.

    Two changes: the backend's own model name, and ``include_usage`` on streams so the
    gateway can count tokens and cost (the usage event is then dropped again, see
    ``switchyard.gateway.streaming``).
    """
    rename = upstream_model != payload.model
    need_usage = payload.stream and not payload.wants_usage
    if not (rename or need_usage):
        return payload.raw
    if payload.form is not None:  # a multipart form: only its model field changes
        return payload.form.replaced(payload.raw, "model", upstream_model)
    if not rename and "stream_options" not in payload.data:
        # The object has a "model" member, so the new one goes in after a comma; splicing
        # costs nothing like a re-serialisation of a long prompt.
        raw = payload.raw
        end = raw.rstrip().rfind(b"}")
        return raw[:end] + b',"stream_options":{"include_usage":true}' + raw[end:]
    data = dict(payload.data)
    if rename:
        data["model"] = upstream_model
    if need_usage:
        data["stream_options"] = {**(data.get("stream_options") or {}), "include_usage": True}
    return orjson.dumps(data)


def routed_payload(payload: Payload, model: str, drop: str) -> Payload:
    """The payload as if the client had asked for ``model``, without the ``drop`` field."""
    data = {k: v for k, v in payload.data.items() if k != drop}
    data["model"] = model
    return Payload(orjson.dumps(data), data, model, payload.stream, payload.wants_usage)


def unservable(name: str, model: ModelConfig | None, cap: Capability) -> SwitchyardError:
    """The error for a request that ``model`` cannot serve: 404 when no model ``name`` is
    configured, 400 when it does not serve ``cap``."""
    if model is None:
        return ModelNotFoundError(
            f"The model '{name}' does not exist; GET /v1/models lists them", param="model"
        )
    return InvalidRequestError(f"model '{model.name}' does not serve {cap.value}", param="model")
