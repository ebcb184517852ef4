"""The proxied requests' HTTP/1.1 client, against real sockets: servers written here byte by
byte (to send what a well-behaved server never would) and the project's simulator."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
import uvloop

from switchyard.backends.http1 import Http1Client, Origin, ProtocolError, header_lines
from tests.support.gateways import Simulator

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
JSON: dict[str, str] = {}  # content-type: application/json goes by default


def on_uvloop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test on uvloop, the gateway's event loop."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(test(*args, **kwargs))

    return run


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A TCP server running ``handler`` per connection; its base URL and the request heads."""
    heads: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1", heads
    finally:
        server.close()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))  # fmt: skip
    return head, await reader.readexactly(length)


def answer(body: bytes, extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s"
            % (len(body), extra, body))  # fmt: skip


@on_uvloop
async def test_a_json_answer_arrives_whole_and_the_connection_is_reused() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while not reader.at_eof():
            try:
                head, body = await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            assert head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
            assert b"x-request-id: r1\r\n" in head and b"host: 127.0.0.1:" in head
            writer.write(answer(b'{"echo":' + body + b"}"))

    client = Http1Client()
    async with raw_server(handler) as (url, _):
        origin = Origin(url, JSON)
        for i in range(3):
            resp = await client.post(origin, "/chat/completions", b"x-request-id: r1\r\n",
                                     b'{"i":%d}' % i, whole=True)  # fmt: skip
            assert resp.status == 200 and resp.headers["content-type"] == "application/json"
            assert orjson.loads(await resp.read()) == {"echo": {"i": i}}
        await client.close()
    assert connections == 1


