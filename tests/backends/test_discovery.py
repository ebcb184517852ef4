"""DNS discovery against a real DNS server (dnsmasq on a loopback port): every address of a
name, records changed and reloaded, a failed lookup keeping the last known set (logged once
per change), and a server that does not answer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest

from switchyard.backends.discovery import Discovery, DiscoveryError, DnsSource, Target, pod_url
from tests.support.dnsmasq import DOMAIN, Dnsmasq
from tests.support.servers import free_port

NAME = f"pool.{DOMAIN}"
LOGGER = "switchyard.backends"


def urls(targets: frozenset[Target]) -> list[str]:
    return sorted(t.url for t in targets)


def source(dns_server: Dnsmasq, name: str = NAME, interval_s: float = 5.0) -> DnsSource:
    return DnsSource(name, 8000, nameserver=dns_server.nameserver, interval_s=interval_s)


async def until(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {within_s}s"
        await asyncio.sleep(0.01)


def test_pod_url_brackets_ipv6_addresses() -> None:
    assert pod_url("10.1.2.3", 8000) == "http://10.1.2.3:8000/v1"
    assert pod_url("fd00::5", 8000, "https", "/v1/") == "https://[fd00::5]:8000/v1"


def test_a_lookup_returns_every_address_of_the_name(dns_server: Dnsmasq) -> None:
    dns_server.set_records(NAME, ["127.0.0.4", "127.0.0.2", "127.0.0.3"])
    found = asyncio.run(source(dns_server).lookup())
    assert urls(found) == [f"http://127.0.0.{i}:8000/v1" for i in (2, 3, 4)]


def test_a_name_without_records_is_a_failed_lookup(dns_server: Dnsmasq) -> None:
    with pytest.raises(DiscoveryError, match="does not exist"):
        asyncio.run(source(dns_server, f"nobody.{DOMAIN}").lookup())


def test_a_dns_server_that_does_not_answer_fails_within_the_timeout() -> None:
    silent = DnsSource(NAME, 8000, nameserver=f"127.0.0.1:{free_port()}", timeout_s=0.3)
    with pytest.raises(DiscoveryError):
        asyncio.run(asyncio.wait_for(silent.lookup(), 3.0))


def test_discovery_follows_records_changed_and_reloaded(dns_server: Dnsmasq) -> None:
    dns_server.set_records(NAME, ["127.0.0.2"])
    changes: list[list[str]] = []

    async def scenario() -> None:
        discovery = Discovery(
            source(dns_server, interval_s=0.05),
            lambda found: changes.append(urls(found)),
            interval_s=0.05,
            model="m",
        )
        discovery.start()
        assert await discovery.wait_first(2.0)
        await asyncio.to_thread(dns_server.set_records, NAME, ["127.0.0.2", "127.0.0.3"])
        await until(lambda: len(changes) == 2)
        await asyncio.to_thread(dns_server.set_records, NAME, ["127.0.0.3"])
        await until(lambda: len(changes) == 3)
        await discovery.aclose()

    asyncio.run(scenario())
    a, b = "http://127.0.0.2:8000/v1", "http://127.0.0.3:8000/v1"
    assert changes == [[a], [a, b], [b]]


def test_a_failed_lookup_keeps_the_last_known_set_and_says_so_once(
    dns_server: Dnsmasq, caplog: pytest.LogCaptureFixture
) -> None:
    dns_server.set_records(NAME, ["127.0.0.2", "127.0.0.3"])
    changes: list[frozenset[Target]] = []
    errors: list[int] = []

    async def scenario() -> Discovery:
        discovery = Discovery(
            source(dns_server, interval_s=0.05),
            changes.append,
            interval_s=0.05,
            model="m",
            on_error=lambda: errors.append(1),
        )
        discovery.start()
        await discovery.wait_first(2.0)
        await asyncio.to_thread(dns_server.set_records, NAME, [])
        await until(lambda: discovery.errors >= 5)
        await asyncio.to_thread(dns_server.set_records, NAME, ["127.0.0.2", "127.0.0.3"])
        await until(lambda: discovery.failing is None)
        await discovery.aclose()
        return discovery

    with caplog.at_level(logging.INFO, logger=LOGGER):
        discovery = asyncio.run(scenario())
    assert len(changes) == 1  # the failures changed nothing
    assert len(discovery.targets) == 2
    assert len(errors) == discovery.errors >= 5
    messages = [r.getMessage() for r in caplog.records]
    failed = [m for m in messages if "failed" in m]
    assert len(failed) == 1
    assert "keeping the 2 last known endpoint(s)" in failed[0]
    assert sum("works again" in m for m in messages) == 1
