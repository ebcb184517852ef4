"""Every request gets an id: the caller's ``x-request-id`` if it sent a sane one, else a new
random one. It is kept in ``scope["state"]["request_id"]``, sent to the backend and returned
on every response. ``RequestIdMiddleware`` does this for the FastAPI routes; the proxied
routes (``switchyard.gateway.proxy``, raw ASGI) call ``assign_request_id`` themselves."""

from __future__ import annotations

import itertools
import os
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_SANE = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


def assign_request_id(scope: Scope) -> bytes:
    """The request's id (also stored in ``scope["state"]["request_id"]`` as ``str``)."""
    state = scope.setdefault("state", {})
    if "request_id" in state:  # given already (the middleware, for a mounted proxy route)
        return str(state["request_id"]).encode()
    rid = b""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            rid = value if _SANE.match(value) else b""
            break
    if not rid:
        rid = _new_id()
    state["request_id"] = rid.decode()
    return rid


def _new_id() -> bytes:
    """24 hex digits: 12 random per process, then a counter (unique without a syscall per
    request; the random part keeps replicas apart)."""
    if not _IDS:
        _IDS.append((os.urandom(6).hex(), itertools.count(1)))
    prefix, counter = _IDS[0]
    return f"{prefix}{next(counter):012x}".encode()


_IDS: list[tuple[str, itertools.count[int]]] = []  # filled on first use


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = assign_request_id(scope)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                if not any(name == b"x-request-id" for name, _ in headers):
                    message["headers"] = [*headers, (b"x-request-id", rid)]
            await send(message)

        await self.app(scope, receive, send_with_id)
