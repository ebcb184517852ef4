"""The Responses and Messages APIs for routed models: "auto" goes through the router like a chat
completion (same decision headers, same routing options), answered in the client's API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import openai

from tests.support.gateways import Gateway
from tests.support.routed import CANDIDATES, MESSAGES

NAMES = {name for name, _, _ in CANDIDATES}


def test_a_routed_response_names_the_chosen_model(routed: Callable[..., Gateway]) -> None:
    gw = routed()
    client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
    raw = client.responses.with_raw_response.create(
        model="auto",
        instructions=MESSAGES[0]["content"],
        input=MESSAGES[1]["content"],
        max_output_tokens=4,
    )
    response = raw.parse()
    chosen = raw.headers["x-switchyard-model"]
    assert chosen in NAMES and raw.headers["x-switchyard-decision-id"]
    assert response.model == chosen and response.output_text
    events = list(client.responses.create(model="auto", input="hi", max_output_tokens=4,
                                          stream=True))  # fmt: skip
    assert events[-1].type in ("response.completed", "response.incomplete")
    assert events[-1].response.model in NAMES


def test_a_routed_message_keeps_the_routing_options(routed: Callable[..., Gateway]) -> None:
    gw = routed()
    client = anthropic.Anthropic(base_url=gw.url, api_key="unused", max_retries=0)
    only = "mistralai/mistral-7b-chat"
    raw = client.messages.with_raw_response.create(
        model="auto",
        max_tokens=4,
        system=MESSAGES[0]["content"],
        messages=[{"role": "user", "content": MESSAGES[1]["content"]}],
        extra_body={"switchyard": {"models": [only]}},
    )
    message = raw.parse()
    assert raw.headers["x-switchyard-model"] == only and message.model == only
    messages: Any = [{"role": "user", "content": "hi"}]
    with client.messages.stream(model="auto", max_tokens=4, messages=messages) as stream:
        final = stream.get_final_message()
    assert final.model in NAMES and final.usage.output_tokens > 0
