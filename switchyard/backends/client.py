"""``OpenAICompatBackend``: one endpoint of an OpenAI-compatible server, on the process's
shared keep-alive client (``switchyard.backends.http1``; measured against aiohttp and httpx
in docs/BENCHMARKS.md §4 and §13). Bodies travel as bytes; nothing here parses or
re-validates them.

Connection and timeout errors are translated into ``switchyard.backends.errors`` right here.
The aiohttp session (``create_session``) serves the replicas' other calls: adapter loading.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from switchyard.backends.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from switchyard.backends.http1 import JSON_TYPE, Http1Client, Http1Response, Origin, header_lines
from switchyard.backends.running import current_task

# What reading a stream's body raises when the backend breaks off or falls silent.
STREAM_ERRORS = (TimeoutError, ConnectionError)


def broken_stream(err: BaseException) -> UpstreamError:
    """The ``UpstreamError`` that one of ``STREAM_ERRORS`` mid-stream stands for."""
    if isinstance(err, TimeoutError):
        return UpstreamTimeoutError("upstream stream stalled past the read timeout")
    return UpstreamConnectError(f"upstream connection broke mid-stream: {err}")


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect_s: float = 3.0
    first_byte_s: float = 120.0  # response head, plus the first chunk of a stream
    read_s: float = 300.0  # longest silence between two chunks of a stream


@dataclass(slots=True)
class UpstreamRequest:
    """One request for a backend; read-only by convention (not frozen: one is built per
    request, and a frozen dataclass's ``__init__`` costs 2.5x)."""

    path: str  # appended to the endpoint's base URL, e.g. "/chat/completions"
    body: bytes
    stream: bool
    request_id: str = ""
    # Extra headers for this attempt only (a trace's W3C traceparent); empty costs nothing.
    headers: tuple[tuple[str, str], ...] = ()


def create_session(pool_size: int, timeouts: Timeouts) -> aiohttp.ClientSession:
    """One keep-alive pool per process, shared by every endpoint. Call inside a running loop."""
    # Idle connections are dropped before the 5 s keep-alive of uvicorn-based servers (vLLM)
    # ends, so a reused connection is not one the server is closing at that very moment.
    connector = aiohttp.TCPConnector(
        limit=pool_size, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=4.0
    )
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=timeouts.connect_s, sock_read=timeouts.read_s
    )
    return aiohttp.ClientSession(connector=connector, timeout=timeout, raise_for_status=False)


def create_client(pool_size: int, timeouts: Timeouts) -> Http1Client:
    """The proxied requests' keep-alive client, one per process. Idle connections are
    dropped before the 5 s keep-alive of uvicorn-based servers (vLLM) ends."""
    return Http1Client(pool_size, timeouts.connect_s, timeouts.read_s, keepalive_s=4.0)


class UpstreamResponse:
    """A backend's answer: whole ``body`` when not streaming, else ``chunks()``."""

    __slots__ = ("_resp", "body", "content_type", "first_chunk", "headers", "status")

    def __init__(self, resp: Http1Response, body: bytes, first_chunk: bytes) -> None:
        self._resp = resp
        self.status = resp.status
        self.headers = resp.headers
        self.content_type = resp.headers.get("content-type", "application/json")
        self.body = body
        self.first_chunk = first_chunk

    async def chunks(self) -> AsyncIterator[bytes]:
        """The stream's bytes as they arrive; a broken or silent upstream raises UpstreamError."""
        yield self.first_chunk
        read = self.reader
        try:
            while chunk := await read():
                yield chunk
        except STREAM_ERRORS as err:
            raise broken_stream(err) from None

    @property
    def reader(self) -> Callable[[], Awaitable[bytes]]:
        """The stream's next bytes after ``first_chunk`` (``b""`` at its end), unwrapped: the
        pass-through relay loops on it itself, since an async generator costs every chunk
        ~0.1 µs. Its errors are ``STREAM_ERRORS``; ``broken_stream`` says what they mean."""
        return self._resp.readany

    def ended(self) -> bool:
        """Whether the stream has ended and every byte of it was read."""
        return self._resp.at_eof()

    def release(self) -> None:
        """Done with a fully read response: the connection goes back to the pool."""
        self._resp.release()

    def abort(self) -> None:
        """Drop the connection, which cancels the request on the backend."""
        self._resp.close()


