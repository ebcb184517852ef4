"""Prometheus metrics: requests, latency, tokens and cost from the configured prices."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.gateways import Gateway, Simulator, model_entry

MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "user", "content": "How are tokens priced?"}
]


def test_tokens_and_cost_follow_usage_and_prices(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sim = simulator("m")
    gw = gateway([model_entry("m", sim.base_url, price_in=3.0, price_out=15.0)])
    client = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    prompt = completion = 0
    for i in range(3):
        usage = client.chat.completions.create(model="m", messages=MESSAGES, seed=i).usage
        assert usage is not None
        prompt, completion = prompt + usage.prompt_tokens, completion + usage.completion_tokens
    for _ in range(2):  # the same stream twice: with usage, then without (counted anyway)
        chunks = list(client.chat.completions.create(
            model="m", messages=MESSAGES, seed=9, stream=True,
            stream_options={"include_usage": True}))  # fmt: skip
        usage = chunks[-1].usage
        assert usage is not None
        prompt, completion = prompt + usage.prompt_tokens, completion + usage.completion_tokens
    list(client.chat.completions.create(model="m", messages=MESSAGES, seed=9, stream=True))
    assert usage is not None
    prompt, completion = prompt + usage.prompt_tokens, completion + usage.completion_tokens

    assert gw.metric("switchyard_prompt_tokens_total", model="m") == prompt
    assert gw.metric("switchyard_completion_tokens_total", model="m") == completion
    assert gw.metric("switchyard_cost_usd_total", model="m") == pytest.approx(
        (prompt * 3.0 + completion * 15.0) / 1e6
    )


def test_requests_latency_and_in_flight_are_counted(
    sim_gateway: tuple[Simulator, Gateway],
) -> None:
    sim, gw = sim_gateway
    client = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    for _ in range(4):
        client.chat.completions.create(model="m", messages=MESSAGES)
    list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="other", messages=MESSAGES)
    labels = {"model": "m", "endpoint": sim.base_url, "status": "200"}
    assert gw.metric("switchyard_requests_total", **labels) == 5
    assert gw.metric("switchyard_request_duration_seconds_count", model="m") == 5
    assert gw.metric("switchyard_time_to_first_token_seconds_count", model="m") == 1
    assert gw.metric("switchyard_in_flight_requests", model="m") == 0
    breaker = {"model": "m", "endpoint": sim.base_url}
    assert gw.metric("switchyard_circuit_breaker_state", **breaker) == 0


def test_upstream_connections_are_kept_and_reported(
    sim_gateway: tuple[Simulator, Gateway],
) -> None:
    _, gw = sim_gateway
    client = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    for _ in range(3):  # one after the other: one keep-alive connection serves them all
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert gw.metric("switchyard_upstream_connections", kind="open") == 1
    assert gw.metric("switchyard_upstream_connections", kind="idle") == 1
    assert gw.metric("switchyard_upstream_connections", kind="limit") == 1024
    assert gw.metric("switchyard_upstream_connections", kind="waiting") == 0
    assert gw.metric("switchyard_upstream_connection_waits_total") == 0


def test_metrics_endpoint_serves_prometheus_text(sim_gateway: tuple[Simulator, Gateway]) -> None:
    _, gw = sim_gateway
    gw.client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
    response = httpx.get(f"{gw.url}/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(response.text)}
    assert {
        "switchyard_requests",
        "switchyard_request_duration_seconds",
        "switchyard_time_to_first_token_seconds",
        "switchyard_prompt_tokens",
        "switchyard_completion_tokens",
        "switchyard_cost_usd",
        "switchyard_upstream_errors",
        "switchyard_retries",
        "switchyard_in_flight_requests",
        "switchyard_circuit_breaker_state",
    } <= names
