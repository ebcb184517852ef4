"""Per-request model constraints on routed requests: ``switchyard.require`` and what the
request uses (tools, response_format, images) narrow the router's candidates before the
policy decides; none left is a 400 naming each model and what it fails. Through the official
openai SDK, the real embedder and the shipped router, against simulators."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support.gateways import Gateway, Simulator
from tests.support.routed import CANDIDATES, routed_settings

SMALL, MIXTRAL, GPT35, GPT4 = (name for name, _, _ in CANDIDATES)
CHAT = ["chat", "completions"]
METADATA: dict[str, dict[str, Any]] = {
    SMALL: {"params_b": 7.2, "max_context": 32768, "released": "2023-09", "tags": ["open", "eu"],
            "capabilities": [*CHAT, "tools", "json_mode"]},
    MIXTRAL: {"params_b": 46.7, "max_context": 32768, "released": "2023-12",
              "tags": ["open", "eu"], "capabilities": [*CHAT, "tools", "json_mode", "json_schema"]},
    GPT35: {"max_context": 16385, "released": "2023-11", "tags": ["us"],
            "capabilities": [*CHAT, "tools", "json_mode"]},
    GPT4: {"max_context": 128000, "released": "2023-11", "tags": ["us"],
           "capabilities": [*CHAT, "tools", "json_mode", "json_schema", "vision"]},
}  # fmt: skip
MESSAGES: Any = [{"role": "user", "content": "Prove that there are infinitely many primes."}]
SCHEMA: Any = {
    "type": "json_schema",
    "json_schema": {
        "name": "proof",
        "schema": {
            "type": "object",
            "properties": {"steps": {"type": "array", "items": {"type": "string"}}},
            "required": ["steps"],
        },
    },
}
IMAGE: Any = [{"role": "user", "content": [
    {"type": "text", "text": "What is in this picture?"},
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
]}]  # fmt: skip


@pytest.fixture
def gw(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway], embedder_cache: Path
) -> Gateway:
    """A routed gateway ("auto") over the four candidates, each with its metadata."""
    urls = {name: simulator(name).base_url for name in METADATA}
    settings = routed_settings(urls, embedder_cache)
    settings["models"] = [m | METADATA[m["name"]] for m in settings["models"]]
    return gateway(**settings)


def chosen(gw: Gateway, messages: Any = MESSAGES, **kwargs: Any) -> tuple[str, Any]:
    """(the model the router chose, the reply)."""
    raw = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0).chat.completions
    resp = raw.with_raw_response.create(model="auto", messages=messages, max_tokens=8, **kwargs)
    return resp.headers["x-switchyard-model"], resp.parse()


def refused(gw: Gateway, messages: Any = MESSAGES, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(openai.BadRequestError) as caught:
        chosen(gw, messages, **kwargs)
    error: dict[str, Any] = caught.value.body  # type: ignore[assignment]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "constraints_unsatisfiable"
    return error


def require(**constraints: Any) -> dict[str, Any]:
    return {"switchyard": {"require": constraints, "cost_weight": 0}}  # quality only


def test_without_constraints_the_router_picks_the_strongest_at_cost_weight_zero(
    gw: Gateway,
) -> None:
    assert chosen(gw, extra_body={"switchyard": {"cost_weight": 0}})[0] == GPT4


@pytest.mark.parametrize(
    ("constraints", "only"),
    [
        ({"max_params_b": 10}, SMALL),  # the others are bigger or of unknown size
        ({"min_params_b": 10}, MIXTRAL),
        ({"tags": ["eu"], "released_after": "2023-10"}, MIXTRAL),
        ({"capabilities": ["json_schema"], "tags": ["open"]}, MIXTRAL),
        ({"min_context": 20000, "tags": ["us"]}, GPT4),
    ],
)
def test_require_narrows_the_candidates_before_the_policy(
    gw: Gateway, constraints: dict[str, Any], only: str
) -> None:
    assert chosen(gw, extra_body=require(**constraints))[0] == only


def test_a_json_schema_request_goes_only_to_models_that_support_it(gw: Gateway) -> None:
    """Cheapest first (a high cost weight): mistral-7b would win, but lacks json_schema."""
    model, reply = chosen(gw, response_format=SCHEMA,
                          extra_body={"switchyard": {"cost_weight": 1e6}})  # fmt: skip
    assert model == MIXTRAL
    assert isinstance(json.loads(reply.choices[0].message.content)["steps"], list)


def test_an_image_goes_only_to_a_model_with_vision(gw: Gateway) -> None:
    assert chosen(gw, IMAGE, extra_body={"switchyard": {"cost_weight": 1e6}})[0] == GPT4


def test_unsatisfiable_constraints_are_a_400_naming_each_model_and_constraint(
    gw: Gateway,
) -> None:
    error = refused(gw, extra_body=require(max_params_b=10, capabilities=["json_schema"]))
    message = error["message"]
    assert "no candidate of router 'smart'" in message
    assert f"{SMALL}: capabilities json_schema (not supported)" in message
    assert f"{GPT4}: max_params_b ≤ 10 (unknown)" in message
    assert f"{MIXTRAL}: max_params_b ≤ 10 (has 46.7)" in message
    assert error["param"] == "switchyard.require"  # no single constraint fails everywhere


def test_a_constraint_every_candidate_fails_is_the_param(gw: Gateway) -> None:
    error = refused(gw, extra_body=require(released_after="2024-01"))
    assert error["param"] == "switchyard.require.released_after"


def test_an_implicit_need_nobody_meets_names_the_request_field(gw: Gateway) -> None:
    error = refused(gw, IMAGE, response_format=SCHEMA,
                    extra_body=require(tags=["eu"]))  # fmt: skip
    assert f"{MIXTRAL}: messages needs vision (not supported)" in error["message"]


def test_a_malformed_require_on_a_routed_request_is_a_400(gw: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        chosen(gw, extra_body=require(released_after="soon"))
    assert caught.value.body["param"] == "switchyard.require.released_after"  # type: ignore[index]


def test_models_that_declare_no_feature_still_serve_routed_tool_calls(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway], embedder_cache: Path
) -> None:
    """A config written before model metadata existed keeps working: implicit needs are held
    only against models that declare features."""
    urls = {name: simulator(name).base_url for name in METADATA}
    gw = gateway(**routed_settings(urls, embedder_cache))
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    model, _ = chosen(gw, tools=[tool], extra_body={"switchyard": {"cost_weight": 0}})
    assert model == GPT4  # the unconstrained choice, as without tools