class OpenAICompatBackend:
    """Sends requests to one OpenAI-compatible base URL (``.../v1``)."""

    def __init__(
        self,
        base_url: str,
        client: Http1Client,
        timeouts: Timeouts,
        api_key: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeouts = timeouts
        self._client = client
        # What the replica's other /v1 calls (adapter loading) send: its key, if it has one.
        self.auth: dict[str, str] = {}
        if api_key:
            self.auth = {"authorization": f"Bearer {api_key}"}
        self._origin = Origin(self.base_url, self.auth)

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        """POST the request; return once the head (and a stream's first chunk) arrived.

        Raises ``UpstreamStatusError`` on 429/5xx, ``UpstreamConnectError`` when the backend
        cannot be reached, ``UpstreamTimeoutError`` past the first-byte timeout. Other 4xx
        answers are returned: they are the client's to see.
        """
        extra = b"x-request-id: %s\r\n" % request.request_id.encode() if request.request_id else b""
        kind = JSON_TYPE
        if request.headers:  # a form's own content-type (its boundary), a trace's traceparent
            extra += header_lines(request.headers)
            if any(name.lower() == "content-type" for name, _ in request.headers):
                kind = b""
        # asyncio.timeout() does the same with a dozen more calls per request: a timer that
        # cancels this task, told apart from any other cancellation by ``expired``.
        task = current_task()
        before = task.cancelling()
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            task.cancel()

        # task.get_loop(), not asyncio.get_running_loop(): that one costs a getpid() syscall.
        timer = task.get_loop().call_later(self.timeouts.first_byte_s, expire)
        try:
            return await self._exchange(request, extra, kind)
        except asyncio.CancelledError:
            if expired and task.uncancel() <= before:
                raise self._timed_out() from None
            raise
        except TimeoutError:  # connecting took longer than connect_s
            raise UpstreamConnectError(
                f"cannot reach {self.base_url}: no connection within {self.timeouts.connect_s:g}s"
            ) from None
        except OSError as err:  # refused, reset, unresolvable, closed before the answer
            raise UpstreamConnectError(f"cannot reach {self.base_url}: {err}") from None
        finally:
            timer.cancel()

    def _timed_out(self) -> UpstreamTimeoutError:
        return UpstreamTimeoutError(
            f"no answer from {self.base_url} within {self.timeouts.first_byte_s:g}s"
        )

    async def _exchange(
        self, request: UpstreamRequest, extra: bytes, kind: bytes
    ) -> UpstreamResponse:
        stream = request.stream
        resp = await self._client.post(self._origin, request.path, extra, request.body,
                                       not stream, kind)  # fmt: skip
        try:
            if resp.status >= 400 or not stream:
                body = await resp.read()
                if resp.status == 429 or resp.status >= 500:
                    raise UpstreamStatusError(resp.status, body, resp.headers.get("retry-after"))
                return UpstreamResponse(resp, body, b"")
            first = await resp.readany()
            if not first:
                raise UpstreamConnectError(f"{self.base_url} closed the stream before any data")
            return UpstreamResponse(resp, b"", first)
        except BaseException:
            resp.close()
            raise

    def __repr__(self) -> str:
        return f"OpenAICompatBackend({self.base_url!r})"


__all__ = [
    "STREAM_ERRORS",
    "OpenAICompatBackend",
    "Timeouts",
    "UpstreamError",
    "UpstreamRequest",
    "UpstreamResponse",
    "broken_stream",
    "create_client",
    "create_session",
]
