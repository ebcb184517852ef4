"""Endpoint discovery end to end: a real DNS server (dnsmasq) whose records change, simulated
vLLM pods on 127.0.0.x sharing one port as pods behind a headless Service do, the gateway on
real sockets. Scaling 1 → 3 → 2 under load loses no request; each pod is scraped and chosen
on its own /metrics; pods that stay keep their state; a reload keeps the pods it knows."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from switchyard.backends.simulator import build_config, create_simulator_app
from switchyard.gateway.settings import build_settings
from switchyard.gateway.upstreams import Upstreams
from tests.support.dnsmasq import DOMAIN, Dnsmasq
from tests.support.gateways import Gateway, queue_of, served, wait_for
from tests.support.hold import held_streams
from tests.support.servers import ServerThread, free_port

NAME = f"pool-m.{DOMAIN}"
CHAT: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "Hi."}]}
UPSTREAM: dict[str, Any] = {"scrape_interval_s": 0.1, "seed": 3}


class Pods:
    """Simulated vLLM pods of model "m" on 127.0.0.x, all on one port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.running: dict[str, ServerThread] = {}

    def url(self, ip: str) -> str:
        return f"http://{ip}:{self.port}/v1"

    def start(self, ip: str, preset: str = "fast", **perf: Any) -> str:
        app = create_simulator_app(build_config("m", preset, 0, **perf))
        self.running[ip] = ServerThread(app, self.port, lifespan="off", host=ip).start()
        return self.url(ip)

    def stop(self, ip: str) -> None:
        self.running.pop(ip).stop()


@pytest.fixture
def pods() -> Iterator[Pods]:
    started = Pods()
    yield started
    for ip in list(started.running):
        started.stop(ip)


def discovered_model(dns_server: Dnsmasq, pods: Pods, **extra: Any) -> dict[str, Any]:
    discover = {"name": NAME, "port": pods.port, "nameserver": dns_server.nameserver}
    return {
        "name": "m",
        "price_input_per_mtok": 1.0,
        "price_output_per_mtok": 2.0,
        "endpoints": [{"discover": discover | {"interval_s": 0.1}, **extra}],
    }


def upstreams_of(gw: Gateway) -> Upstreams:
    upstreams: Upstreams = gw.server.app.state.upstreams
    return upstreams


def endpoint_names(gw: Gateway) -> list[str]:
    return sorted(ep.name for ep in upstreams_of(gw).pools["m"].endpoints)


class Load:
    """Clients sending chat completions (half of them streamed) until stopped."""

    def __init__(self, url: str, clients: int = 4) -> None:
        self.url = url
        self.sent = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(clients)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def _run(self, i: int) -> None:
        body = CHAT | {"max_tokens": 4, "stream": i % 2 == 1}
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                try:
                    resp = client.post("/v1/chat/completions", json=body)
                    if resp.status_code != 200:
                        self.failures.append(f"{resp.status_code}: {resp.text[:200]}")
                except httpx.HTTPError as err:
                    self.failures.append(f"{type(err).__name__}: {err}")
                self.sent += 1


def test_scaling_one_to_three_to_two_pods_under_load_loses_no_request(
    dns_server: Dnsmasq, pods: Pods, gateway: Callable[..., Gateway]
) -> None:
    a, b, c = (pods.start(ip) for ip in ("127.0.0.2", "127.0.0.3", "127.0.0.4"))
    dns_server.set_records(NAME, ["127.0.0.2"])
    gw = gateway([discovered_model(dns_server, pods)], upstream=UPSTREAM)
    assert endpoint_names(gw) == [a]  # found before the gateway took its first request
    with Load(gw.url) as load:
        wait_for(lambda: load.sent >= 20)
        dns_server.set_records(NAME, ["127.0.0.2", "127.0.0.3", "127.0.0.4"])
        wait_for(lambda: endpoint_names(gw) == [a, b, c])
        # New pods take traffic at once.
        wait_for(lambda: min(served(gw, "m", b), served(gw, "m", c)) >= 5)
        gone = next(ep for ep in upstreams_of(gw).pools["m"].endpoints if ep.name == a)
        dns_server.set_records(NAME, ["127.0.0.3", "127.0.0.4"])
        wait_for(lambda: endpoint_names(gw) == [b, c])
        wait_for(lambda: gone.in_flight == 0)  # drained: what was sent there finished
        served_by_a = served(gw, "m", a)
        pods.stop("127.0.0.2")  # the pod terminates once out of the endpoints
        before = load.sent
        wait_for(lambda: load.sent >= before + 40)
    assert load.failures == []
    assert served(gw, "m", a) == served_by_a  # nothing new went to the pod that left
    total = sum(served(gw, "m", u) for u in (a, b, c))
    assert total == load.sent


def test_each_discovered_pod_is_chosen_on_its_own_metrics(
    dns_server: Dnsmasq, pods: Pods, gateway: Callable[..., Gateway]
) -> None:
    busy = pods.start("127.0.0.2", preset="slow", max_num_seqs=1)
    idle = [pods.start(ip) for ip in ("127.0.0.3", "127.0.0.4")]
    dns_server.set_records(NAME, ["127.0.0.2", "127.0.0.3", "127.0.0.4"])
    gw = gateway([discovered_model(dns_server, pods, max_num_seqs=8)], upstream=UPSTREAM)
    with held_streams(busy, "m", 3):  # straight to the pod: only its /metrics shows it
        wait_for(queue_of(gw, busy, 2))
        for _ in range(12):
            resp = gw.client.post("/v1/chat/completions", json=CHAT | {"max_tokens": 2})
            assert resp.is_success
    assert served(gw, "m", busy) == 0
    assert sum(served(gw, "m", u) for u in idle) == 12
    assert {ep.max_num_seqs for ep in upstreams_of(gw).pools["m"].endpoints} == {8}


