"""Routed models through the real OpenAI SDK: "auto" and a router's name pick a candidate with
the real ONNX embedder and the shipped router, per request options, errors, and streaming."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from switchyard.resources import default_router
from switchyard.routers.embedding import StaticEmbedder, prompt_text
from switchyard.routers.pipeline import RoutingPipeline
from switchyard.routers.policy import Constraints
from tests.support.gateways import Gateway
from tests.support.routed import CANDIDATES

NAMES = [name for name, _, _ in CANDIDATES]
CHEAPEST = "mistralai/mistral-7b-chat"
MESSAGES: Any = [
    {"role": "system", "content": "You are a careful mathematician."},
    {"role": "user", "content": "Prove that there are infinitely many prime numbers."},
]


def sdk(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)


def chosen(gw: Gateway, model: str = "auto", **kwargs: Any) -> str:
    """The model the gateway chose; checks the response agrees with its headers."""
    raw = sdk(gw).chat.completions.with_raw_response.create(
        model=model, messages=MESSAGES, max_tokens=4, **kwargs
    )
    reply = raw.parse()
    assert reply.model == raw.headers["x-switchyard-model"]
    assert raw.headers["x-switchyard-router"] == "smart"
    assert len(raw.headers["x-switchyard-decision-id"]) == 32
    return str(reply.model)


def expected(embedder: StaticEmbedder, lam: float, allowed: list[str] = NAMES) -> str:
    pipe = RoutingPipeline.load(default_router(), embedder)
    text = prompt_text(MESSAGES)
    decision = pipe.decide([text], cost_weight=lam, constraints=Constraints(frozenset(allowed)))
    return decision[0].model


def test_auto_and_the_router_name_route_to_a_candidate(routed: Callable[..., Gateway]) -> None:
    gw = routed()
    assert chosen(gw, "auto") in NAMES
    assert chosen(gw, "smart") in NAMES
    cards = {m.id: m for m in sdk(gw).models.list()}
    assert {"auto", "smart", *NAMES} <= set(cards)
    assert cards["auto"].owned_by == "switchyard-router"
    assert gw.metric("switchyard_routed_requests_total", router="smart", model=chosen(gw)) >= 1
    assert gw.metric("switchyard_routing_decision_seconds_count", router="smart") == 3


def test_cost_weight_extremes_match_the_pipeline(
    routed: Callable[..., Gateway], static_embedder: StaticEmbedder
) -> None:
    gw = routed(bandit={"noise": 0.0})  # no feedback, no exploration: the offline decision
    best = expected(static_embedder, 0.0)
    pipe = RoutingPipeline.load(default_router(), static_embedder)
    quality = pipe.decide([prompt_text(MESSAGES)], cost_weight=0.0)[0].quality
    assert best == max(NAMES, key=lambda m: quality[m])
    assert chosen(gw, extra_body={"switchyard": {"cost_weight": 0}}) == best
    assert chosen(gw, extra_body={"switchyard": {"cost_weight": 1e9}}) == CHEAPEST
    assert expected(static_embedder, 1e9) == CHEAPEST
    default = expected(static_embedder, pipe.cost_weight)
    assert chosen(gw) == default


def test_headers_set_the_same_options(
    routed: Callable[..., Gateway], static_embedder: StaticEmbedder
) -> None:
    gw = routed()
    assert chosen(gw, extra_headers={"X-Switchyard-Cost-Weight": "1e9"}) == CHEAPEST
    forced = {"X-Switchyard-Models": "gpt-4-1106-preview", "X-Switchyard-Cost-Weight": "1e9"}
    assert chosen(gw, extra_headers=forced) == "gpt-4-1106-preview"
    cheap = ["mistralai/mistral-7b-chat", "mistralai/mixtral-8x7b-chat"]
    capped = {"X-Switchyard-Max-Price": "0.6", "X-Switchyard-Cost-Weight": "0"}
    assert chosen(gw, extra_headers=capped) == expected(static_embedder, 0.0, cheap)
    # the body wins over a header
    body = {"switchyard": {"cost_weight": 1e9}}
    assert chosen(gw, extra_body=body, extra_headers={"X-Switchyard-Cost-Weight": "0"}) == CHEAPEST


def test_restricting_models_forces_the_one_left(routed: Callable[..., Gateway]) -> None:
    gw = routed()
    for name in NAMES:
        only = {"switchyard": {"models": [name], "cost_weight": 1e9}}
        assert chosen(gw, extra_body=only) == name


@pytest.mark.parametrize(
    ("options", "headers", "param"),
    [
        ({"cost_weight": -1}, {}, "cost_weight"),
        ({"cost_weight": "lots"}, {}, "cost_weight"),
        ({}, {"X-Switchyard-Cost-Weight": "nan"}, "cost_weight"),
        ({"models": ["gpt-5"]}, {}, "models"),
        ({"models": []}, {}, "models"),
        ({"max_price_per_mtok": 0.01}, {}, "models"),
        ({}, {"X-Switchyard-Max-Price": "0.1"}, "models"),
        ({"colour": "blue"}, {}, "switchyard"),
    ],
)
def test_bad_options_are_400_in_openais_shape(
    routed: Callable[..., Gateway], options: Any, headers: dict[str, str], param: str
) -> None:
    gw = routed()
    with pytest.raises(openai.BadRequestError) as caught:
        chosen(gw, extra_body={"switchyard": options}, extra_headers=headers)
    assert caught.value.status_code == 400
    body: Any = caught.value.body
    assert body["type"] == "invalid_request_error" and body["param"] == param


def test_embeddings_to_a_router_and_a_non_object_option_are_400(
    routed: Callable[..., Gateway],
) -> None:
    gw = routed()
    resp = gw.client.post("/v1/embeddings", json={"model": "auto", "input": "hello"})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "model"
    resp = gw.client.post(
        "/v1/chat/completions", json={"model": "auto", "messages": MESSAGES, "switchyard": 3}
    )
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "switchyard"


def test_completions_route_on_the_prompt_and_options_never_reach_the_backend(
    routed: Callable[..., Gateway],
) -> None:
    gw = routed()
    raw = sdk(gw).completions.with_raw_response.create(
        model="auto", prompt="Say hi", max_tokens=3,
        extra_body={"switchyard": {"cost_weight": 1e9}},
    )  # fmt: skip
    assert raw.parse().model == raw.headers["x-switchyard-model"] == CHEAPEST
    # a concrete model with routing options: the options are dropped, not forwarded
    reply = sdk(gw).chat.completions.create(
        model=CHEAPEST, messages=MESSAGES, max_tokens=2, extra_body={"switchyard": {}}
    )
    assert reply.model == CHEAPEST


def test_streaming_through_auto_records_the_outcome_at_the_end(
    routed: Callable[..., Gateway],
) -> None:
    gw = routed(preset="fast")  # tokens take a few ms each, so the stream lasts a while
    outcomes = gw.server.app.state.routing.outcomes
    with sdk(gw).chat.completions.with_streaming_response.create(
        model="auto", messages=MESSAGES, stream=True, max_tokens=8
    ) as response:
        model = response.headers["x-switchyard-model"]
        decision = response.headers["x-switchyard-decision-id"]
        stream = iter(response.parse())
        chunks = [next(stream)]
        assert outcomes.record(decision) is None  # not before the stream ends
        chunks += list(stream)
    assert chunks and all(c.model == model for c in chunks)
    assert sum(1 for c in chunks if c.choices) >= 8 and all(c.usage is None for c in chunks)
    record = outcomes.record(decision)
    assert record is not None
    assert (record.model, record.router, record.status) == (model, "smart", "200")
    assert record.completion_tokens == 8 and record.prompt_tokens > 0
    assert record.cost_usd is not None and record.cost_usd > 0
    assert record.ttft_s is not None and 0 < record.ttft_s <= record.latency_s
    assert set(record.candidates) == set(NAMES)
    assert all(set(c) == {"quality", "cost"} for c in record.candidates.values())


def test_concurrent_decisions_are_embedded_in_batches(routed: Callable[..., Gateway]) -> None:
    """The static embedder decides on the event loop at its next turn, so a burst spread over
    several turns could go one by one; routing.batch_wait_ms holds the first for the rest."""
    gw = routed(batch_wait_ms=100)
    service = gw.server.app.state.routing

    async def burst() -> list[str]:
        async with openai.AsyncOpenAI(base_url=gw.base_url, api_key="x", max_retries=0) as c:
            replies = await asyncio.gather(
                *(
                    c.chat.completions.create(
                        model="auto",
                        messages=[{"role": "user", "content": f"Question number {i}?"}],
                        max_tokens=2,
                    )
                    for i in range(16)
                )
            )
        return [r.model for r in replies]

    before = service.batches
    models = asyncio.run(burst())
    assert len(models) == 16 and set(models) <= set(NAMES)
    batches = service.batches - before
    assert 1 <= batches < 16
    assert gw.metric("switchyard_routing_batches_total") == service.batches
    assert len(service.outcomes.records) == 16


def test_feedback_rewards_score_minus_cost(routed: Callable[..., Gateway]) -> None:
    gw = routed()
    raw = sdk(gw).chat.completions.with_raw_response.create(
        model="auto", messages=MESSAGES, max_tokens=4, extra_body={"switchyard": {"cost_weight": 7}}
    )
    decision = raw.headers["x-switchyard-decision-id"]
    record = gw.server.app.state.routing.outcomes.record(decision)
    assert record is not None and record.cost_weight == 7 and record.cost_usd is not None

    first = gw.client.post("/v1/feedback", json={"decision_id": decision, "score": 0.8})
    assert first.status_code == 200
    reward = pytest.approx(0.8 - 7 * record.cost_usd)
    assert first.json() == {"decision_id": decision, "reward": reward}
    again = gw.client.post("/v1/feedback", json={"decision_id": decision, "thumbs": "down"})
    assert again.status_code == 200 and again.json() == first.json()

    unknown = gw.client.post("/v1/feedback", json={"decision_id": "f" * 32, "score": 1})
    assert unknown.status_code == 404 and unknown.json()["error"]["type"]
    for bad in (
        {"decision_id": decision, "score": 1.5},
        {"decision_id": decision, "score": True},
        {"decision_id": decision, "thumbs": "sideways"},
        {"decision_id": decision, "score": 1, "thumbs": "up"},
        {"decision_id": decision},
        {"score": 0.5},
        [decision],
    ):
        resp = gw.client.post("/v1/feedback", json=bad)
        assert resp.status_code == 400, bad
        assert resp.json()["error"]["type"] == "invalid_request_error"
    broken = gw.client.post("/v1/feedback", content=b"{not json")
    assert broken.status_code == 400


def test_thumbs_up_is_a_score_of_one(routed: Callable[..., Gateway]) -> None:
    gw = routed()
    raw = sdk(gw).chat.completions.with_raw_response.create(
        model="auto", messages=MESSAGES, max_tokens=2, extra_body={"switchyard": {"cost_weight": 0}}
    )
    decision = raw.headers["x-switchyard-decision-id"]
    resp = httpx.post(f"{gw.url}/v1/feedback", json={"decision_id": decision, "thumbs": "up"})
    assert resp.json() == {"decision_id": decision, "reward": 1.0}


def test_one_batch_decides_each_request_under_its_own_options(
    routed: Callable[..., Gateway], static_embedder: StaticEmbedder
) -> None:
    """Requests with different cost weights and model lists share a batch (one embedding
    call, one prediction) and still get their own decisions."""
    gw = routed(bandit={"noise": 0.0}, batch_wait_ms=100)
    best, service = expected(static_embedder, 0.0), gw.server.app.state.routing
    options = [{"cost_weight": 0}, {"cost_weight": 1e9}, {"cost_weight": 0, "models": NAMES[:2]}]

    async def burst() -> list[str]:
        async with openai.AsyncOpenAI(base_url=gw.base_url, api_key="x", max_retries=0) as c:
            replies = await asyncio.gather(*(
                c.chat.completions.create(model="auto", messages=MESSAGES, max_tokens=2,
                                          extra_body={"switchyard": o})
                for o in options * 2
            ))  # fmt: skip
        return [r.model for r in replies]

    before = service.batches
    models = asyncio.run(burst())
    assert service.batches - before < len(models)
    assert models == [best, CHEAPEST, expected(static_embedder, 0.0, NAMES[:2])] * 2
