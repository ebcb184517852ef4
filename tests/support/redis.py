"""A real, private ``redis-server`` for tests: a free loopback port, no persistence, a temporary
directory. ``stop()`` then ``start()`` brings it back on the same port (empty, as after a
crash); ``pause()``/``resume()`` freeze it (SIGSTOP/SIGCONT), so that commands time out.

Never the machine's shared Redis on 6379: every server here is started and stopped by a test.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from tests.support.servers import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def available() -> bool:
    return Path(REDIS_SERVER).is_file()


def command(port: int, *args: str, timeout: float = 1.0) -> bytes:
    """One command in RESP, its raw reply (enough for PING, CLUSTER ... and friends)."""
    payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout) as conn:
        conn.sendall(payload.encode())
        reply = conn.recv(65536)
        if reply.startswith(b"$"):  # a bulk string: read until all of it arrived
            size = int(reply[1 : reply.index(b"\r\n")])
            while len(reply) < reply.index(b"\r\n") + 2 + size + 2:
                reply += conn.recv(65536)
        return reply


# Cluster nodes listen on a port and on its bus port (port + 10000). A node restarted on its
# port finds both taken if an outgoing connection was given one meanwhile, which happens in
# the kernel's ephemeral range (32768-60999 by default): so both are chosen below it.
_CLUSTER_PORTS = (20000, 22767)


def _free_port(cluster: bool) -> int:
    """A free port; for a cluster node one whose bus port (port + 10000) is free too, both
    below the ephemeral range."""
    if not cluster:
        return free_port()
    rng = random.Random()
    while True:
        port = rng.randint(*_CLUSTER_PORTS)
        if _bindable(port) and _bindable(port + 10000):
            return port


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class RedisServer:
    """``redis-server`` on 127.0.0.1:``port`` (a free one by default); ``cluster=True`` runs it
    as a one-node Redis Cluster owning every slot (multi-key commands must stay in one slot),
    or, with ``slots=False``, as a node waiting to join a cluster. ``extra``: more arguments
    (``--replicaof``, ``--cluster-node-timeout``)."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        cluster: bool = False,
        slots: bool = True,
        extra: Sequence[str] = (),
    ) -> None:
        self.workdir = workdir
        self.port = port or _free_port(cluster)
        self.cluster = cluster
        self.slots = slots
        self.extra = tuple(extra)
        self._proc: subprocess.Popen[bytes] | None = None
        self._starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> RedisServer:
        if self.running:
            return self
        self._starts += 1
        data = self.workdir / f"run{self._starts}"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(data), "--daemonize", "no",
        ]  # fmt: skip
        if self.cluster:
            argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        argv += self.extra
        with open(data / "redis.log", "wb") as log:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait(lambda: command(self.port, "PING") == b"+PONG\r\n", timeout, data)
        if self.cluster and self.slots:
            command(self.port, "CLUSTER", "ADDSLOTSRANGE", "0", "16383")
            self._wait(lambda: b"cluster_state:ok" in command(self.port, "CLUSTER", "INFO"),
                       timeout, data)  # fmt: skip
        return self

    def _wait(self, ready: Callable[[], bool], timeout: float, data: Path) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                log = (data / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server on port {self.port} exited:\n{log}")
            with contextlib.suppress(OSError):
                if ready():
                    return
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"redis-server on port {self.port} not ready after {timeout}s")

    def stop(self) -> None:
        """Kill it (no shutdown save: it comes back empty); the port is closed on return."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGCONT)  # in case it was paused
        proc.kill()
        proc.wait(timeout=10)

    def pause(self) -> None:
        """Freeze the server: connections stay open but nothing is answered."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def redis_running(workdir: Path, *, cluster: bool = False) -> Iterator[RedisServer]:
    server = RedisServer(workdir, cluster=cluster).start()
    try:
        yield server
    finally:
        server.stop()
