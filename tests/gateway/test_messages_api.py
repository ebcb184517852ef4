"""POST /v1/messages (Anthropic Messages) with the official ``anthropic`` SDK, streamed and not,
through a real gateway to simulated vLLM servers that speak only chat completions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.support.gateways import Gateway, Simulator, model_entry

SYSTEM = "Answer in one sentence."
QUESTION = "Tell me about switchyards."
WEATHER: Any = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def claude(gw: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key="unused", max_retries=0)


def chat_answer(sim: Simulator, max_tokens: int) -> Any:
    """What the backend says to the same conversation as chat completions."""
    client = openai.OpenAI(base_url=sim.base_url, api_key="unused", max_retries=0)
    messages: Any = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    return client.chat.completions.create(model="m", messages=messages, max_tokens=max_tokens)


def test_a_message_is_the_backends_chat_answer_in_anthropics_shape(
    sim_gateway: tuple[Simulator, Gateway],
) -> None:
    sim, gw = sim_gateway
    chat = chat_answer(sim, 12)
    message = claude(gw).messages.create(
        model="m", max_tokens=12, system=SYSTEM, messages=[{"role": "user", "content": QUESTION}]
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text"
    assert message.content[0].text == chat.choices[0].message.content
    finished = chat.choices[0].finish_reason
    assert message.stop_reason == ("max_tokens" if finished == "length" else "end_turn")
    assert message.usage.input_tokens == chat.usage.prompt_tokens
    assert message.usage.output_tokens == chat.usage.completion_tokens
    assert gw.metric("switchyard_prompt_tokens_total", model="m") == chat.usage.prompt_tokens
    assert gw.metric("switchyard_api_requests_total", api="messages", outcome="translated") == 1


def test_a_streamed_message_sends_anthropics_events_in_order(
    sim_gateway: tuple[Simulator, Gateway],
) -> None:
    sim, gw = sim_gateway
    chat = chat_answer(sim, 12)
    with claude(gw).messages.stream(
        model="m", max_tokens=12, system=SYSTEM, messages=[{"role": "user", "content": QUESTION}]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    deltas = kinds.count("content_block_delta")
    assert deltas > 0
    expected = ["message_start", "content_block_start"]
    expected += ["content_block_delta"] * deltas + ["content_block_stop", "message_delta"]
    # the SDK's stream adds its own "text" events beside the deltas, and skips "ping"
    assert [k for k in kinds if k != "text"] == [*expected, "message_stop"]
    assert final.content[0].text == chat.choices[0].message.content  # type: ignore[union-attr]
    assert final.usage.input_tokens == chat.usage.prompt_tokens
    assert final.usage.output_tokens == chat.usage.completion_tokens
    assert final.stop_reason in ("max_tokens", "end_turn")


def test_the_raw_stream_starts_with_a_ping_after_message_start(
    sim_gateway: tuple[Simulator, Gateway],
) -> None:
    _, gw = sim_gateway
    body = {"model": "m", "max_tokens": 4, "stream": True,
            "messages": [{"role": "user", "content": QUESTION}]}  # fmt: skip
    text = httpx.post(f"{gw.url}/v1/messages", json=body, timeout=10).text
    names = [line[7:] for line in text.splitlines() if line.startswith("event: ")]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-2:] == ["message_delta", "message_stop"]


def test_a_forced_tool_comes_back_as_tool_use_and_its_result_goes_on(
    sim_gateway: tuple[Simulator, Gateway],
) -> None:
    _, gw = sim_gateway
    client = claude(gw)
    ask: Any = [{"role": "user", "content": "Weather in Oslo?"}]
    choice: Any = {"type": "tool", "name": "get_weather"}
    message = client.messages.create(
        model="m", max_tokens=64, messages=ask, tools=[WEATHER], tool_choice=choice
    )
    assert message.stop_reason == "tool_use"
    use = message.content[0]
    assert use.type == "tool_use" and use.name == "get_weather" and isinstance(use.input, dict)
    with client.messages.stream(
        model="m", max_tokens=64, messages=ask, tools=[WEATHER], tool_choice=choice
    ) as stream:
        streamed = stream.get_final_message()
    assert streamed.stop_reason == "tool_use"
    assert streamed.content[0].type == "tool_use" and streamed.content[0].input == use.input
    result: Any = [
        *ask,
        {"role": "assistant", "content": [use.model_dump(exclude_none=True)]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                      "content": "sunny"}]},
    ]  # fmt: skip
    follow = client.messages.create(model="m", max_tokens=8, messages=result, tools=[WEATHER])
    assert follow.content[0].type == "text" and follow.stop_reason in ("end_turn", "max_tokens")


def test_errors_come_in_anthropics_shape(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sim = simulator("m")
    gw = gateway([model_entry("m", sim.base_url)], server={"max_body_bytes": 4096})
    url = f"{gw.url}/v1/messages"
    malformed = httpx.post(url, content=b'{"model": "m", "max_tokens": ', timeout=10)
    assert malformed.status_code == 400
    assert malformed.json()["type"] == "error"
    assert malformed.json()["error"]["type"] == "invalid_request_error"
    client = claude(gw)
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(
            model="nope", max_tokens=4, messages=[{"role": "user", "content": "hi"}]
        )
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as no_max:
        httpx_body: Any = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        client.post("/v1/messages", body=httpx_body, cast_to=httpx.Response)
    assert "max_tokens" in str(no_max.value)
    with pytest.raises(anthropic.APIStatusError) as oversized:
        client.messages.create(
            model="m", max_tokens=4, messages=[{"role": "user", "content": "x" * 5000}]
        )
    assert oversized.value.status_code == 413
    assert oversized.value.body["error"]["type"] == "request_too_large"  # type: ignore[index]


def test_a_stream_the_backend_breaks_ends_with_an_anthropic_error_event(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sim = simulator("m", drop_rate=1.0, drop_after_chunks=3)
    gw = gateway([model_entry("m", sim.base_url)])
    messages: Any = [{"role": "user", "content": QUESTION}]
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        claude(gw).messages.stream(model="m", max_tokens=32, messages=messages) as stream,
    ):
        for _ in stream:
            pass
    assert caught.value.body["error"]["type"] == "api_error"  # type: ignore[index]
