"""The gateway's HTTP/1.1 protocol: uvicorn's httptools protocol with limits on connections.

Stock uvicorn waits forever for a request head that never completes (half a request line,
half its headers), accepts any number of connections, and answers what its parser rejects
(a bare CR, a NUL, folded headers) with ``400 text/plain``. ``GatewayHttpProtocol`` adds:

- a head timeout: a new connection gets ``header_timeout_s`` to send a whole request head,
  or is answered 408 and closed; between requests on a kept-alive connection, uvicorn's
  keep-alive timer (``keep_alive_s``) stays armed until the next head is complete, instead
  of being cancelled by its first byte;
- a cap on open connections per process: one over it is answered 503 and closed;
- rejections in OpenAI's error shape, with an ``x-request-id``.

Timers are per connection, never per request: the one armed when a connection opens is the
keep-alive timer uvicorn already arms after each response, and it is cancelled when the
head is complete, where stock uvicorn cancels it on the first byte. So a request costs what
it costs under stock uvicorn. Pass ``protocol(server)`` as uvicorn's ``http`` option.

What it refuses is counted in a ``ConnectionStats`` kept in uvicorn's per-process app state
(``STATS_KEY``), which every request's ``scope["state"]`` carries: ``GET /metrics`` hands it
to ``GatewayMetrics`` (``switchyard_http_connections``, ``switchyard_http_rejected_total``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import urllib.parse
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from switchyard.backends.errors import SwitchyardError
from switchyard.gateway.errors import (
    InvalidRequestError,
    RequestTimeoutError,
    TooManyConnectionsError,
)
from switchyard.gateway.http_cycle import GatewayCycle
from switchyard.gateway.metrics import HTTP_REJECTIONS
from switchyard.gateway.settings import ServerConfig

log = logging.getLogger("switchyard.http")

_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 503: b"Service Unavailable"}
STATS_KEY = "switchyard.connections"


class ConnectionStats:
    """One process's open client connections, their cap, and rejections by error code."""

    __slots__ = ("connections", "limit", "rejected")

    def __init__(self, connections: set[Any], limit: int) -> None:
        self.connections = connections  # uvicorn's live set of protocols
        self.limit = limit
        self.rejected = dict.fromkeys(HTTP_REJECTIONS, 0)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout_s: float = 10.0
    max_connections: int = 4096

    @classmethod
    def of(cls, server: ServerConfig) -> ConnectionLimits:
        return cls(server.header_timeout_s, server.max_connections)


def protocol(server: ServerConfig) -> Any:
    """uvicorn's ``http`` option: the protocol class bound to ``server``'s limits (a partial
    of a module-level class, so that uvicorn's worker processes can unpickle it)."""
    return functools.partial(GatewayHttpProtocol, limits=ConnectionLimits.of(server))


def error_bytes(err: SwitchyardError) -> bytes:
    """A whole HTTP/1.1 response for ``err``: OpenAI's JSON body, a fresh request id, and
    ``connection: close`` (the protocol closes the connection after writing it)."""
    body = err.to_json()
    reason = _REASONS.get(err.status, b"Error")
    head = [
        b"HTTP/1.1 %d %s" % (err.status, reason),
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        b"x-request-id: " + os.urandom(12).hex().encode(),
        b"connection: close",
    ]
    head += [f"{name}: {value}".encode("latin-1") for name, value in err.headers.items()]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class GatewayHttpProtocol(HttpToolsProtocol):
    """See the module docstring."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: ConnectionLimits = ConnectionLimits(),
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        stats = self.app_state.get(STATS_KEY)
        if stats is None:
            stats = ConnectionStats(self.connections, self.limits.max_connections)
            self.app_state[STATS_KEY] = stats
        self.stats: ConnectionStats = stats
        if len(self.connections) > self.limits.max_connections:
            log.debug("refused a connection: %d open", len(self.connections) - 1)
            self._reject(TooManyConnectionsError("too many open connections; try again"))
            return
        self.timeout_keep_alive_task = self.loop.call_later(
            self.limits.header_timeout_s, self._head_timed_out
        )

    def data_received(self, data: bytes) -> None:
        # As uvicorn's, except that the timer is left armed until the head is complete.
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as err:
            log.debug("rejected a malformed request: %s", err)
            self.send_400_response(str(err))
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def on_headers_complete(self) -> None:
        """The head is complete: as uvicorn's, with the request's cycle a ``GatewayCycle``
        (``switchyard.gateway.http_cycle``), and the head timer cancelled here."""
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
        scope, parser = self.scope, self.parser
        scope["method"] = parser.get_method().decode("ascii")
        version = parser.get_http_version()
        if version != "1.1":
            scope["http_version"] = version
        if parser.should_upgrade() and self._should_upgrade():
            return
        url = httptools.parse_url(self.url)
        path = url.path.decode("ascii")
        scope["path"] = self.root_path + (urllib.parse.unquote(path) if "%" in path else path)
        scope["raw_path"] = self.root_path.encode("ascii") + url.path
        scope["query_string"] = url.query or b""
        app = self.app
        if (
            self.limit_concurrency is not None
            and max(len(self.connections), len(self.tasks)) >= self.limit_concurrency
        ):
            app = service_unavailable
            self.logger.warning("Exceeded concurrency limit.")
        previous, self.cycle = self.cycle, self._cycle(version)
        if previous is None or previous.response_complete:
            self._start_asgi_task(self.cycle, app)
        else:  # a pipelined request waits for the one before it
            self.flow.pause_reading()
            self.pipeline.appendleft((self.cycle, app))

    def _cycle(self, version: str) -> GatewayCycle:
        return GatewayCycle(
            scope=self.scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=self.expect_100_continue,
            keep_alive=version != "1.0" and self.parser.should_keep_alive(),
            on_response=self.on_response_complete,
        )

    def send_400_response(self, msg: str) -> None:
        detail = msg if msg.isprintable() and len(msg) < 200 else "malformed request"
        err = InvalidRequestError(f"invalid HTTP request: {detail}", code="invalid_http_request")
        self._reject(err)

    def _head_timed_out(self) -> None:
        self.timeout_keep_alive_task = None
        if not self.transport.is_closing():
            self._reject(RequestTimeoutError("no complete request head in time"))

    def _reject(self, err: SwitchyardError) -> None:
        self._unset_keepalive_if_required()
        if err.code in self.stats.rejected:
            self.stats.rejected[err.code] += 1
        if not self.transport.is_closing():
            self.transport.write(error_bytes(err))
            self.transport.close()
