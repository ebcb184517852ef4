"""Real servers on real sockets for tests: any ASGI app under uvicorn in a background thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class ServerThread:
    """Runs ``app`` under uvicorn (uvloop + httptools) on 127.0.0.1:``port`` in a thread.

    ``stop()`` then ``start()`` again on the same port simulates a crash and restart.
    """

    def __init__(
        self,
        app: Any,
        port: int | None = None,
        lifespan: Literal["auto", "on", "off"] = "on",
        http: Any = "httptools",
        host: str = "127.0.0.1",
    ) -> None:
        """``http``: uvicorn's protocol; a gateway passes
        ``switchyard.gateway.connections.protocol``,
        as ``switchyard serve`` does. ``host``: another loopback address (127.0.0.x) lets
        several servers share one port, as pods behind one headless Service do."""
        self.app = app
        self.host = host
        self.port = port or free_port()
        self.lifespan = lifespan
        self.http = http
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            loop="uvloop",
            http=self.http,
            lifespan=self.lifespan,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def _run(self) -> None:
        assert self._server is not None
        self._server.run()

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=3)
        if self._thread.is_alive():  # connections still open past the graceful timeout
            self._server.force_exit = True
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def serving(app: Any, port: int | None = None) -> Iterator[ServerThread]:
    server = ServerThread(app, port).start()
    try:
        yield server
    finally:
        server.stop()
