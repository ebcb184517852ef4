"""``Http1Client``: the keep-alive HTTP/1.1 client the proxied requests go out on.

A proxied request needs one thing of a client: write a POST and hand back the answer's head
and body bytes as they arrive. aiohttp's ``ClientSession`` does that with about 140 Python
calls of URL, cookie, header and timer bookkeeping per request; this client is a bare
protocol made safe, and took the gateway from 664k to 372k instructions per proxied JSON
request at concurrency 1 (the harness's bare aiohttp proxy: 530k; docs/BENCHMARKS.md §13).
``httptools`` (the C parser uvicorn already uses) reads the answer, chunked bodies included;
connections are kept per origin and reused; the process holds at most ``limit`` of them
(``upstream.pool_size``), and a request past it waits for one.

What it does not do, because a gateway sending POSTs to OpenAI-compatible servers does not
need it: redirects, cookies, proxies, compression, ``Expect: 100-continue``, HTTP/2. A
connection is reused only after an answer was read to its end and the server allowed
keep-alive, and is dropped after ``keepalive_s`` idle (below the 5 s of uvicorn-based
servers such as vLLM, so a reused connection is not one the server is closing right then).

Errors: ``ConnectionError`` (refused, reset, closed before the answer ended, a malformed
answer: ``ProtocolError``) and ``TimeoutError`` (connecting, or a stream silent for
``read_s``). The first-byte limit is the caller's (``OpenAICompatBackend.send``).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from typing import cast
from urllib.parse import urlsplit

import httptools

__all__ = ["JSON_TYPE", "Http1Client", "Http1Response", "Origin", "ProtocolError", "header_lines"]

HIGH_WATER = 256 * 1024  # buffered answer bytes past which the socket is not read
JSON_TYPE = b"content-type: application/json\r\n"


class ProtocolError(ConnectionError):
    """The server's answer is not valid HTTP/1.1."""


class Origin:
    """Where one base URL's requests go, and the start of a request head for each path
    (``headers``: those every request to it carries, such as its API key)."""

    __slots__ = ("_heads", "_static", "host", "port", "prefix", "scheme")

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        default = 443 if url.scheme == "https" else 80
        self.scheme, self.host, self.port = url.scheme, url.hostname, url.port or default
        self.prefix = url.path.rstrip("/")
        name = f"[{url.hostname}]" if ":" in url.hostname else url.hostname  # IPv6 literal
        host = name if self.port == default else f"{name}:{self.port}"
        lines = [f"host: {host}", *(f"{k}: {_checked(v)}" for k, v in headers.items())]
        self._static = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        self._heads: dict[str, bytes] = {}

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    def head(self, path: str, extra: bytes, length: int, kind: bytes = JSON_TYPE) -> bytes:
        """The request head for a POST of ``length`` bytes to ``path`` (``extra``: header
        lines of this request only, each ending in CRLF; ``kind``: the content-type line,
        ``b""`` when ``extra`` carries its own)."""
        start = self._heads.get(path)
        if start is None:
            target = _checked(self.prefix + path).replace(" ", "%20")
            start = self._heads[path] = f"POST {target} HTTP/1.1\r\n".encode() + self._static
        return b"%s%s%scontent-length: %d\r\n\r\n" % (start, kind, extra, length)


