"""A real DNS server for discovery tests: Debian's ``dnsmasq`` on a loopback port, answering
from a hosts file that a test rewrites and reloads (SIGHUP), as a headless Service's records
change when pods come and go."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import dns.resolver

from tests.support.servers import free_port

DOMAIN = "switchyard.test"


def available() -> bool:
    return shutil.which("dnsmasq") is not None


def _free_udp_port() -> int:
    while True:
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


class Dnsmasq:
    """``dnsmasq`` serving ``*.switchyard.test`` from ``set_records`` on 127.0.0.1:``port``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.hosts = workdir / "hosts"
        self.port = _free_udp_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Dnsmasq:
        self.hosts.write_text("", encoding="utf-8")
        os.chmod(self.workdir, 0o755)  # dnsmasq may read as another user
        cmd = [
            shutil.which("dnsmasq") or "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            f"--port={self.port}",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            f"--addn-hosts={self.hosts}",
            f"--local=/{DOMAIN}/",  # unknown names in it: NXDOMAIN, never forwarded
            "--cache-size=0",
            "--local-ttl=0",
            f"--pid-file={self.workdir / 'dnsmasq.pid'}",
        ]
        if os.geteuid() == 0:
            cmd.append("--user=root")
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready()
        return self

    def set_records(self, name: str, addresses: Iterable[str]) -> None:
        """Answer ``name`` with ``addresses`` (none: NXDOMAIN) from now on."""
        lines = [f"{a} {name}\n" for a in addresses]
        self.hosts.write_text("".join(lines), encoding="utf-8")
        assert self._proc is not None, "start() first"
        self._proc.send_signal(signal.SIGHUP)
        self._wait_for(name, set(addresses))

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=5)
            if proc.stderr is not None:
                proc.stderr.close()

    def _resolver(self) -> dns.resolver.Resolver:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = self.port
        resolver.lifetime = 0.5
        resolver.cache = None
        return resolver

    def _lookup(self, name: str) -> set[str] | None:
        try:
            return {r.to_text() for r in self._resolver().resolve(name, "A")}
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return set()
        except dns.exception.DNSException:
            return None

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 10
        while self._lookup(f"probe.{DOMAIN}") is None:
            assert self._proc is not None
            if self._proc.poll() is not None or time.monotonic() > deadline:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                raise RuntimeError(f"dnsmasq did not start on port {self.port}: {err}")
            time.sleep(0.05)

    def _wait_for(self, name: str, addresses: set[str]) -> None:
        # SIGHUP is asynchronous: the change counts once the server answers with it.
        deadline = time.monotonic() + 5
        while self._lookup(name) != addresses:
            if time.monotonic() > deadline:
                raise RuntimeError(f"dnsmasq still answers {self._lookup(name)} for {name}")
            time.sleep(0.02)
