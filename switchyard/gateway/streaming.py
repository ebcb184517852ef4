"""Server-sent events passed through chunk by chunk, as they arrive.

``UsageTap`` watches the stream for the usage event (to count tokens and cost) and, when the
gateway asked for usage on the client's behalf, drops that event again so the client gets
exactly the stream it asked for. ``relay`` sends an upstream stream to the client without
buffering, and ends a stream whose backend died with an error event that the OpenAI SDK
raises. Per chunk, a stream costs a suffix test and a substring search, two more where
every chunk says ``"usage": null``, and a parse only for the event that holds usage.

``KeepAlive`` covers the wait for a stream's first token: after ``upstream.stream_keepalive_s``
without it, the response starts (200, SSE headers) and an SSE comment (``: keep-alive``)
follows every interval, which clients ignore and which keeps a load balancer's idle timeout
from cutting a slow first token. Retries on other replicas go on meanwhile (a comment
carries no data); but once the response has started, a request that then fails can no
longer get an error status: it ends with an error event, like a stream cut mid-way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson
from starlette.types import Send

from switchyard.backends.client import STREAM_ERRORS, broken_stream
from switchyard.backends.errors import SwitchyardError
from switchyard.backends.pool import Attempt
from switchyard.gateway.disconnect import DisconnectWatch
from switchyard.gateway.http_cycle import HOLD, chunk_writer

log = logging.getLogger("switchyard.gateway")

MAX_EVENT_BYTES = 1 << 20
KEEPALIVE_EVENT = b": keep-alive\n\n"
STREAM_HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
)


def _may_hold_usage(data: bytes) -> bool:
    """Whether ``data`` may hold a usage object (``"usage": null`` on every chunk does not)."""
    return data.find(b'"usage":{') >= 0 or data.find(b'"usage": {') >= 0


class UsageTap:
    """Finds ``usage`` in an SSE byte stream; with ``drop=True`` removes the usage-only event."""

    __slots__ = ("_tail", "drop", "usage")

    def __init__(self, drop: bool) -> None:
        self.drop = drop
        self.usage: dict[str, Any] | None = None
        self._tail = b""  # an event not yet complete

    def feed(self, chunk: bytes) -> bytes:
        """Take bytes from upstream; return the bytes to send to the client now."""
        if not self._tail and chunk.endswith(b"\n\n"):  # whole events: the usual case
            if not _may_hold_usage(chunk):
                return chunk
            scanned = self._scan(chunk, keep=not self.drop)
            return scanned if self.drop else chunk
        data = self._tail + chunk if self._tail else chunk
        cut = data.rfind(b"\n\n") + 2
        complete, self._tail = (data[:cut], data[cut:]) if cut > 1 else (b"", data)
        if len(self._tail) > MAX_EVENT_BYTES:  # not SSE as we know it: stop holding bytes
            complete, self._tail = data, b""
        if self.drop:
            return self._scan(complete, keep=False) if complete else b""
        if _may_hold_usage(complete):
            self._scan(complete, keep=True)
        return chunk

    def flush(self) -> bytes:
        """The end of the stream: whatever was held back, unchanged."""
        rest, self._tail = self._tail, b""
        return rest if self.drop else b""

    def _scan(self, events: bytes, keep: bool) -> bytes:
        """Whole ``events``: note the usage of a usage-only event, and take that event out
        unless ``keep``. Only events that hold a usage object are parsed."""
        start = 0
        while (at := _usage_at(events, start)) >= 0:
            begin = events.rfind(b"\n\n", 0, at)
            begin = 0 if begin < 0 else begin + 2
            end = events.find(b"\n\n", at)
            end = len(events) if end < 0 else end + 2
            usage = _usage_of(events[begin:end])
            if usage is None:
                start = end
                continue
            self.usage = usage
            if keep:
                start = end
            else:
                events, start = events[:begin] + events[end:], begin
        return events


def _usage_at(data: bytes, start: int) -> int:
    """Where the next usage object starts in ``data`` (-1: nowhere). A stream spells it one
    way throughout, so the second spelling is looked for only without the first."""
    at = data.find(b'"usage":{', start)
    return at if at >= 0 else data.find(b'"usage": {', start)


def _usage_of(event: bytes) -> dict[str, Any] | None:
    """The usage of a usage-only event (``"choices": []``), else None."""
    if not event.startswith(b"data:"):
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


class KeepAlive:
    """SSE comments while a stream waits for its first token (see the module docstring)."""

    __slots__ = ("_head", "_interval", "_rest", "_send", "_stopped", "_task", "_timer", "started")

    def __init__(
        self,
        send: Send,
        interval_s: float,
        head: Callable[[], list[tuple[bytes, bytes]]],
        watch: DisconnectWatch | None = None,
    ) -> None:
        self._send = send
        self._interval = interval_s
        self._head = head  # the response headers, asked for when the response starts
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._stopped = False
        self.started = False  # the response has started: no error status can follow
        if watch is not None and interval_s > watch.after_s:
            # Most streams start long before a comment is due: the timer is armed (for the
            # rest of the interval) only if the request still waits when the request's
            # disconnect watch starts, not for every stream.
            self._rest = interval_s - watch.after_s
            watch.on_slow(self._arm)
        else:
            self._rest = interval_s
            self._arm()

    def _arm(self) -> None:
        if not self._stopped:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._rest, self._start)

    def _start(self) -> None:
        self._timer = None
        self._task = asyncio.get_running_loop().create_task(self._beat())

    async def _beat(self) -> None:
        self.started = True
        await self._send({"type": "http.response.start", "status": 200, "headers": self._head()})
        while True:
            await self._send({"type": "http.response.body", "body": KEEPALIVE_EVENT,
                              "more_body": True})  # fmt: skip
            await asyncio.sleep(self._interval)

    def stop(self) -> asyncio.Task[None] | None:
        """No more comments. Returns the task sending them, if they began: await it (it is
        cancelled) before sending anything else."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        return task

    async def fail(self, err: SwitchyardError, event: bytes | None = None) -> None:
        """End a started response with ``err`` as an error event (``event``: as another API
        spells it, see ``switchyard.gateway.apis``)."""
        body = error_event(err) if event is None else event
        await self._send({"type": "http.response.body", "body": body, "more_body": False})


