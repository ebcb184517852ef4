"""The joint decision under load: quality − λ·cost − μ·expected wait. A saturated cheap model
spills over to the next best, ``max_ttft_ms`` excludes models that cannot start in time, and
a request none of whose candidates can is shed with 429 and Retry-After."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from switchyard.resources import default_router
from switchyard.routers.embedding import StaticEmbedder, prompt_text
from switchyard.routers.pipeline import RoutingPipeline
from switchyard.routers.policy import Constraints
from tests.support.gateways import Gateway, Simulator
from tests.support.hold import held_streams
from tests.support.routed import CANDIDATES, routed_settings

NAMES = [name for name, _, _ in CANDIDATES]
CHEAPEST = "mistralai/mistral-7b-chat"
MESSAGES: Any = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def saturated(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    embedder_cache: Path,
) -> Iterator[Gateway]:
    """A routed gateway whose cheapest candidate runs one sequence and queues two more."""
    sims = {
        name: simulator(name, "slow", max_num_seqs=1) if name == CHEAPEST else simulator(name)
        for name in NAMES
    }
    settings = routed_settings({n: s.base_url for n, s in sims.items()}, embedder_cache)
    gw = gateway(**settings, upstream={"scrape_interval_s": 0.1, "seed": 1})
    assert chosen(gw, cost_weight=1e9) == CHEAPEST  # idle: the cheapest wins
    url = sims[CHEAPEST].base_url
    with held_streams(url, CHEAPEST, 3):
        scraper = gw.server.app.state.upstreams.scraper
        deadline = time.monotonic() + 10
        while (snap := scraper.snapshot(url)) is None or snap.waiting < 2:
            assert time.monotonic() < deadline, "the queue never showed in the scrape"
            time.sleep(0.02)
        yield gw


def chosen(gw: Gateway, **options: Any) -> str:
    client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
    with client:
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=MESSAGES, max_tokens=2, extra_body={"switchyard": options}
        )
    return raw.headers["x-switchyard-model"]


def next_cheapest(embedder: StaticEmbedder) -> str:
    pipe = RoutingPipeline.load(default_router(), embedder)
    allowed = Constraints(frozenset(n for n in NAMES if n != CHEAPEST))
    return pipe.decide([prompt_text(MESSAGES)], cost_weight=1e9, constraints=allowed)[0].model


def test_a_saturated_cheap_model_spills_over_to_the_next_best(
    saturated: Gateway, static_embedder: StaticEmbedder
) -> None:
    spill = next_cheapest(static_embedder)
    # Three requests ahead of one slot: expected wait 3.5 x its learned time per request
    # (~0.1 s from the idle probe), worth more than any cost difference at μ = 1e6 a second.
    assert chosen(saturated, cost_weight=1e9, latency_weight=1e6) == spill
    # A latency target excludes it whatever the weights.
    assert chosen(saturated, cost_weight=1e9, max_ttft_ms=100) == spill


def test_a_request_no_candidate_can_start_in_time_is_shed_with_429(saturated: Gateway) -> None:
    body = {
        "model": "auto",
        "messages": MESSAGES,
        "switchyard": {"models": [CHEAPEST], "max_ttft_ms": 100},
    }
    resp = saturated.client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 429, resp.text
    assert resp.json()["error"]["code"] == "model_overloaded"
    assert "max_ttft_ms" in resp.json()["error"]["message"]
    assert int(resp.headers["retry-after"]) >= 1
    assert saturated.metric("switchyard_shed_total", model="smart") == 1
    bad = saturated.client.post(
        "/v1/chat/completions",
        json=body | {"switchyard": {"max_ttft_ms": -1}},
        headers={"x-switchyard-latency-weight": "2"},
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "max_ttft_ms"