@on_uvloop
async def test_a_chunked_stream_is_read_as_it_comes_and_ends_with_empty_bytes() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     b"transfer-encoding: chunked\r\n\r\n")  # fmt: skip
        for event in (b"data: 1\n\n", b"data: 2\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await reader.read()

    client = Http1Client()
    async with raw_server(handler) as (url, _):
        resp = await client.post(Origin(url, JSON), "/x", b"", b"{}", whole=False)
        got = []
        while chunk := await resp.readany():
            got.append(chunk)
        assert b"".join(got) == b"data: 1\n\ndata: 2\n\n" and resp.at_eof()
        await client.close()


@on_uvloop
async def test_a_large_answer_is_read_whole_and_a_large_stream_paced_by_its_reader() -> None:
    big = b"x" * (3 * 1024 * 1024)  # well past the 256 KiB at which a stream's reading pauses

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(2):
            await read_request(reader)
            writer.write(answer(big))
            await writer.drain()
        await reader.read()

    client = Http1Client()
    async with raw_server(handler) as (url, _):
        origin = Origin(url, JSON)
        async with asyncio.timeout(10):  # a paused socket under read() would hang it
            whole = await client.post(origin, "/x", b"", b"{}", whole=True)
            assert await whole.read() == big  # never paused: nothing reads it until whole
        stream = await client.post(origin, "/x", b"", b"{}", whole=False)
        got = bytearray()
        while chunk := await stream.readany():
            got += chunk
            await asyncio.sleep(0.001)  # a slow reader: the socket pauses and resumes
        assert got == big
        await client.close()


@on_uvloop
async def test_a_server_that_closes_mid_body_raises_connection_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
        await writer.drain()

    client = Http1Client()
    async with raw_server(handler) as (url, _):
        resp = await client.post(Origin(url, JSON), "/x", b"", b"{}", whole=False)
        assert await resp.readany() == b"partial"
        with pytest.raises(ConnectionError):
            await resp.readany()
        await client.close()


@on_uvloop
async def test_a_body_that_runs_to_the_connection_end_is_whole() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
        await writer.drain()

    client = Http1Client()
    async with raw_server(handler) as (url, _):
        resp = await client.post(Origin(url, JSON), "/x", b"", b"{}", whole=True)
        assert await resp.read() == b"all of it"
        await client.close()
    assert client.opened == 0


@on_uvloop
async def test_a_malformed_answer_is_a_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        await reader.read()

    client = Http1Client()
    async with raw_server(handler) as (url, _):
        with pytest.raises(ProtocolError):
            await client.post(Origin(url, JSON), "/x", b"", b"{}", whole=True)
        await client.close()
    assert client.opened == 0


@on_uvloop
async def test_a_silent_stream_times_out_after_read_s() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await reader.read()

    client = Http1Client(read_s=0.1)
    async with raw_server(handler) as (url, _):
        resp = await client.post(Origin(url, JSON), "/x", b"", b"{}", whole=False)
        assert await resp.readany() == b"first"
        with pytest.raises(TimeoutError):
            await resp.readany()
        resp.close()
        await client.close()


@on_uvloop
async def test_a_refused_connection_raises_and_frees_its_slot() -> None:
    async def ignore(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    client = Http1Client(limit=1)
    async with raw_server(ignore) as (url, _):
        pass  # closed: nothing listens on its port any more
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await client.post(Origin(url, JSON), "/x", b"", b"{}", whole=True)
    assert client.opened == 0


@on_uvloop
async def test_past_the_limit_a_request_waits_for_a_connection() -> None:
    release = asyncio.Event()
    served = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            await release.wait()
            served += 1
            writer.write(answer(b"{}"))

    client = Http1Client(limit=1)
    async with raw_server(handler) as (url, _):
        origin = Origin(url, JSON)
        first = asyncio.ensure_future(client.post(origin, "/x", b"", b"{}", whole=True))
        second = asyncio.ensure_future(client.post(origin, "/x", b"", b"{}", whole=True))
        await asyncio.sleep(0.1)
        assert client.opened == 1 and not second.done()
        assert (client.waiting, client.waits, client.idle) == (1, 1, 0)
        release.set()
        one = await first
        await one.read()
        two = await second
        assert await two.read() == b"{}" and served == 2 and client.opened == 1
        assert (client.waiting, client.idle) == (0, 1)
        await client.close()


def test_header_text_with_line_breaks_is_refused() -> None:
    with pytest.raises(ValueError, match="CR or LF"):
        header_lines([("traceparent", "00-1\r\nx-evil: 1")])
    with pytest.raises(ValueError, match="CR or LF"):
        Origin("http://h/v1", {"authorization": "Bearer a\nb"})
    assert header_lines([("a", "1"), ("b", "2")]) == b"a: 1\r\nb: 2\r\n"


def test_the_host_header_names_the_port_only_when_it_is_not_the_default() -> None:
    assert b"host: h\r\n" in Origin("https://h/v1", {}).head("/x", b"", 0)
    assert b"host: h:8000\r\n" in Origin("http://h:8000/v1", {}).head("/x", b"", 0)
    assert b"host: [::1]:8000\r\n" in Origin("http://[::1]:8000/v1", {}).head("/x", b"", 0)
    head = Origin("http://h/v1/", {"authorization": "Bearer k"}).head("/chat/completions", b"", 2)
    assert head == (b"POST /v1/chat/completions HTTP/1.1\r\nhost: h\r\nauthorization: Bearer k"
                    b"\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n")  # fmt: skip
    form = b"content-type: multipart/form-data; boundary=b\r\n"
    head = Origin("http://h/v1", {}).head("/audio/transcriptions", form, 9, kind=b"")
    assert head.count(b"content-type") == 1 and form in head
    with pytest.raises(ValueError):
        Origin("ftp://h/v1", {})


@on_uvloop
async def test_the_simulator_answers_json_and_streams_through_it(
    simulator: Callable[..., Simulator],
) -> None:
    sim = simulator("m")
    client = Http1Client()
    origin = Origin(sim.base_url, JSON)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    resp = await client.post(origin, "/chat/completions", b"", orjson.dumps(body), whole=True)
    assert resp.status == 200
    assert orjson.loads(await resp.read())["object"] == "chat.completion"
    body["stream"] = True
    resp = await client.post(origin, "/chat/completions", b"", orjson.dumps(body), whole=False)
    stream = b""
    while chunk := await resp.readany():
        stream += chunk
    assert stream.endswith(b"data: [DONE]\n\n")
    await client.close()