def header_lines(headers: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> bytes:
    """``name: value`` lines for a request's own headers (ValueError on CR or LF)."""
    return b"".join(f"{_checked(k)}: {_checked(v)}\r\n".encode("latin-1") for k, v in headers)


def _checked(text: str) -> str:
    if "\r" in text or "\n" in text:
        raise ValueError(f"header text may not hold CR or LF: {text!r}")
    return text


class Http1Response:
    """An answer being read: ``status`` and ``headers`` (lower-cased names) once the head
    arrived, then the body through ``read()`` (all of it) or ``readany()`` (what came)."""

    __slots__ = (
        "_buffer", "_conn", "_error", "_size", "_waiter", "complete", "headers", "status", "whole",
    )  # fmt: skip

    def __init__(self, conn: _Connection) -> None:
        self._conn: _Connection | None = conn
        self.status = 0
        self.headers: dict[str, str] = {}
        self.complete = False  # the whole body arrived
        # Read whole: resolved once complete and never paused, however large (a stream
        # resolves at its head, and its reader paces the socket).
        self.whole = False
        self._buffer: list[bytes] = []
        self._size = 0
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    async def read(self) -> bytes:
        """The whole body; the connection is released."""
        self.whole = True
        if self._conn is not None:
            self._conn.resume()
        while not self.complete:
            self._check()
            await self._wait(None)
        data = b"".join(self._buffer)
        self._buffer.clear()
        self.release()
        return data

    async def readany(self) -> bytes:
        """The body bytes that arrived since the last read, waiting for some (``b""``: the
        body ended, and the connection is released). ``TimeoutError`` when none came for the
        client's ``read_s``."""
        while not self._buffer:
            if self.complete:
                self.release()
                return b""
            self._check()
            await self._wait(self._conn.pool.client.read_s if self._conn is not None else None)
        buffer = self._buffer
        data = buffer[0] if len(buffer) == 1 else b"".join(buffer)
        buffer.clear()
        if self._size > HIGH_WATER and self._conn is not None:
            self._conn.resume()
        self._size = 0
        return data

    def at_eof(self) -> bool:
        """The body ended and every byte of it was read."""
        return self.complete and not self._buffer

    def release(self) -> None:
        """Done with the answer: its connection is kept for another request when the body
        was read to its end, else closed."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.release(self.complete)

    def close(self) -> None:
        """Drop the connection (a server that streams sees the client leave)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.drop()

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    async def _wait(self, limit_s: float | None) -> None:
        conn = self._conn
        if conn is None:
            raise ConnectionError("the answer's connection was released")
        waiter = self._waiter = conn.loop.create_future()
        timer = None if limit_s is None else conn.loop.call_later(limit_s, _expire, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    # -- fed by the connection ----------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _feed(self, data: bytes) -> None:
        self._buffer.append(data)
        self._size += len(data)
        if self._size > HIGH_WATER and not self.whole and self._conn is not None:
            self._conn.pause()
        self._wake()

    def _fail(self, error: BaseException) -> None:
        if not self.complete and self._error is None:
            self._error = error
            self._wake()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no data from the server within the read timeout"))


class _Connection(asyncio.Protocol):
    """One socket to an origin; one request on it at a time."""

    def __init__(self, pool: _OriginPool, loop: asyncio.AbstractEventLoop) -> None:
        self.pool, self.loop = pool, loop
        self.transport: asyncio.Transport | None = None
        self.response: Http1Response | None = None
        self.head: asyncio.Future[Http1Response] | None = None
        self.closed = False
        self.keep_alive = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)

    def send(self, data: bytes, whole: bool) -> asyncio.Future[Http1Response]:
        """Write a request; the future resolves with its answer once the head (``whole``:
        the whole body) arrived."""
        assert self.transport is not None and self.response is None
        self.response = Http1Response(self)
        self.response.whole = whole
        self.head = self.loop.create_future()
        self.transport.write(data)
        return self.head

    def pause(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def release(self, complete: bool) -> None:
        self.response = None
        if complete and self.keep_alive and not self.closed:
            self.pool.put(self)
        else:
            self.drop()

    def drop(self) -> None:
        self.response = None
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.abort()
            self.pool.closed(self)

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self.response is None:  # nothing was asked: the server is confused
            self.drop()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as err:
            self._lost(ProtocolError(f"malformed HTTP answer: {err}"))
            self.drop()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            self.pool.closed(self)
        response = self.response
        if exc is None and response is not None and _close_delimited(response):
            self.on_message_complete()  # the body ran to the connection's end
            return
        self._lost(exc if isinstance(exc, ConnectionError) else _closed(exc))

    def _lost(self, error: BaseException) -> None:
        head, response = self.head, self.response
        if head is not None and not head.done():
            head.set_exception(error)
        if response is not None:
            response._fail(error)

    # -- httptools callbacks ------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.response is not None
        self.response.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        response, head = self.response, self.head
        assert response is not None and head is not None
        response.status = self._parser.get_status_code()
        if not response.whole and not head.done():
            head.set_result(response)

    def on_body(self, body: bytes) -> None:
        assert self.response is not None
        self.response._feed(body)

    def on_message_complete(self) -> None:
        response, head = self.response, self.head
        assert response is not None and head is not None
        self.keep_alive = self._parser.should_keep_alive()
        response.complete = True
        response._wake()
        if not head.done():
            head.set_result(response)


def _close_delimited(response: Http1Response) -> bool:
    """An answer whose head came without a length: its body ends with the connection."""
    headers = response.headers
    return (
        response.status > 0
        and not response.complete
        and "content-length" not in headers
        and "chunked" not in headers.get("transfer-encoding", "")
    )


def _closed(exc: BaseException | None) -> ConnectionError:
    reason = f": {exc}" if exc is not None else ""
    return ConnectionError(f"the server closed the connection before the answer ended{reason}")


class _OriginPool:
    """Idle keep-alive connections to one origin, newest last."""

    def __init__(self, client: Http1Client, origin: Origin) -> None:
        self.client, self.origin = client, origin
        self.idle: list[_Connection] = []

    def take(self, now: float) -> _Connection | None:
        idle, keepalive = self.idle, self.client.keepalive_s
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < keepalive:
                return conn
            conn.drop()
        return None

    def put(self, conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        self.idle.append(conn)
        self.client.freed()

    def closed(self, conn: _Connection) -> None:
        if conn in self.idle:
            self.idle.remove(conn)
        self.client.opened -= 1
        self.client.freed()


class Http1Client:
    """Keep-alive connections shared by every endpoint of the process."""

    def __init__(
        self, limit: int = 1024, connect_s: float = 3.0, read_s: float = 300.0,
        keepalive_s: float = 4.0,
    ) -> None:  # fmt: skip
        self.limit, self.connect_s, self.read_s = limit, connect_s, read_s
        self.keepalive_s = keepalive_s
        self.opened = 0  # connections open or being opened, idle ones included
        self.waits = 0  # requests that waited for room under the limit
        self._pools: dict[tuple[str, str, int], _OriginPool] = {}
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._ssl: ssl.SSLContext | None = None

    async def post(self, origin: Origin, path: str, extra: bytes, body: bytes, whole: bool,
                   kind: bytes = JSON_TYPE) -> Http1Response:  # fmt: skip
        """POST ``body`` (``extra``, ``kind``: as ``Origin.head`` takes them); the answer once
        its head (``whole``: its whole body) arrived."""
        pool = self._pools.get(origin.key)
        if pool is None:
            pool = self._pools[origin.key] = _OriginPool(self, origin)
        conn = pool.take(time.monotonic()) or await self._connect(pool)
        data = origin.head(path, extra, len(body), kind)
        try:
            if len(body) < 65536:  # one write: head and body in one segment
                return await conn.send(data + body, whole)
            waiter = conn.send(data, whole)
            assert conn.transport is not None
            conn.transport.write(body)
            return await waiter
        except BaseException:
            conn.drop()
            raise

    async def _connect(self, pool: _OriginPool) -> _Connection:
        while self.opened >= self.limit:
            if not self._close_idle():
                self.waits += 1
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                try:
                    await waiter
                finally:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
                conn = pool.take(time.monotonic())
                if conn is not None:
                    return conn
        self.opened += 1
        origin, loop = pool.origin, asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_s):
                _, conn = await loop.create_connection(
                    lambda: _Connection(pool, loop), origin.host, origin.port,
                    ssl=self._context() if origin.scheme == "https" else None,
                )  # fmt: skip
        except BaseException:
            self.opened -= 1
            self.freed()
            raise
        return conn

    def _close_idle(self) -> bool:
        """Close the longest-idle connection of any origin to make room (False: none)."""
        oldest = min(
            (c for p in self._pools.values() for c in p.idle), key=lambda c: c.idle_since,
            default=None,
        )  # fmt: skip
        if oldest is None:
            return False
        oldest.drop()
        return True

    @property
    def idle(self) -> int:
        """Open connections waiting for a request."""
        return sum(len(pool.idle) for pool in self._pools.values())

    @property
    def waiting(self) -> int:
        """Requests waiting for a connection (the limit is reached)."""
        return len(self._waiters)

    def freed(self) -> None:
        """A connection closed or went idle: one request waiting for room may go on."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def close(self) -> None:
        """Close the idle connections; those in use close when their answers are done."""
        for pool in self._pools.values():
            for conn in list(pool.idle):
                conn.drop()
        self._pools.clear()
        await asyncio.sleep(0)  # the transports finish closing on the next loop turn
