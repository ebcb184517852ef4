"""Model constraints on concrete models: a request using a feature its model lacks, or a
``switchyard.require`` it fails, is a 400 naming the constraint; fallbacks that fail are
skipped. Over real sockets with the official openai SDK (routed requests:
tests/gateway/routing/test_routed_constraints.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from switchyard.gateway.constraints import Needs, needs_of
from switchyard.gateway.settings import build_settings
from tests.support.gateways import Gateway, Simulator, model_entry

MESSAGES: Any = [{"role": "user", "content": "Name a train."}]
SCHEMA: Any = {
    "type": "json_schema",
    "json_schema": {"name": "t", "schema": {"type": "object", "properties": {"x": {}}}},
}
TOOL: Any = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


@pytest.fixture
def gw(simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]) -> Gateway:
    """ "small" declares tools and JSON mode; "plain" declares no feature; "big" declares all
    and is where "down" (no endpoint answers) falls back after "small"."""
    small, plain, big = simulator("small"), simulator("plain"), simulator("big")
    chat = ["chat", "completions"]
    return gateway(
        models=[
            model_entry("small", small.base_url, capabilities=[*chat, "tools", "json_mode"],
                        params_b=8, max_context=32768, released="2024-07", tags=["eu"]),
            model_entry("plain", plain.base_url),
            model_entry("big", big.base_url, params_b=70, released="2025-02",
                        capabilities=[*chat, "tools", "json_mode", "json_schema", "vision"]),
            model_entry("down", "http://127.0.0.1:9/v1", capabilities=[*chat, "json_schema"],
                        fallbacks=["small", "big"]),
        ],
        upstream={"max_attempts": 1, "scrape_interval_s": 0},
    )  # fmt: skip


def sdk(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)


def refused(gw: Gateway, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(gw).chat.completions.create(messages=MESSAGES, max_tokens=4, **kwargs)
    assert caught.value.status_code == 400
    error: dict[str, Any] = caught.value.body  # type: ignore[assignment]
    assert error["type"] == "invalid_request_error"
    return error


def test_a_feature_the_model_does_not_support_is_a_400_naming_it(gw: Gateway) -> None:
    error = refused(gw, model="small", response_format=SCHEMA)
    assert error["param"] == "response_format"
    assert error["code"] == "constraints_unsatisfiable"
    assert "small: response_format needs json_schema (not supported)" in error["message"]


def test_a_feature_the_model_supports_passes(gw: Gateway) -> None:
    reply = sdk(gw).chat.completions.create(
        model="small", messages=MESSAGES, tools=[TOOL], tool_choice="required"
    )
    assert reply.choices[0].finish_reason == "tool_calls"


def test_a_model_that_declares_no_feature_gets_what_is_asked(gw: Gateway) -> None:
    """Undeclared is not refused on a concrete model: the caller chose it."""
    reply = sdk(gw).chat.completions.create(
        model="plain", messages=MESSAGES, response_format={"type": "json_object"}
    )
    assert reply.choices[0].message.content and reply.choices[0].message.content[0] == "{"


@pytest.mark.parametrize(
    ("model", "require", "param", "text"),
    [
        ("big", {"max_params_b": 10}, "max_params_b", "max_params_b ≤ 10 (has 70)"),
        ("small", {"min_context": 100000}, "min_context", "min_context ≥ 100000 (has 32768)"),
        ("plain", {"min_context": 1000}, "min_context", "min_context ≥ 1000 (unknown)"),
        ("small", {"released_after": "2025-01"}, "released_after", "2025-01 or later"),
        ("big", {"tags": ["eu"]}, "tags", "tags eu (not tagged)"),
        ("plain", {"capabilities": ["tools"]}, "capabilities", "capabilities tools (not declared)"),
        ("plain", {"min_params_b": 1}, "min_params_b", "(unknown)"),
    ],
)
def test_an_explicit_constraint_the_model_fails_is_a_400(
    gw: Gateway, model: str, require: dict[str, Any], param: str, text: str
) -> None:
    error = refused(gw, model=model, extra_body={"switchyard": {"require": require}})
    assert error["param"] == f"switchyard.require.{param}"
    assert text in error["message"]


def test_an_explicit_constraint_the_model_meets_passes(gw: Gateway) -> None:
    require = {"max_params_b": 10, "min_context": 32000, "capabilities": ["tools"],
               "released_after": "2024-07", "tags": ["eu"]}  # fmt: skip
    reply = sdk(gw).chat.completions.create(
        model="small", messages=MESSAGES, extra_body={"switchyard": {"require": require}}
    )
    assert reply.model == "small"


@pytest.mark.parametrize(
    ("require", "param"),
    [
        ("fast", "switchyard.require"),
        ({"max_size": 3}, "switchyard.require"),
        ({"max_params_b": "ten"}, "switchyard.require.max_params_b"),
        ({"max_params_b": 0}, "switchyard.require.max_params_b"),
        ({"min_context": 1.5}, "switchyard.require.min_context"),
        ({"released_after": "2025-13"}, "switchyard.require.released_after"),
        ({"released_after": "Jan 2025"}, "switchyard.require.released_after"),
        ({"capabilities": ["telepathy"]}, "switchyard.require.capabilities"),
        ({"capabilities": "tools"}, "switchyard.require.capabilities"),
        ({"tags": [1]}, "switchyard.require.tags"),
    ],
)
def test_a_malformed_require_is_a_400_naming_the_field(
    gw: Gateway, require: Any, param: str
) -> None:
    assert (
        refused(gw, model="small", extra_body={"switchyard": {"require": require}})["param"]
        == param
    )


def test_fallbacks_that_fail_the_constraints_are_skipped(gw: Gateway) -> None:
    """ "down" answers nothing; of its fallbacks only "big" supports json_schema."""
    resp = httpx.post(
        f"{gw.base_url}/chat/completions",
        json={"model": "down", "messages": MESSAGES, "response_format": SCHEMA},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-switchyard-fallback"] == "big"


def test_a_request_without_constraints_needs_nothing() -> None:
    assert needs_of({"model": "m", "messages": MESSAGES}, images=True) is None
    text = {"model": "m", "messages": MESSAGES, "response_format": {"type": "text"}}
    assert needs_of(text, images=True) is None


def test_a_model_without_a_field_fails_a_constraint_on_it() -> None:
    settings = build_settings({"models": [model_entry("m", "http://127.0.0.1:9/v1")]})
    model = settings.models[0]
    assert Needs().failures(model) == []
    for needs in (Needs(max_params_b=100), Needs(min_context=1), Needs(released_after="1990-01")):
        assert needs.failures(model), needs


def test_the_model_list_shows_what_requests_may_constrain_on(gw: Gateway) -> None:
    cards = {m.id: m for m in sdk(gw).models.list()}
    small = cards["small"].model_dump()
    assert small["params_b"] == 8 and small["released"] == "2024-07" and small["tags"] == ["eu"]
    assert small["capabilities"] == ["chat", "completions", "tools", "json_mode"]
    assert small["max_model_len"] == 32768
    assert "params_b" not in cards["plain"].model_dump()
