"""``n``, ``logprobs`` and ``response_format`` pass through the gateway as the engine answers
them, streamed and not (several choices' events in one chunk included): the official openai
SDK over real sockets, against the simulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.support.gateways import Gateway, Simulator, model_entry

MESSAGES: Any = [{"role": "user", "content": "Name three trains."}]


@pytest.fixture
def client(simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]) -> openai.OpenAI:
    gw = gateway(models=[model_entry("m", simulator("m").base_url)])
    return openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)


def test_n_choices_with_logprobs_stream_as_they_are_answered_whole(client: openai.OpenAI) -> None:
    kwargs: Any = {"model": "m", "messages": MESSAGES, "n": 2, "seed": 4, "max_tokens": 6,
                   "logprobs": True, "top_logprobs": 2}  # fmt: skip
    whole = client.chat.completions.create(**kwargs)
    texts: dict[int, str] = {}
    tokens: dict[int, list[str]] = {}
    stream = client.chat.completions.create(
        **kwargs, stream=True, stream_options={"include_usage": True}
    )
    usage = None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            entries = choice.logprobs.content if choice.logprobs else None
            tokens.setdefault(choice.index, []).extend(t.token for t in entries or [])
    assert texts == {c.index: c.message.content for c in whole.choices}
    for choice in whole.choices:
        assert choice.logprobs and choice.logprobs.content
        assert tokens[choice.index] == [t.token for t in choice.logprobs.content]
    assert usage is not None and whole.usage is not None
    assert usage.completion_tokens == whole.usage.completion_tokens == 12


def test_json_mode_answers_pass_through(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m", messages=MESSAGES, response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)