def test_pods_that_stay_keep_their_endpoint_state_across_changes(
    dns_server: Dnsmasq, pods: Pods, gateway: Callable[..., Gateway]
) -> None:
    a, b = pods.start("127.0.0.2"), pods.start("127.0.0.3")
    dns_server.set_records(NAME, ["127.0.0.2"])
    gw = gateway([discovered_model(dns_server, pods)], upstream=UPSTREAM)
    assert gw.client.post("/v1/chat/completions", json=CHAT | {"max_tokens": 2}).is_success
    first = upstreams_of(gw).pools["m"].endpoints[0]
    assert first.service_s is not None  # learned from the request just served
    dns_server.set_records(NAME, ["127.0.0.2", "127.0.0.3"])
    wait_for(lambda: endpoint_names(gw) == [a, b])
    kept = next(ep for ep in upstreams_of(gw).pools["m"].endpoints if ep.name == a)
    assert kept is first


def test_a_failed_lookup_keeps_serving_the_last_known_pods_and_counts_the_error(
    dns_server: Dnsmasq, pods: Pods, gateway: Callable[..., Gateway]
) -> None:
    a = pods.start("127.0.0.2")
    dns_server.set_records(NAME, ["127.0.0.2"])
    gw = gateway([discovered_model(dns_server, pods)], upstream=UPSTREAM)
    dns_server.set_records(NAME, [])  # NXDOMAIN: the Service's records are gone
    wait_for(lambda: upstreams_of(gw).discovery_errors.get("m", 0) >= 3)
    assert endpoint_names(gw) == [a]
    assert gw.client.post("/v1/chat/completions", json=CHAT | {"max_tokens": 2}).is_success
    # The gateway's own registry, as its /metrics serves it.
    assert gw.metric("switchyard_discovered_endpoints", model="m") == 1
    errors = gw.registry.get_sample_value("switchyard_discovery_errors_total", {"model": "m"})
    assert errors is not None and errors >= 3


def test_a_model_whose_pods_are_not_found_yet_answers_503_and_is_not_ready(
    dns_server: Dnsmasq, pods: Pods, gateway: Callable[..., Gateway]
) -> None:
    gw = gateway([discovered_model(dns_server, pods)], upstream=UPSTREAM)
    resp = gw.client.post("/v1/chat/completions", json=CHAT | {"max_tokens": 2})
    assert resp.status_code == 503
    assert gw.client.get("/readyz").status_code == 503
    start = time.monotonic()
    pods.start("127.0.0.2")
    dns_server.set_records(NAME, ["127.0.0.2"])
    wait_for(lambda: gw.client.get("/readyz").status_code == 200)
    assert time.monotonic() - start < 5
    assert gw.client.post("/v1/chat/completions", json=CHAT | {"max_tokens": 2}).is_success


def test_a_reload_keeps_serving_the_pods_already_found_with_their_state(
    dns_server: Dnsmasq, pods: Pods
) -> None:
    a = pods.start("127.0.0.2")
    dns_server.set_records(NAME, ["127.0.0.2"])
    settings = build_settings({"models": [discovered_model(dns_server, pods)]})
    retimed = build_settings(
        {"models": [discovered_model(dns_server, pods)], "upstream": {"connect_timeout_s": 1}}
    )

    async def scenario() -> tuple[list[str], bool, bool]:
        upstreams = Upstreams(settings)
        await upstreams.start()
        first = upstreams.pools["m"].endpoints[0]
        upstreams.reload(settings)  # no lookup has answered the new sources yet
        after = upstreams.pools["m"].endpoints
        kept = after[0] is first  # same entry, same upstream section: counts and all
        upstreams.reload(retimed)
        renewed = upstreams.pools["m"].endpoints[0] is not first  # new timeouts: rebuilt
        await upstreams.close()
        return [ep.name for ep in after], kept, renewed

    assert asyncio.run(scenario()) == ([a], True, True)


def test_a_pod_that_dies_before_its_record_goes_costs_no_request_under_load(
    dns_server: Dnsmasq, pods: Pods, gateway: Callable[..., Gateway]
) -> None:
    a, b = pods.start("127.0.0.2"), pods.start("127.0.0.3")
    dns_server.set_records(NAME, ["127.0.0.2", "127.0.0.3"])
    gw = gateway([discovered_model(dns_server, pods)], upstream=UPSTREAM)
    with Load(gw.url) as load:
        wait_for(lambda: min(served(gw, "m", a), served(gw, "m", b)) >= 5)
        pods.stop("127.0.0.2")  # gone, while DNS still lists it: connects fail, then retry
        before = load.sent
        wait_for(lambda: load.sent >= before + 20)
        dns_server.set_records(NAME, ["127.0.0.3"])
        wait_for(lambda: endpoint_names(gw) == [b])
        before = load.sent
        wait_for(lambda: load.sent >= before + 20)
    assert load.failures == []
    assert gw.metric("switchyard_retries_total", model="m", endpoint=b) >= 1
