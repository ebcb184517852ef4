"""The stream relay under the gateway's own HTTP cycle: the head goes with the first chunk,
the last chunk with the end of the body, every chunk in between in one write of its own, and
the bytes are those uvicorn's cycle would send. A ``send`` that wraps the cycle's (a tracing
span, the response cache) sees every chunk as a message."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from switchyard.gateway.http_cycle import GatewayCycle
from switchyard.gateway.streaming import UsageTap, relay
from tests.support.cycles import SSE, body, cycle, start, wire

CHUNKS = [b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n"]


class Response:
    """An upstream stream of ``CHUNKS``, as ``UpstreamResponse`` gives it to the relay."""

    status = 200

    def __init__(self) -> None:
        self.first_chunk = CHUNKS[0]
        self._rest = list(CHUNKS[1:])
        self.released = False

    async def reader(self) -> bytes:
        return self._rest.pop(0) if self._rest else b""

    def ended(self) -> bool:
        return not self._rest

    def release(self) -> None:
        self.released = True


class Attempt:
    def __init__(self) -> None:
        self.response = Response()


def run_relay(send: Any) -> str:
    attempt: Any = Attempt()
    status = asyncio.run(relay(send, attempt, UsageTap(drop=False), list(SSE)))
    assert attempt.response.released
    return status


def test_head_and_last_chunk_travel_with_their_neighbours_in_uvicorns_bytes() -> None:
    c = cycle(GatewayCycle)
    assert run_relay(c.send) == "200"
    reference = wire(
        RequestResponseCycle,
        [start(200, SSE), *(body(chunk, True) for chunk in CHUNKS), body(b"")],
    )
    assert b"".join(c.transport.writes) == b"".join(reference.transport.writes)
    assert len(c.transport.writes) == len(CHUNKS)  # uvicorn's cycle: one more for each end
    assert c.transport.writes[0].endswith(b"\r\n\r\n9\r\ndata: 1\n\n\r\n")
    assert c.transport.writes[-1].endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
    assert c.response_complete


def test_a_wrapping_send_sees_every_chunk_as_a_message() -> None:
    c = cycle(GatewayCycle)
    seen: list[bytes] = []

    async def watching(message: Any) -> None:
        if message["type"] == "http.response.body":
            seen.append(message["body"])
        await c.send(message)

    run_relay(watching)
    assert b"".join(seen) == b"".join(CHUNKS)
    assert c.response_complete
