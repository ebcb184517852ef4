"""Server-sent events passed through chunk by chunk, as they arrive.

``UsageTap`` watches the stream for the usage event (to count tokens and cost) and, when the
gateway asked for usage on the client's behalf, drops that event again so the client gets
exactly the stream it asked for. ``PassThroughStream`` is the ASGI response: it forwards
chunks without buffering, cancels the upstream request when the client goes away, and ends
a stream whose backend died with an error event that the OpenAI SDK raises.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from backends.errors import SwitchyardError, UpstreamError
from backends.pool import Attempt
from gateway.disconnect import DisconnectWatch

log = logging.getLogger("switchyard.gateway")

MAX_EVENT_BYTES = 1 << 20
STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class UsageTap:
    """Finds ``usage`` in an SSE byte stream; with ``drop=True`` removes the usage-only event."""

    __slots__ = ("_tail", "drop", "usage")

    def __init__(self, drop: bool) -> None:
        self.drop = drop
        self.usage: dict[str, Any] | None = None
        self._tail = b""  # an event not yet complete

    def feed(self, chunk: bytes) -> bytes:
        """Take bytes from upstream; return the bytes to send to the client now."""
        data = self._tail + chunk if self._tail else chunk
        cut = data.rfind(b"\n\n") + 2
        complete, self._tail = (data[:cut], data[cut:]) if cut > 1 else (b"", data)
        if len(self._tail) > MAX_EVENT_BYTES:  # not SSE as we know it: stop holding bytes
            complete, self._tail = data, b""
        if self.drop:
            return self._scan(complete, keep=False) if complete else b""
        if b'"usage"' in complete:
            self._scan(complete, keep=True)
        return chunk

    def flush(self) -> bytes:
        """The end of the stream: whatever was held back, unchanged."""
        rest, self._tail = self._tail, b""
        return rest if self.drop else b""

    def _scan(self, events: bytes, keep: bool) -> bytes:
        if b'"usage"' not in events:
            return events
        *whole, rest = events.split(b"\n\n")
        kept = []
        for event in whole:
            usage = _usage_of(event)
            if usage is not None:
                self.usage = usage
                if not keep:
                    continue
            kept.append(event + b"\n\n")
        kept.append(rest)
        return b"".join(kept)


def _usage_of(event: bytes) -> dict[str, Any] | None:
    """The usage of a usage-only event (``"choices": []``), else None."""
    if b'"usage"' not in event or not event.startswith(b"data:"):
        return None
    try:
        obj = orjson.loads(event[5:])
    except orjson.JSONDecodeError:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("usage"), dict) and not obj.get("choices"):
        usage: dict[str, Any] = obj["usage"]
        return usage
    return None


def error_event(err: SwitchyardError) -> bytes:
    return b"data: " + err.to_json() + b"\n\n"


class PassThroughStream(Response):
    """Streams an upstream ``Attempt`` to the client; ``on_done(status, usage)`` at the end."""

    def __init__(
        self,
        attempt: Attempt,
        tap: UsageTap,
        on_done: Callable[[str, dict[str, Any] | None], None],
    ) -> None:
        self.status_code = attempt.response.status
        self.background = None
        self.raw_headers = list(STREAM_HEADERS)
        self._attempt = attempt
        self._tap = tap
        self._on_done = on_done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watch = DisconnectWatch(receive)
        status = str(self.status_code)
        try:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})  # fmt: skip
            status = await self._pump(send)
        except asyncio.CancelledError:
            if not watch.absorb():
                raise
            status = "client_closed"
            self._attempt.response.abort()
        finally:
            watch.stop()
            self._attempt.finish(ok=status != "upstream_error", served=status == "200")
            self._on_done(status, self._tap.usage)

    async def _pump(self, send: Send) -> str:
        tap = self._tap
        try:
            async for chunk in self._attempt.response.chunks():
                out = tap.feed(chunk)
                if out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
        except UpstreamError as err:
            log.warning("stream from %s broke: %s", self._attempt.endpoint.name, err.message)
            self._attempt.response.abort()
            body = tap.flush() + error_event(err)
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return "upstream_error"
        self._attempt.response.release()
        await send({"type": "http.response.body", "body": tap.flush(), "more_body": False})
        return str(self.status_code)
