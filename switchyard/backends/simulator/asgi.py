"""The few raw-ASGI helpers the simulator needs: types, body reading, responses, disconnects.

The simulator is a bare ASGI app (no framework) because the benchmark measures a gateway in
front of it, so each request must cost the simulator as little CPU as possible.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from switchyard.backends.simulator.protocol import ApiError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY_BYTES = 32 * 1024 * 1024
JSON_TYPE = (b"content-type", b"application/json")
SSE_START: Message = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache"),
    ],
}
SSE_DONE = b"data: [DONE]\n\n"


class ClientGone(Exception):
    """The client disconnected before the request body was read."""


async def read_body(receive: Receive) -> bytes:
    """The whole request body; ``ClientGone`` on disconnect, 413 beyond ``MAX_BODY_BYTES``."""
    message = await receive()
    if message["type"] != "http.request":
        raise ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body  # the usual case: one message holds the whole body
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def wait_for_disconnect(receive: Receive) -> None:
    """Returns when the client has gone away (or the response is complete).

    Needed because uvicorn implements ASGI 2.3: ``send()`` after a disconnect does not raise,
    so only ``receive()`` tells a handler that nobody is listening any more.
    """
    while (await receive())["type"] != "http.disconnect":
        pass


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    content_type: tuple[bytes, bytes] = JSON_TYPE,
    *extra_headers: tuple[bytes, bytes],
) -> None:
    headers = [content_type, (b"content-length", b"%d" % len(body)), *extra_headers]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_error(send: Send, error: ApiError) -> None:
    if error.retry_after_s is None:
        await send_bytes(send, error.status, error.body())
    else:
        retry_after = (b"retry-after", b"%d" % error.retry_after_s)
        await send_bytes(send, error.status, error.body(), JSON_TYPE, retry_after)


async def send_chunk(send: Send, chunk: bytes) -> None:
    await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def end_stream(send: Send) -> None:
    await send({"type": "http.response.body", "body": SSE_DONE, "more_body": False})
