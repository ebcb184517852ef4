"""``POST /v1/responses`` on the simulator, as vLLM serves it: over the chat engine.

The request is translated to chat completions, generated like any chat request (same
latency model, faults and metrics), and the answer or stream translated back as the
Responses API's object or events (``switchyard.backends.translate.responses``). Errors
stay in OpenAI's shape, as vLLM answers them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson

from switchyard.backends.simulator.asgi import Message, Receive, Send
from switchyard.backends.simulator.protocol import ApiError, parse_json_object
from switchyard.backends.translate import Json, TranslationError
from switchyard.backends.translate.responses import chat_request, from_chat
from switchyard.backends.translate.responses_stream import ResponsesEvents

Generate = Callable[[Receive, Send, bytes, bool], Awaitable[None]]


class ResponsesHandler:
    def __init__(self, generate: Generate) -> None:
        self._generate = generate

    async def __call__(self, receive: Receive, send: Send, raw: bytes) -> None:
        request = parse_json_object(raw)
        try:
            chat = chat_request(request)
        except TranslationError as err:
            raise ApiError(400, err.message, param=err.param) from None
        if chat.get("stream") is True:
            chat["stream_options"] = {"include_usage": True}
        await self._generate(receive, _Translating(send, request), orjson.dumps(chat), True)


class _Translating:
    """An ASGI ``send`` that rewrites a 200 chat answer as the Responses API's."""

    def __init__(self, send: Send, request: Json) -> None:
        self._send = send
        self._request = request
        self._start: Message | None = None
        self._events: ResponsesEvents | None = None
        self._body: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            if message["status"] != 200:
                await self._send(message)  # an error: OpenAI's shape already
                return
            self._start = message
            headers = dict(message.get("headers") or ())
            if headers.get(b"content-type", b"").startswith(b"text/event-stream"):
                self._events = ResponsesEvents(self._request)
                await self._send(message)
            return
        if self._start is None:
            await self._send(message)
        elif self._events is not None:
            await self._stream(message)
        else:
            await self._whole(message)

    async def _stream(self, message: Message) -> None:
        assert self._events is not None
        more = message.get("more_body", False)
        body = self._events.feed(message.get("body", b""))
        if not more:
            body += self._events.flush()
        await self._send({"type": "http.response.body", "body": body, "more_body": more})

    async def _whole(self, message: Message) -> None:
        self._body.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        assert self._start is not None
        answer = orjson.dumps(from_chat(orjson.loads(b"".join(self._body)), self._request))
        headers = [(k, v) for k, v in self._start["headers"] if k != b"content-length"]
        headers.append((b"content-length", b"%d" % len(answer)))
        await self._send({**self._start, "headers": headers})
        await self._send({"type": "http.response.body", "body": answer, "more_body": False})
