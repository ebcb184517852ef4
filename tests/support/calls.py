"""Counting what one request costs, in Python function calls: deterministic where seconds
are not (the machine is shared), so a test can hold the request path to a budget.

``count_calls`` runs a coroutine with a profile hook that counts every Python and C call
made on this thread (the event loop's thread, so every task the request runs, and nothing
of a backend served from another thread). ``asgi_post`` drives an ASGI app in-process the
way uvicorn does: one body message, then ``receive`` waits until the response is done.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from types import FrameType
from typing import Any

_COUNTED = frozenset({"call", "c_call"})

Message = dict[str, Any]


async def count_calls(make: Callable[[], Awaitable[Any]]) -> tuple[int, Any]:
    """Calls made while ``make()`` runs to completion, and its result."""
    calls = 0

    def hook(frame: FrameType, event: str, arg: object) -> None:
        nonlocal calls
        if event in _COUNTED:
            calls += 1

    sys.setprofile(hook)
    try:
        result = await make()
    finally:
        sys.setprofile(None)
    return calls, result


async def asgi_post(
    app: Callable[..., Awaitable[None]],
    path: str,
    body: bytes,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> list[Message]:
    """POST ``body`` to ``app`` in-process; the messages it sent back."""
    sent: list[Message] = []
    done = asyncio.Event()
    first = True

    async def receive() -> Message:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1", "method": "POST", "scheme": "http", "path": path,
        "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"gateway"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()), *headers],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080), "state": {},
    }  # fmt: skip
    await app(scope, receive, send)
    return sent
