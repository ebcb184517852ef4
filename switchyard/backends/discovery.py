"""Endpoint discovery: the pods of a model found by a source (DNS here, Kubernetes
EndpointSlices in ``switchyard.backends.discovery_k8s``) and kept current by a background task.

Discovery never runs on the request path. A ``Discovery`` reads its source's updates and hands each
new set of pods (``Target``: the pod's OpenAI base URL and its zone, if known) to ``on_change``; the
owner (``switchyard.gateway.upstreams``) then swaps the pool's endpoints atomically. A failed lookup
keeps the last known set: pods do not vanish because DNS hiccuped. What happened is logged once per
change — the set found, a lookup failing (with the reason and the set kept), a lookup working again
— never once per poll.

    source = DnsSource("pool-a.ns.svc.cluster.local", port=8000)
    discovery = Discovery(source, on_change=print, interval_s=5.0, model="m")
    discovery.start()                  # inside the running loop
    await discovery.wait_first(2.0)    # optional: the first answer (or the timeout)
    discovery.targets, discovery.errors
    await discovery.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

import dns.asyncresolver
import dns.exception
import dns.resolver

__all__ = ["Discovery", "DiscoveryError", "DnsSource", "Source", "Target", "pod_url"]

log = logging.getLogger("switchyard.backends")


class DiscoveryError(Exception):
    """A lookup that gave no usable answer; the message says why (for the one log line)."""


@dataclass(frozen=True, slots=True, order=True)
class Target:
    """One discovered pod: its OpenAI base URL and, where the source knows it, its zone."""

    url: str
    zone: str | None = None


def pod_url(address: str, port: int, scheme: str = "http", path: str = "/v1") -> str:
    """The base URL of the pod at ``address`` (IPv6 in brackets)."""
    host = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    return f"{scheme}://{host}:{port}{path.rstrip('/')}"


class Source(Protocol):
    """Yields the complete set of pods each time it may have changed; raises
    ``DiscoveryError`` when a lookup fails (the ``Discovery`` opens it again later)."""

    description: str

    def updates(self) -> AsyncIterator[frozenset[Target]]: ...

    async def aclose(self) -> None:
        """Release what a cancelled ``updates`` left open."""


class DnsSource:
    """The A and AAAA records of ``name``, looked up every ``interval_s``."""

    def __init__(
        self,
        name: str,
        port: int,
        *,
        scheme: str = "http",
        path: str = "/v1",
        interval_s: float = 5.0,
        timeout_s: float = 2.0,
        nameserver: str | None = None,
    ) -> None:
        self.name, self.port, self.scheme, self.path = name, port, scheme, path
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.nameserver = nameserver
        where = f" at {nameserver}" if nameserver else ""
        self.description = f"dns {name}:{port}{where}"
        self._resolver: dns.asyncresolver.Resolver | None = None
        self._pending: asyncio.Future[frozenset[Target]] | None = None

    async def updates(self) -> AsyncIterator[frozenset[Target]]:
        while True:
            yield await self.lookup()
            await asyncio.sleep(self.interval_s)

    async def lookup(self) -> frozenset[Target]:
        """Every address of the name now; ``DiscoveryError`` when there is none."""
        # Shielded: a cancelled caller must not cut a query between opening its UDP socket
        # and closing it (the socket would leak); ``aclose`` waits for it instead.
        self._pending = asyncio.ensure_future(self._lookup())
        return await asyncio.shield(self._pending)

    async def aclose(self) -> None:
        """Wait for a lookup still under way (bounded by ``timeout_s``)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await pending

    async def _lookup(self) -> frozenset[Target]:
        try:
            resolver = self._ensure_resolver()
        except dns.exception.DNSException as err:  # e.g. no nameserver in /etc/resolv.conf
            raise DiscoveryError(f"no resolver: {_short(err)}") from None
        found: set[str] = set()
        reasons: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await resolver.resolve(self.name, rdtype, search=True)
            except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN) as err:
                reasons.append(_short(err))
                continue
            except dns.exception.DNSException as err:
                raise DiscoveryError(_short(err)) from None
            found.update(r.to_text() for r in answer)
        if not found:
            raise DiscoveryError(reasons[0] if reasons else "no A or AAAA records")
        return frozenset(
            Target(pod_url(a, self.port, self.scheme, self.path)) for a in sorted(found)
        )

    def _ensure_resolver(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            resolver = dns.asyncresolver.Resolver(configure=self.nameserver is None)
            if self.nameserver is not None:
                host, port = _split_server(self.nameserver)
                resolver.nameservers = [host]
                resolver.port = port
            resolver.lifetime = self.timeout_s
            resolver.cache = None  # every poll asks the server: records change under us
            self._resolver = resolver
        return self._resolver


def _split_server(server: str) -> tuple[str, int]:
    """``10.0.0.10``, ``10.0.0.10:5353``, ``[::1]:5353`` or ``::1`` → (address, port)."""
    if server.startswith("["):
        host, _, port = server[1:].partition("]")
        return host, int(port.lstrip(":") or 53)
    if server.count(":") == 1:
        host, port = server.split(":")
        return host, int(port)
    return server, 53


def _short(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return text.splitlines()[0]


class Discovery:
    """Keeps the pods of one source current in the background and reports each change."""

    def __init__(
        self,
        source: Source,
        on_change: Callable[[frozenset[Target]], None],
        *,
        interval_s: float,
        model: str,
        initial: frozenset[Target] = frozenset(),
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self.source = source
        self.model = model
        self.interval_s = interval_s
        self.targets = initial  # the last known set: kept through failed lookups
        self.errors = 0  # failed lookups so far
        self.failing: str | None = None  # the reason while lookups fail
        self._on_change = on_change
        self._on_error = on_error
        self._answered = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start in the background (inside the running loop; idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def wait_first(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the first answer (found or failed); True if it came."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._answered.wait(), timeout_s)
        return self._answered.is_set()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.source.aclose()

    async def _run(self) -> None:
        while True:
            try:
                async for found in self.source.updates():
                    self._found(found)
            except DiscoveryError as err:
                self._failed(str(err))
            except Exception as err:
                # A bug or a foreign error must not end discovery for good: the pool would
                # silently freeze on the set it has.
                self._failed(f"{type(err).__name__}: {err}", exc_info=True)
            await asyncio.sleep(self.interval_s)

    def _found(self, found: frozenset[Target]) -> None:
        self._answered.set()
        if self.failing is not None:
            log.info("model %s: discovery from %s works again", self.model, self.source.description)
            self.failing = None
        if found == self.targets:
            return
        added = sorted(
            t.url + (f" (zone {t.zone})" if t.zone else "") for t in found - self.targets
        )
        gone = sorted(t.url for t in self.targets - found)
        self.targets = found
        log.info(
            "model %s: %d endpoint(s) from %s (new: %s; gone, draining: %s)",
            self.model, len(found), self.source.description,
            ", ".join(added) or "-", ", ".join(gone) or "-",
        )  # fmt: skip
        self._on_change(found)

    def _failed(self, reason: str, exc_info: bool = False) -> None:
        self._answered.set()
        self.errors += 1
        if self._on_error is not None:
            self._on_error()
        if self.failing == reason:
            return
        self.failing = reason
        log.warning(
            "model %s: discovery from %s failed: %s; keeping the %d last known endpoint(s)",
            self.model, self.source.description, reason, len(self.targets),
            exc_info=exc_info,
        )  # fmt: skip
