"""The ``slo`` balancer end to end: real simulators, real scraping, the gateway on real
sockets. A fast idle replica gets the requests while a slow one is busy; a model whose every
replica is over its TTFT budget answers 429 with Retry-After (counted in
``switchyard_slo_shed_total``) and the same model with room serves; a request's own
``max_ttft_ms`` replaces the configured target; a stream counts as starting until its first
chunk; with an ITL target, a replica decoding slower than it gets no request; a prompt whose
own prefill is over the target is served by an idle replica, not shed; bad ``upstream.slo``
settings fail naming the field."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from switchyard.backends.engine_state import EngineSnapshot
from switchyard.gateway.settings import SettingsError, build_settings
from tests.support.gateways import (
    Gateway,
    Simulator,
    model_entry,
    queue_of,
    scraped,
    served,
    wait_for,
)
from tests.support.hold import held_streams

CHAT: dict[str, Any] = {"messages": [{"role": "user", "content": "Hi."}], "max_tokens": 2}
SLO: dict[str, Any] = {"balancer": "slo", "scrape_interval_s": 0.1, "seed": 3}
EMPTY = EngineSnapshot(0, 0, 0.0)


def chat(gw: Gateway) -> Any:
    return gw.client.post("/v1/chat/completions", json={"model": "m", **CHAT})


def test_a_fast_idle_replica_gets_the_requests_while_a_slow_one_queues(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    slow = simulator("m", preset="slow", max_num_seqs=1)
    fast = simulator("m", preset="fast")
    gw = gateway([model_entry("m", slow.base_url, fast.base_url)], upstream=SLO)
    with held_streams(slow.base_url, "m", 3):  # one running, two waiting, straight to it
        wait_for(queue_of(gw, slow.base_url, 2))
        for _ in range(12):
            assert chat(gw).status_code == 200
    assert served(gw, "m", fast.base_url) == 12
    assert served(gw, "m", slow.base_url) == 0
    assert gw.metric("switchyard_slo_shed_total", model="m") == 0


def test_a_model_over_its_ttft_budget_is_shed_with_429_and_serves_again_with_room(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sim = simulator("m", preset="slow", max_num_seqs=1)
    upstream = SLO | {"scrape_interval_s": 0.5, "slo": {"ttft_s": 0.01}}
    gw = gateway([model_entry("m", sim.base_url)], upstream=upstream)
    assert chat(gw).status_code == 200  # the replica's hold time is learned from this one
    with held_streams(sim.base_url, "m", 3):
        wait_for(queue_of(gw, sim.base_url, 2))
        resp = chat(gw)
    assert resp.status_code == 429, resp.text
    error = resp.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "model_overloaded")
    assert "0.01s" in error["message"]
    assert int(resp.headers["retry-after"]) >= 1
    assert gw.metric("switchyard_slo_shed_total", model="m") == 1
    assert sim.metric("vllm:request_success_total") == 1  # the shed request never reached it

    def drained() -> bool:
        snap = scraped(gw, sim.base_url)
        return snap is not None and snap.waiting == 0 and snap.running == 0

    wait_for(drained)
    assert chat(gw).status_code == 200
    assert gw.metric("switchyard_slo_shed_total", model="m") == 1


def test_a_request_s_own_max_ttft_ms_reaches_replica_choice(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sim = simulator("m", preset="slow", max_num_seqs=1)
    gw = gateway([model_entry("m", sim.base_url)], upstream=SLO | {"scrape_interval_s": 0.5})
    assert chat(gw).status_code == 200  # the replica's hold time is learned from this one
    tight = {"model": "m", **CHAT, "switchyard": {"max_ttft_ms": 10}}
    with held_streams(sim.base_url, "m", 3):
        wait_for(queue_of(gw, sim.base_url, 2))
        resp = gw.client.post("/v1/chat/completions", json=tight)
        bad = gw.client.post(
            "/v1/chat/completions", json=tight | {"switchyard": {"max_ttft_ms": "soon"}}
        )
    assert resp.status_code == 429, resp.text  # upstream.slo.ttft_s (1 s) did not decide
    assert "within 0.01s" in resp.json()["error"]["message"]
    assert gw.metric("switchyard_slo_shed_total", model="m") == 1
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "max_ttft_ms"


def test_a_stream_counts_as_starting_until_its_first_chunk(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sim = simulator("m", preset="slow", max_num_seqs=1)
    gw = gateway([model_entry("m", sim.base_url)], upstream=SLO | {"slo": {"shed": False}})
    endpoint = gw.server.app.state.upstreams.pools["m"].endpoints[0]
    answers: list[Any] = []

    def ask(stream: bool) -> None:
        body = {"model": "m", **CHAT, "stream": stream}
        answers.append(gw.client.post("/v1/chat/completions", json=body))

    with held_streams(sim.base_url, "m", 1):  # the one batch slot is taken: both queue
        wait_for(lambda: sim.metric("vllm:num_requests_running") == 1)
        asking = [threading.Thread(target=ask, args=(s,)) for s in (True, False)]
        for thread in asking:
            thread.start()
        wait_for(lambda: endpoint.in_flight == 2)
        assert endpoint.starting == 1  # the stream; a JSON request has no first chunk to see
    for thread in asking:
        thread.join(timeout=30)
    assert [a.status_code for a in answers] == [200, 200]
    assert endpoint.starting == 0 and endpoint.in_flight == 0


def test_a_replica_decoding_slower_than_the_itl_target_gets_no_request(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    crawl = simulator("m", preset="slow", decode_base_s=0.08)  # ~80 ms between tokens
    fast = simulator("m", preset="fast")
    # Tokens straight to the slow decoder: the gateways see its ITL, not its hold time.
    direct = httpx.post(f"{crawl.base_url}/chat/completions", timeout=30,
                        json={"model": "m", **CHAT, "max_tokens": 4})  # fmt: skip
    assert direct.status_code == 200
    entry = [model_entry("m", crawl.base_url, fast.base_url)]
    untargeted = gateway(entry, upstream=SLO)
    targeted = gateway(entry, upstream=SLO | {"slo": {"itl_s": 0.05}})

    def itl_seen(gw: Gateway) -> float | None:
        return (scraped(gw, crawl.base_url) or EMPTY).itl_s

    for gw in (untargeted, targeted):
        wait_for(functools.partial(lambda g: itl_seen(g) is not None, gw))
        assert (itl_seen(gw) or 0.0) > 0.07
    assert chat(untargeted).status_code == 200
    assert served(untargeted, "m", crawl.base_url) == 1  # idle and listed first: it wins
    for _ in range(6):
        assert chat(targeted).status_code == 200
    assert served(targeted, "m", fast.base_url) == 6
    assert targeted.metric("switchyard_slo_shed_total", model="m") == 0


@pytest.mark.parametrize(
    ("upstream", "named"),
    [
        ({"balancer": "slo", "slo": {"ttft_s": 0}}, "upstream.slo.ttft_s"),
        ({"balancer": "slo", "slo": {"shed_below": 2}}, "upstream.slo.shed_below"),
        ({"balancer": "slo", "slo": {"itl_s": -0.05}}, "upstream.slo.itl_s"),
        ({"balancer": "slo", "slo": {"ttft_ms": 500}}, "upstream.slo.ttft_ms"),
        ({"balancer": "slowest"}, "upstream.balancer"),
    ],
)
def test_bad_slo_settings_fail_naming_the_field(upstream: dict[str, Any], named: str) -> None:
    models = [model_entry("m", "http://127.0.0.1:9/v1")]
    with pytest.raises(SettingsError, match=named.replace(".", r"\.")):
        build_settings({"models": models, "upstream": upstream})


def test_a_prompt_too_long_for_the_target_is_served_by_an_idle_replica_not_shed(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    idle, busy = simulator("m", preset="fast"), simulator("m", preset="fast", max_num_seqs=1)
    upstream = SLO | {"prefix_scoring": True, "slo": {"ttft_s": 0.05}}
    gw = gateway([model_entry("m", idle.base_url, busy.base_url)], upstream=upstream)
    assert chat(gw).status_code == 200  # to the idle one (ties go first): its speed is learned
    # ~2,000 uncached tokens at the default 0.1 ms a token: 0.2 s of prefill, over 0.05 s.
    long = {"messages": [{"role": "user", "content": "lorem ipsum " * 1000}], "max_tokens": 2}
    with held_streams(busy.base_url, "m", 2):  # the other replica has a queue
        wait_for(queue_of(gw, busy.base_url, 1))
        resp = gw.client.post("/v1/chat/completions", json={"model": "m", **long})
    assert resp.status_code == 200, resp.text  # the idle replica starts it at once
    assert served(gw, "m", idle.base_url) == 2
    assert gw.metric("switchyard_slo_shed_total", model="m") == 0
