"""A request-response cycle (uvicorn's or the gateway's) on a transport that records its writes,
and the ASGI messages the tests send it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from switchyard.gateway.http_cycle import HOLD

DATE = [(b"date", b"Fri, 04 Dec 2026 05:00:00 GMT")]
JSON = [(b"content-type", b"application/json"), (b"content-length", b"7")]
SSE = [(b"content-type", b"text/event-stream"), (b"x-request-id", b"abc")]


class Transport:
    """Records what is written to it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def cycle(kind: type[RequestResponseCycle], method: str = "POST", keep_alive: bool = True) -> Any:
    transport = Transport()
    return kind(
        scope={"method": method, "http_version": "1.1"},  # type: ignore[typeddict-item]
        transport=transport,  # type: ignore[arg-type]
        flow=FlowControl(transport),  # type: ignore[arg-type]
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test.access"),
        access_log=False,
        default_headers=DATE,
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: None,
    )


def start(status: int, headers: list[tuple[bytes, bytes]], hold: bool = False) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "http.response.start", "status": status, "headers": headers}
    if hold:
        message[HOLD] = True
    return message


def body(data: bytes, more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


def wire(kind: type[RequestResponseCycle], messages: list[Any], **options: Any) -> Any:
    """A cycle of ``kind`` after it was sent ``messages``."""
    return send(cycle(kind, **options), messages)


def send(c: Any, messages: list[Any]) -> Any:
    async def main() -> None:
        for message in messages:
            await c.send(message)

    asyncio.run(main())
    return c
