"""``GatewayCycle`` against uvicorn's own cycle: the same bytes on the wire and the same errors,
in fewer writes where the app holds a response's head (``HOLD``) or writes a chunk directly."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from switchyard.gateway.http_cycle import GatewayCycle, chunk_writer
from tests.support.cycles import JSON, SSE, body, cycle, send, start, wire

RESPONSES = {
    "json": [start(200, JSON), body(b'{"a":1}')],
    "stream": [start(200, SSE), body(b"data: 1\n\n", True), body(b"data: 2\n\n", True), body(b"")],
    "stream ending with data": [start(200, SSE), body(b"data: 1\n\n", True), body(b"data: 2\n\n")],
    "connection close": [
        start(200, [*JSON, (b"Connection", b"keep-alive, close")]),
        body(b"1234567"),
    ],
    "no content": [start(204, []), body(b"")],
    "explicitly chunked": [start(200, [(b"transfer-encoding", b"chunked")]), body(b"x")],
}


@pytest.mark.parametrize("name", RESPONSES)
def test_sends_the_same_bytes_and_state_as_uvicorns_cycle(name: str) -> None:
    ours = wire(GatewayCycle, RESPONSES[name])
    theirs = wire(RequestResponseCycle, RESPONSES[name])
    assert b"".join(ours.transport.writes) == b"".join(theirs.transport.writes)
    for field in ("keep_alive", "response_complete", "chunked_encoding"):
        assert getattr(ours, field) == getattr(theirs, field), field
    assert ours.transport.closed == theirs.transport.closed


@pytest.mark.parametrize("options", [{"method": "HEAD"}, {"keep_alive": False}])
def test_head_requests_and_closing_connections_match_uvicorn(options: Any) -> None:
    messages = [start(200, JSON, hold=True), body(b'{"a":1}')]
    ours = wire(GatewayCycle, messages, **options)
    theirs = wire(RequestResponseCycle, messages, **options)
    assert b"".join(ours.transport.writes) == b"".join(theirs.transport.writes)
    assert ours.transport.closed == theirs.transport.closed


def test_a_held_head_is_written_with_the_body_in_one_write() -> None:
    held = wire(GatewayCycle, [start(200, JSON, hold=True), body(b'{"a":1}')])
    plain = wire(GatewayCycle, [start(200, JSON), body(b'{"a":1}')])
    assert len(held.transport.writes) == 1
    assert len(plain.transport.writes) == 2
    assert held.transport.writes[0] == b"".join(plain.transport.writes)


def test_a_held_head_goes_out_with_the_first_directly_written_chunk() -> None:
    c = wire(GatewayCycle, [start(200, SSE, hold=True)])
    assert c.transport.writes == []
    assert c.write_chunk(b"data: 1\n\n")
    assert len(c.transport.writes) == 1
    send(c, [body(b"")])
    reference = wire(RequestResponseCycle, [start(200, SSE), body(b"data: 1\n\n", True), body(b"")])
    assert b"".join(c.transport.writes) == b"".join(reference.transport.writes)


def test_write_chunk_declines_what_send_must_handle() -> None:
    fixed = wire(GatewayCycle, [start(200, JSON)])
    assert not fixed.write_chunk(b"x")  # content-length, not chunked
    stream = wire(GatewayCycle, [start(200, SSE)])
    assert not stream.write_chunk(b"")  # an empty chunk would end the body
    stream.flow.write_paused = True
    assert not stream.write_chunk(b"x")  # send waits for the client to drain
    stream.flow.write_paused = False
    stream.disconnected = True
    assert not stream.write_chunk(b"x")
    stream.disconnected = False
    send(stream, [body(b"")])
    assert not stream.write_chunk(b"x")  # complete
    assert not cycle(GatewayCycle).write_chunk(b"x")  # not started


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([start(200, [(b"bad name", b"v")])], "Invalid HTTP header name."),
        ([start(200, [(b"x-a", b"line\r\nbreak")])], "Invalid HTTP header value."),
        ([body(b"x")], "Expected ASGI message 'http.response.start'"),
        ([start(200, JSON), start(200, JSON)], "Expected ASGI message 'http.response.body'"),
        ([start(200, JSON), body(b"too long, this")], "longer than Content-Length"),
        ([start(200, JSON), body(b"short")], "shorter than Content-Length"),
        ([start(200, JSON), body(b'{"a":1}'), body(b"")], "after the response completed"),
    ],
)
def test_what_uvicorn_refuses_is_refused(messages: list[Any], error: str) -> None:
    for kind in (GatewayCycle, RequestResponseCycle):
        with pytest.raises(RuntimeError, match=r"Invalid|Expected|Content-Length|after"):
            wire(kind, messages)
    with pytest.raises(RuntimeError, match=re.escape(error)):
        wire(GatewayCycle, messages)


def test_a_checked_header_name_is_still_refused_with_a_bad_value() -> None:
    wire(GatewayCycle, [start(200, [(b"x-once", b"fine")])])
    with pytest.raises(RuntimeError, match="value"):
        wire(GatewayCycle, [start(200, [(b"x-once", b"\x00")])])


def test_chunk_writer_is_only_for_the_cycles_own_send() -> None:
    c = cycle(GatewayCycle)

    async def wrapped(message: Any) -> None:  # a wrapper that watches the messages
        await c.send(message)

    assert chunk_writer(c.send) == c.write_chunk
    assert chunk_writer(wrapped) is None
    assert chunk_writer(cycle(RequestResponseCycle).send) is None


def test_the_access_log_line_is_uvicorns(caplog: pytest.LogCaptureFixture) -> None:
    lines = []
    for kind in (GatewayCycle, RequestResponseCycle):
        c = cycle(kind)
        c.access_log = True
        c.scope.update(client=("127.0.0.1", 5000), path="/v1/x", raw_path=b"/v1/x")
        c.scope.update(query_string=b"a=1", root_path="")
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="test.access"):
            send(c, [start(404, JSON), body(b'{"a":1}')])
        lines.append([record.getMessage() for record in caplog.records])
    assert lines[0] == lines[1] == ['127.0.0.1:5000 - "POST /v1/x?a=1 HTTP/1.1" 404']
