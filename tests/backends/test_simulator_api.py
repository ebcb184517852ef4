"""The simulator speaks the OpenAI API as vLLM does: checked with the real openai SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageFunctionToolCall

from switchyard.backends.simulator import build_config, create_simulator_app
from tests.support.servers import ServerThread

MODEL = "sim-llama"
MESSAGES: list[Any] = [{"role": "user", "content": "Tell me about trains."}]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "days": {"type": "integer"},
                    "unit": {"enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city"],
            },
        },
    },
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    app = create_simulator_app(build_config(MODEL, "zero", seed=7, serves_embeddings=True))
    with ServerThread(app) as running:
        yield running


@pytest.fixture
def client(server: ServerThread) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as sdk:
        yield sdk


def test_chat_completion_has_openai_shape_and_usage(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert reply.object == "chat.completion"
    assert reply.id.startswith("chatcmpl-")
    assert reply.model == MODEL
    choice = reply.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason == "stop"
    assert reply.usage is not None
    words = len(choice.message.content.split())
    assert 16 <= words <= 64
    assert reply.usage.completion_tokens == words
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + words


def test_max_tokens_gives_exactly_that_many_tokens_and_length(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=5)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 5
    assert len((reply.choices[0].message.content or "").split()) == 5


def test_chat_stream_role_chunk_then_tokens_then_finish(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4, stream=True)
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    tokens = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert len(tokens) == 4
    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(c.object == "chat.completion.chunk" and c.usage is None for c in chunks)
    whole = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4)
    assert "".join(t or "" for t in tokens) == whole.choices[0].message.content


def test_stream_include_usage_adds_a_usage_chunk_without_choices(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=3,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens == 3
    assert chunks[-2].choices[0].finish_reason == "length"


def test_completions_non_stream_and_stream_agree(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=6)
    assert reply.object == "text_completion"
    assert reply.id.startswith("cmpl-")
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 6
    chunks = list(
        client.completions.create(
            model=MODEL,
            prompt="Once upon a time",
            max_tokens=6,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == reply.choices[0].text
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == (
        reply.usage.total_tokens
    )


def test_completions_accept_token_ids(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=MODEL, prompt=[1, 2, 3, 4], max_tokens=2)
    assert reply.usage is not None and reply.usage.prompt_tokens == 4


def test_same_request_gives_same_text_and_seed_changes_it(client: openai.OpenAI) -> None:
    def text(**extra: Any) -> str:
        reply = client.chat.completions.create(model=MODEL, messages=MESSAGES, **extra)
        return reply.choices[0].message.content or ""

    assert text(seed=1) == text(seed=1)
    assert text(seed=1) != text(seed=2)
    assert text() == text()


def test_server_seed_changes_the_output(server: ServerThread) -> None:
    other = create_simulator_app(build_config(MODEL, "zero", seed=8))
    body = {"model": MODEL, "messages": MESSAGES}
    with ServerThread(other) as second:
        first_text = httpx.post(f"{server.url}/v1/chat/completions", json=body).json()
        second_text = httpx.post(f"{second.url}/v1/chat/completions", json=body).json()
    assert first_text["choices"][0]["message"] != second_text["choices"][0]["message"]


def test_required_tool_choice_calls_the_first_tool(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, tools=TOOLS, tool_choice="required"
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert isinstance(arguments["city"], str)
    assert isinstance(arguments["days"], int)
    assert arguments["unit"] in ("celsius", "fahrenheit")


def test_named_tool_choice_calls_that_tool(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    calls = reply.choices[0].message.tool_calls
    assert calls is not None
    assert isinstance(calls[0], ChatCompletionMessageFunctionToolCall)
    assert calls[0].function.name == "get_time"
    assert json.loads(calls[0].function.arguments) == {}


def test_auto_tool_choice_answers_in_text(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=TOOLS)
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].finish_reason == "stop"


def test_streamed_tool_call_accumulates_in_the_sdk(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, tools=TOOLS, tool_choice="required"
    )
    with client.chat.completions.stream(
        model=MODEL, messages=MESSAGES, tools=TOOLS, tool_choice="required"
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    expected = whole.choices[0].message.tool_calls
    assert expected is not None
    assert isinstance(expected[0], ChatCompletionMessageFunctionToolCall)
    assert choice.message.tool_calls[0].id == expected[0].id
    assert choice.message.tool_calls[0].function.name == "get_weather"
    assert choice.message.tool_calls[0].function.arguments == expected[0].function.arguments


def test_embeddings_are_deterministic_unit_vectors(client: openai.OpenAI) -> None:
    first = client.embeddings.create(model=MODEL, input=["alpha", "beta"])
    assert [d.index for d in first.data] == [0, 1]
    vector = first.data[0].embedding
    assert len(vector) == 384
    assert sum(x * x for x in vector) == pytest.approx(1.0, abs=1e-5)
    again = client.embeddings.create(model=MODEL, input="alpha", encoding_format="float")
    assert again.data[0].embedding == pytest.approx(vector, abs=1e-6)
    assert first.data[1].embedding != pytest.approx(vector, abs=1e-3)
    assert first.usage.prompt_tokens == first.usage.total_tokens > 0


def test_embeddings_are_404_when_not_served() -> None:
    app = create_simulator_app(build_config(MODEL, "zero", seed=1))
    with ServerThread(app) as server:
        reply = httpx.post(f"{server.url}/v1/embeddings", json={"model": MODEL, "input": "a"})
    assert reply.status_code == 404
    assert set(reply.json()["error"]) == {"message", "type", "param", "code"}


def test_unknown_model_is_404_in_openai_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="other", messages=MESSAGES)
    assert caught.value.code == "model_not_found"


def test_models_lists_the_served_model_with_its_context(server: ServerThread) -> None:
    body = httpx.get(f"{server.url}/v1/models").json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [MODEL]
    assert body["data"][0]["max_model_len"] == 8192


def test_health_is_200_with_empty_body(server: ServerThread) -> None:
    reply = httpx.get(f"{server.url}/health")
    assert reply.status_code == 200
    assert reply.content == b""


def test_with_an_api_key_v1_paths_need_it_and_health_and_metrics_stay_open() -> None:
    """As vLLM's --api-key: 401 {"error": "Unauthorized"} on /v1 without the bearer key."""
    app = create_simulator_app(build_config(MODEL, "zero", api_key="k1"))
    server = ServerThread(app, None, lifespan="off").start()
    try:
        url = server.url
        body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 2}
        refused = httpx.post(f"{url}/v1/chat/completions", json=body)
        assert (refused.status_code, refused.json()) == (401, {"error": "Unauthorized"})
        wrong = httpx.get(f"{url}/v1/models", headers={"authorization": "Bearer k2"})
        assert wrong.status_code == 401
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="k1", max_retries=0)
        assert client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2).id
        assert httpx.get(f"{url}/health").status_code == 200
        assert httpx.get(f"{url}/metrics").status_code == 200
    finally:
        server.stop()
