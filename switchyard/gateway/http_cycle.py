"""The gateway's request-response cycle: uvicorn's, with a leaner ``send`` for the proxy.

uvicorn's httptools cycle writes a response head as soon as the app sends it and the body in
another write, runs two regular expressions over every response header, and turns each body
chunk into an ASGI message, a coroutine and a list joined into bytes. On the pass-through path
that is a fair share of what a request costs (docs/BENCHMARKS.md §13). ``GatewayCycle`` sends
the same bytes with less:

- A start message carrying ``HOLD`` is written together with the body message that follows
  it, in one write (one syscall, one TCP segment): for a response whose body the app already
  holds (a whole JSON answer, an error, a stream's first chunk). Without ``HOLD`` the head is
  written at once, as uvicorn does; servers other than this one ignore the key.
- Header names this process has checked once skip the name check (the names a gateway sends
  are few); every value is still checked.
- ``write_chunk``: the next chunk of a chunked body, written at once by a plain method call,
  for the stream relay (``chunk_writer``). It declines (returns False) whenever ``send``
  would have to wait or do more than frame and write: the transport is paused, the client is
  gone, the body is not chunked, the response is complete.

What goes on the wire, the checks and the errors are uvicorn's own (its status lines and
header patterns are used as they are); the tests in tests/gateway/test_http_cycle.py hold
the two to the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

HOLD = "switchyard.hold"  # in a start message: write the head with the first body message
_CHECKED_NAMES: set[bytes] = set()  # response header names that passed HEADER_RE
_MAX_CHECKED = 4096  # names are few; a bound all the same


def chunk_writer(send: Callable[..., Any]) -> Callable[[bytes], bool] | None:
    """``write_chunk`` of the cycle whose ``send`` this is; None for any other ``send`` (a
    wrapper that watches the messages must see every chunk)."""
    cycle = getattr(send, "__self__", None)
    return cycle.write_chunk if type(cycle) is GatewayCycle else None


def _name_ok(name: bytes) -> bool:
    if name in _CHECKED_NAMES:
        return True
    if HEADER_RE.search(name):
        return False
    if len(_CHECKED_NAMES) < _MAX_CHECKED:
        _CHECKED_NAMES.add(name)
    return True


def _frame(body: bytes) -> bytes:
    """``body`` as one chunk of a chunked body."""
    return b"%x\r\n%b\r\n" % (len(body), body)


def _tokens(value: bytes) -> list[bytes]:
    return [token.strip().lower() for token in value.split(b",")]


class GatewayCycle(RequestResponseCycle):
    """See the module docstring."""

    _held: bytes | None = None  # a head waiting for its first body message

    async def send(self, message: Any) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        kind = message["type"]
        if not self.response_started:
            if kind != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', got '{kind}'.")
            head = self._head(message["status"], message.get("headers", ()))
            if message.get(HOLD):
                self._held = head
            else:
                self.transport.write(head)
        elif not self.response_complete:
            if kind != "http.response.body":
                raise RuntimeError(f"Expected ASGI message 'http.response.body', got '{kind}'.")
            self._body(message.get("body", b""), message.get("more_body", False))
        else:
            raise RuntimeError(f"Unexpected ASGI message '{kind}' after the response completed.")

    def write_chunk(self, body: bytes) -> bool:
        """Write ``body`` as the next chunk of a started chunked response, at once; False
        when it was not written (use ``send``, which waits or does what else is needed)."""
        if (
            not body
            or self.chunked_encoding is not True
            or self.response_complete
            or self.disconnected
            or self.flow.write_paused
        ):
            return False
        self._write(_frame(body))
        return True

    def _write(self, data: bytes) -> None:
        """Write ``data``, after the held head if there is one."""
        if self._held is not None:
            data, self._held = self._held + data, None
        if data:
            self.transport.write(data)

    def _head(self, status: int, extra: Any) -> bytes:
        """The status line and headers, as uvicorn writes them; the response has started."""
        self.response_started = True
        self.waiting_for_100_continue = False
        if self.access_log:
            scope = self.scope
            self.access_logger.info(
                '%s - "%s %s HTTP/%s" %d', get_client_addr(scope), scope["method"],
                get_path_with_query_string(scope), scope["http_version"], status,
            )  # fmt: skip
        content = [STATUS_LINE[status]]
        closing = False
        for name, value in (*self.default_headers, *extra):
            if not _name_ok(name):
                raise RuntimeError("Invalid HTTP header name.")
            if HEADER_VALUE_RE.search(value):
                raise RuntimeError("Invalid HTTP header value.")
            name = name.lower()
            if name == b"content-length" and self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
            elif name == b"connection" and b"close" in _tokens(value):
                self.keep_alive = False
                closing = True
            content += (name, b": ", value, b"\r\n")
        if not self.keep_alive and not closing:
            content.append(b"connection: close\r\n")
        bodiless = self.scope["method"] == "HEAD" or status in (204, 304)
        if self.chunked_encoding is None and not bodiless:
            self.chunked_encoding = True
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        return b"".join(content)

    def _body(self, body: bytes, more_body: bool) -> None:
        if self.scope["method"] == "HEAD":
            self.expected_content_length = 0
            data = b""
        elif self.chunked_encoding:
            data = _frame(body) if body else b""
            if not more_body:
                data += b"0\r\n\r\n"
        else:
            if len(body) > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length -= len(body)
            data = body
        self._write(data)
        if not more_body:
            if self.expected_content_length != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()
