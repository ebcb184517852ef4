"""Other APIs served over the proxy: a ``Dialect`` per route, a ``Translation`` per request.

``POST /v1/responses`` (OpenAI Responses) and ``POST /v1/messages`` (Anthropic Messages) go
through ``Proxy.serve`` like the chat route: the same authentication, routing, admission,
dispatch with retries and fallbacks, metrics and outcome records. A dialect changes four
things only, each at one hook in the proxy:

* reading the body: ``Dialect.parse`` gives the request as a chat completions ``Payload``
  (routing reads its messages) and the request's ``Translation``;
* the model is known: ``Translation.upstream`` may pass the request through in its own API
  to a model that serves it (``Capability.responses``) instead of translating it;
* answering: ``Translation.answer`` turns the backend's JSON into the API's answer (and its
  usage into chat usage, which the gateway counts and bills); ``Translation.relay`` streams
  the backend's events as the API's events;
* errors: ``Dialect.error`` renders any error in the API's shape.

The three pass-through routes never reach this package (``GatewayAPI`` looks them up first).
The translations themselves are pure and live in ``switchyard.backends.translate``.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import orjson
from prometheus_client import CollectorRegistry, Counter
from starlette.types import Send

from switchyard.backends.errors import SwitchyardError, UpstreamError
from switchyard.backends.pool import Attempt
from switchyard.backends.translate import Json, TranslationError
from switchyard.gateway.errors import InvalidRequestError
from switchyard.gateway.payload import Payload, read_object
from switchyard.gateway.routing_options import OPTIONS_FIELD
from switchyard.gateway.settings import Capability, ModelConfig

log = logging.getLogger("switchyard.gateway")

Usage = dict[str, Any] | None


class EventTranslator(Protocol):
    """A backend's SSE stream as the client's API's events (see ``backends.translate``)."""

    usage: Usage

    def feed(self, chunk: bytes) -> bytes: ...

    def flush(self) -> bytes: ...

    def fail(self, code: str, message: str) -> bytes: ...


class Translation:
    """One request served in another API; subclasses translate answers and streams."""

    usage: Usage = None  # chat-style usage of a streamed answer, once seen

    def upstream(self, model: ModelConfig, payload: Payload) -> tuple[Capability, Payload]:
        """What to ask ``model`` for: chat completions (``payload``), unless overridden."""
        return Capability.chat, payload

    def answer(self, status: int, body: bytes) -> tuple[bytes, Usage]:
        raise NotImplementedError

    def events(self) -> EventTranslator:
        raise NotImplementedError

    def failed(self, err: SwitchyardError) -> bytes:
        """The API's error event(s) that end a stream whose response has started."""
        return self.events().fail(err.code or err.type, err.message)

    async def relay(
        self, send: Send, attempt: Attempt, head: list[tuple[bytes, bytes]] | None
    ) -> str:
        """Stream ``attempt`` to the client through ``events()``; the status to record."""
        events = self.events()
        try:
            return await relay_events(send, attempt, events, head)
        finally:
            self.usage = events.usage


class Dialect(Protocol):
    """One API's route: how its requests are read and its errors written."""

    path: str
    summary: str
    schema: dict[str, Any]  # the request body's JSON schema, for the OpenAPI document

    def parse(self, raw: bytes) -> tuple[Payload, Translation]: ...

    def error(self, err: SwitchyardError) -> bytes: ...


def api_requests(registry: CollectorRegistry) -> Counter:
    """``switchyard_api_requests_total{api, outcome}``: each request of another API, by how
    it was served: ``translated`` (to chat completions), ``native`` (passed through to a
    backend that serves the API) or ``refused`` (a 400: it cannot be translated)."""
    return Counter(
        "switchyard_api_requests",
        "Requests to the Responses and Messages APIs, by how they were served.",
        ["api", "outcome"],
        registry=registry,
    )


def chat_payload(data: Json, chat: Json) -> Payload:
    """The chat ``Payload`` of a translated request (``data``: the client's body). Streams
    ask for usage themselves: the translated events need it."""
    if OPTIONS_FIELD in data:
        chat[OPTIONS_FIELD] = data[OPTIONS_FIELD]
    stream = bool(chat.get("stream"))
    if stream:
        chat["stream_options"] = {"include_usage": True}
    return Payload(orjson.dumps(chat), chat, data["model"], stream, True)


def invalid(err: TranslationError) -> InvalidRequestError:
    return InvalidRequestError(err.message, param=err.param)


async def relay_events(
    send: Send,
    attempt: Attempt,
    events: EventTranslator,
    head: list[tuple[bytes, bytes]] | None,
) -> str:
    """``switchyard.gateway.streaming.relay`` for a translated stream: every chunk goes
    through ``events``; a backend that breaks off ends the stream with the API's error event."""
    status = attempt.response.status
    if head is not None:
        await send({"type": "http.response.start", "status": status, "headers": head})
    try:
        async for chunk in attempt.response.chunks():
            out = events.feed(chunk)
            if out:
                await send({"type": "http.response.body", "body": out, "more_body": True})
    except UpstreamError as err:
        log.warning("stream from %s broke: %s", attempt.endpoint.name, err.message)
        attempt.response.abort()
        body = events.fail(err.code or err.type, err.message)
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return "upstream_error"
    attempt.response.release()
    await send({"type": "http.response.body", "body": events.flush(), "more_body": False})
    return str(status)


__all__ = [
    "Dialect",
    "EventTranslator",
    "Translation",
    "api_requests",
    "chat_payload",
    "invalid",
    "read_object",
    "relay_events",
]
