"""Real Redis topologies for tests, from the Debian binaries on free loopback ports.

- ``RedisClusterSet``: ``masters`` x (1 + ``replicas``) ``redis-server --cluster-enabled yes``
  joined by ``redis-cli --cluster create``; ``kill_master_of(key)`` kills the master serving a
  key and waits until a replica is promoted and the cluster is whole again.
- ``RedisSentinelSet``: one master, one replica and three ``redis-sentinel`` (quorum 2);
  ``kill_master()`` kills the master and waits until the sentinels promote the replica.

Every process is started and stopped here; never the machine's shared Redis.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.redis import RedisServer, _free_port, command

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
REDIS_SENTINEL = shutil.which("redis-sentinel") or "/usr/bin/redis-sentinel"
NODE_TIMEOUT_MS = 1000  # how long a master may be silent before its replica takes over


def sentinel_available() -> bool:
    return Path(REDIS_SENTINEL).is_file()


def cluster_available() -> bool:
    return Path(REDIS_CLI).is_file()


def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if check():
                return
        time.sleep(0.05)
    raise TimeoutError(f"{what}: not after {timeout}s")


def _text(port: int, *args: str) -> str:
    return command(port, *args, timeout=2.0).decode(errors="replace")


class RedisClusterSet:
    """A real Redis Cluster: ``url`` is ``redis+cluster://`` with every master as a seed."""

    def __init__(self, workdir: Path, masters: int = 3, replicas: int = 1) -> None:
        extra = ("--cluster-node-timeout", str(NODE_TIMEOUT_MS))
        self.nodes = [
            RedisServer(workdir / f"node{i}", cluster=True, slots=False, extra=extra)
            for i in range(masters * (1 + replicas))
        ]
        self.replicas = replicas

    @property
    def url(self) -> str:
        seeds = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes if n.running)
        return f"redis+cluster://{seeds}"

    def start(self) -> RedisClusterSet:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *addresses, "--cluster-replicas",
             str(self.replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        eventually(self._whole, 30, "cluster_state:ok on every node with replicas in sync")
        return self

    def _whole(self) -> bool:
        live = [n for n in self.nodes if n.running]
        if not all("cluster_state:ok" in _text(n.port, "CLUSTER", "INFO") for n in live):
            return False
        roles = [_text(n.port, "INFO", "replication") for n in live]
        return all("master_link_status:up" in r for r in roles if "role:slave" in r)

    def master_of(self, key: str) -> RedisServer:
        """The node serving ``key`` now."""
        port = self._port_of(key)
        return next(n for n in self.nodes if n.port == port)

    def _port_of(self, key: str) -> int:
        live = next(n for n in self.nodes if n.running)
        slot = int(command(live.port, "CLUSTER", "KEYSLOT", key)[1:].strip())
        for line in _text(live.port, "CLUSTER", "NODES").splitlines()[1:]:
            fields = line.split()
            if len(fields) < 8 or "master" not in fields[2] or "fail" in fields[2]:
                continue
            for part in fields[8:]:
                low, _, high = part.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return int(fields[1].split("@")[0].rsplit(":", 1)[1])
        return -1

    def kill_master_of(self, key: str, timeout: float = 20.0) -> float:
        """Kill the master serving ``key``; returns seconds until its replica served it."""
        dead = self.master_of(key)
        dead.stop()
        started = time.monotonic()
        eventually(lambda: self._port_of(key) not in (-1, dead.port) and self._ok(),
                   timeout, "replica promoted")  # fmt: skip
        return time.monotonic() - started

    def _ok(self) -> bool:
        return all(
            "cluster_state:ok" in _text(n.port, "CLUSTER", "INFO") for n in self.nodes if n.running
        )

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class RedisSentinelSet:
    """One master, one replica, three sentinels watching ``MASTER`` (quorum 2)."""

    MASTER = "switchyard"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.master = RedisServer(workdir / "master")
        self.replica = RedisServer(
            workdir / "replica", extra=("--replicaof", "127.0.0.1", str(self.master.port))
        )
        self.sentinel_ports = [_free_port(False) for _ in range(3)]
        self._sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.MASTER}"

    def start(self) -> RedisSentinelSet:
        self.master.start()
        self.replica.start()
        eventually(lambda: "master_link_status:up" in _text(self.replica.port, "INFO",
                   "replication"), 10, "replica in sync")  # fmt: skip
        for port in self.sentinel_ports:
            self._sentinels.append(self._sentinel(port))
        eventually(lambda: all(self._sees_replica(p) for p in self.sentinel_ports), 15,
                   "sentinels know the master, its replica and each other")  # fmt: skip
        return self

    def _sentinel(self, port: int) -> subprocess.Popen[bytes]:
        folder = self.workdir / f"sentinel{port}"
        folder.mkdir(parents=True, exist_ok=True)
        conf = folder / "sentinel.conf"  # the sentinel rewrites it: a file of its own
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
            f"sentinel monitor {self.MASTER} 127.0.0.1 {self.master.port} 2\n"
            f"sentinel down-after-milliseconds {self.MASTER} 500\n"
            f"sentinel failover-timeout {self.MASTER} 5000\n",
            encoding="utf-8",
        )
        with open(folder / "sentinel.log", "wb") as log:
            return subprocess.Popen(
                [REDIS_SENTINEL, str(conf)], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    def _sees_replica(self, port: int) -> bool:
        info = _text(port, "INFO", "sentinel")
        return "slaves=1,sentinels=3" in info

    def master_port(self) -> int:
        """The master's port as the first sentinel names it."""
        reply = _text(self.sentinel_ports[0], "SENTINEL", "get-master-addr-by-name", self.MASTER)
        return int(reply.split("\r\n")[-2])

    def kill_master(self, timeout: float = 20.0) -> float:
        """Kill the master; returns seconds until every sentinel names the replica."""
        self.master.stop()
        started = time.monotonic()
        eventually(lambda: all(self._names_replica(p) for p in self.sentinel_ports), timeout,
                   "sentinels promoted the replica")  # fmt: skip
        eventually(lambda: "role:master" in _text(self.replica.port, "INFO", "replication"),
                   timeout, "the replica is a master")  # fmt: skip
        return time.monotonic() - started

    def _names_replica(self, port: int) -> bool:
        reply = _text(port, "SENTINEL", "get-master-addr-by-name", self.MASTER)
        return reply.split("\r\n")[-2] == str(self.replica.port)

    def stop(self) -> None:
        for proc in self._sentinels:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
        self.replica.stop()
        self.master.stop()
