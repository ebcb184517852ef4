"""Load-aware replicas end to end: real simulators, real scraping, the gateway on real
sockets. A replica whose engine queues gets no traffic, a saturated model is shed with 429 and
Retry-After or falls back to another model before the first byte, and retries respect each
endpoint's retry budget."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

import pytest
import uvloop

from switchyard.gateway.settings import build_settings
from switchyard.gateway.upstreams import Upstreams
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
from tests.support.servers import free_port

CHAT: dict[str, Any] = {"messages": [{"role": "user", "content": "Hi."}], "max_tokens": 2}
SCRAPE: dict[str, Any] = {"scrape_interval_s": 0.1, "seed": 3}


def test_a_replica_whose_engine_queues_gets_no_new_requests(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    busy = simulator("m", preset="slow", max_num_seqs=1)
    idle = simulator("m", preset="fast")
    gw = gateway([model_entry("m", busy.base_url, idle.base_url)], upstream=SCRAPE)
    with held_streams(busy.base_url, "m", 3):  # one running, two waiting, straight to it
        wait_for(queue_of(gw, busy.base_url, 2))
        for _ in range(12):
            assert gw.client.post("/v1/chat/completions", json={"model": "m", **CHAT}).is_success
    assert served(gw, "m", idle.base_url) == 12
    assert served(gw, "m", busy.base_url) == 0


def test_a_saturated_model_is_shed_with_429_and_retry_after(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sim = simulator("m", preset="slow", max_num_seqs=1)
    upstream = SCRAPE | {"max_queue_delay_s": 1.0}
    gw = gateway([model_entry("m", sim.base_url)], upstream=upstream)
    with held_streams(sim.base_url, "m", 3):
        wait_for(queue_of(gw, sim.base_url, 2))
        resp = gw.client.post("/v1/chat/completions", json={"model": "m", **CHAT})
    assert resp.status_code == 429
    assert resp.json()["error"]["code"] == "model_overloaded"
    assert resp.json()["error"]["type"] == "rate_limit_error"
    assert int(resp.headers["retry-after"]) >= 1
    assert gw.metric("switchyard_shed_total", model="m") == 1
    assert sim.metric("vllm:request_success_total") == 0  # it never reached the backend


def test_a_saturated_or_dead_model_falls_back_to_the_next_before_the_first_byte(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    slow = simulator("m", preset="slow", max_num_seqs=1)
    backup = simulator("backup")
    dead = f"http://127.0.0.1:{free_port()}/v1"
    models = [
        model_entry("m", slow.base_url, fallbacks=["backup"]),
        model_entry("gone", dead, fallbacks=["backup"]),
        model_entry("backup", backup.base_url),
    ]
    gw = gateway(models, upstream=SCRAPE | {"max_queue_delay_s": 1.0})
    for stream in (False, True):
        resp = gw.client.post(
            "/v1/chat/completions", json={"model": "gone", "stream": stream, **CHAT}
        )
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-switchyard-fallback"] == "backup"
    with held_streams(slow.base_url, "m", 3):
        wait_for(queue_of(gw, slow.base_url, 2))
        resp = gw.client.post("/v1/chat/completions", json={"model": "m", **CHAT})
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-switchyard-fallback"] == "backup"
    assert resp.json()["model"] == "backup"
    assert gw.metric("switchyard_fallbacks_total", model="gone", fallback="backup") == 2
    assert gw.metric("switchyard_fallbacks_total", model="m", fallback="backup") == 1


def test_fallbacks_must_name_other_configured_models(
    gateway: Callable[..., Gateway],
) -> None:
    from switchyard.gateway.settings import SettingsError

    with pytest.raises(SettingsError, match="fallbacks"):
        gateway([model_entry("m", "http://127.0.0.1:1/v1", fallbacks=["nope"])])


def test_retries_to_an_endpoint_stop_when_its_retry_budget_is_spent(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    failing = simulator("m", error_rate=1.0).base_url
    healthy = simulator("m").base_url
    upstream = {
        "balancer": "round_robin",
        "breaker_failures": 100,
        "endpoint_retry_ratio": 0.0,
        "endpoint_retry_reserve": 1.0,
    }
    gw = gateway([model_entry("m", failing, healthy)], upstream=upstream)
    post = {"model": "m", **CHAT}
    # Each pick takes the next turn, retries included: failing, healthy (the retry), failing.
    assert gw.client.post("/v1/chat/completions", json=post).status_code == 200
    # The healthy endpoint's budget is spent, so this retry does not go there...
    assert gw.client.post("/v1/chat/completions", json=post).status_code == 502
    # ...while first attempts are never limited by it.
    assert gw.client.post("/v1/chat/completions", json=post).status_code == 200
    assert gw.metric("switchyard_retries_total", model="m", endpoint=healthy) == 1
    assert served(gw, "m", healthy) == 2


def test_scraping_runs_only_when_an_interval_is_set(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sim = simulator("m")
    off = gateway([model_entry("m", sim.base_url)], upstream={"scrape_interval_s": 0})
    assert off.server.app.state.upstreams.scraper is None
    on = gateway([model_entry("m", sim.base_url)], upstream=SCRAPE)
    wait_for(lambda: scraped(on, sim.base_url) is not None)
    assert on.client.post("/v1/chat/completions", json={"model": "m", **CHAT}).is_success


def test_a_stream_whose_first_token_is_late_times_out_although_its_headers_came(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sim = simulator("m", preset="slow", max_num_seqs=1)  # sends headers, then waits its turn
    upstream = {"scrape_interval_s": 0, "first_byte_timeout_s": 0.3}
    gw = gateway([model_entry("m", sim.base_url)], upstream=upstream)
    with held_streams(sim.base_url, "m", 1):
        wait_for(lambda: sim.metric("vllm:num_requests_running") == 1)
        started = time.monotonic()
        resp = gw.client.post("/v1/chat/completions", json={"model": "m", "stream": True, **CHAT})
        took = time.monotonic() - started
    assert resp.status_code == 504
    assert resp.json()["error"]["code"] == "upstream_timeout"
    assert 0.3 <= took < 2.0


def test_requests_sharing_a_system_prompt_share_an_affinity_key() -> None:
    from switchyard.gateway.load import affinity_for
    from switchyard.gateway.settings import Capability

    def chat(system: str, user: str) -> dict[str, Any]:
        return {
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]
        }

    key = affinity_for(chat("You are terse.", "a"), Capability.chat, 1024)
    assert key is not None
    assert affinity_for(chat("You are terse.", "b"), Capability.chat, 1024) == key
    assert affinity_for(chat("You are verbose.", "a"), Capability.chat, 1024) != key
    # Without a system prompt, the prompt's first characters are the key.
    long = {"prompt": "x" * 50 + "tail one"}
    other = {"prompt": "x" * 50 + "tail two"}
    assert affinity_for(long, Capability.completions, 50) == affinity_for(
        other, Capability.completions, 50
    )
    assert affinity_for({"input": "e"}, Capability.embeddings, 50) is None


def test_prefix_affinity_keeps_a_shared_system_prompt_on_one_replica(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    replicas = [simulator("m") for _ in range(3)]
    urls = [r.base_url for r in replicas]
    upstream = {**SCRAPE, "prefix_affinity": True}
    gw = gateway([model_entry("m", *urls)], upstream=upstream)

    def send(system: str, n: int) -> None:
        for i in range(n):
            messages = [{"role": "system", "content": system},
                        {"role": "user", "content": f"question {i}"}]  # fmt: skip
            body = {"model": "m", "messages": messages, "max_tokens": 2}
            assert gw.client.post("/v1/chat/completions", json=body).is_success

    send("You are a terse assistant for the billing team.", 10)
    counts = [served(gw, "m", url) for url in urls]
    assert sorted(counts) == [0, 0, 10]  # one replica took them all (one at a time: no load)
    for k in range(6):  # other system prompts have other homes
        send(f"You are assistant number {k}.", 2)
    assert sum(served(gw, "m", url) > 0 for url in urls) >= 2


def test_expected_delays_are_read_once_per_tick_of_the_event_loop_clock() -> None:
    model = {"name": "m", "price_input_per_mtok": 0, "price_output_per_mtok": 0}
    settings = build_settings(
        {
            "models": [model | {"endpoints": [{"url": f"http://127.0.0.1:{free_port()}/v1"}]}],
            "upstream": {"scrape_interval_s": 0},
        }
    )

    async def scenario() -> tuple[dict[str, float], ...]:
        upstreams = Upstreams(settings)
        await upstreams.start()
        try:
            first = upstreams.expected_delays(["m", "gone"])
            for endpoint in upstreams.pools["m"].endpoints:
                endpoint.in_flight += 1000  # load that arrives within the same tick
            same = upstreams.expected_delays(["m"])
            await asyncio.sleep(0.01)  # uvloop's clock moves on between turns
            later = upstreams.expected_delays(["m"])
        finally:
            await upstreams.close()
        return first, same, later

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        first, same, later = runner.run(scenario())
    assert first["gone"] == math.inf
    assert same == {"m": first["m"]}  # routed requests of one turn share one policy call
    assert later["m"] > first["m"]