async def relay(
    send: Send,
    attempt: Attempt,
    tap: UsageTap,
    headers: list[tuple[bytes, bytes]] | None,
) -> str:
    """Stream ``attempt`` to the client; the status to record (``upstream_error`` when the
    backend broke off). ``headers`` None: the response has started already (keep-alive).
    The caller finishes the attempt, also when this is cancelled."""
    resp = attempt.response
    status = resp.status
    if headers is not None:  # written with the first chunk (HOLD), under our own server
        await send({"type": "http.response.start", "status": status, "headers": headers,
                    HOLD: True})  # fmt: skip
    chunk, read, ended = resp.first_chunk, resp.reader, resp.ended
    write = chunk_writer(send)  # None: ``send`` is not the server's own (a wrapper watches)
    while chunk:
        # Whole events without a usage object pass as they are: UsageTap.feed's first test,
        # inline, since it runs once per token (``find``, not ``in``: bytes' ``in`` first
        # tries the needle as an integer and clears the TypeError).
        if tap._tail or not chunk.endswith(b"\n\n") or chunk.find(b'"usage"') >= 0:
            out = tap.feed(chunk)
        else:
            out = chunk
        if ended():  # the backend's stream ended with this chunk: it goes with the end
            break
        if out and (write is None or not write(out)):
            await send({"type": "http.response.body", "body": out, "more_body": True})
        try:  # only the read: what sending to the client raises is not the backend's doing
            chunk = await read()
        except STREAM_ERRORS as exc:
            await _broke_off(send, attempt, tap, broken_stream(exc))
            return "upstream_error"
    else:
        out = b""
    resp.release()
    await send({"type": "http.response.body", "body": out + tap.flush(), "more_body": False})
    return str(status)


async def _broke_off(send: Send, attempt: Attempt, tap: UsageTap, err: SwitchyardError) -> None:
    """End the client's stream with ``err`` as an error event; drop the backend's."""
    log.warning("stream from %s broke: %s", attempt.endpoint.name, err.message)
    attempt.response.abort()
    body = tap.flush() + error_event(err)
    await send({"type": "http.response.body", "body": body, "more_body": False})
