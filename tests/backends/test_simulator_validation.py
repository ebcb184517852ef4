"""Any body gets a 200 or a 4xx in OpenAI's error shape, never a 5xx (the gateway fuzzes it)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from switchyard.backends.simulator import build_config, create_simulator_app
from tests.support.servers import ServerThread

MODEL = "sim-strict"
USER: list[Any] = [{"role": "user", "content": "hi"}]
TOOL: dict[str, Any] = {"type": "function", "function": {"name": "f"}}


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    config = build_config(MODEL, "zero", 0, serves_embeddings=True, max_model_len=2048)
    with (
        ServerThread(create_simulator_app(config)) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        yield http


def assert_openai_error(reply: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    error: dict[str, Any] = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return error


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"])
@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"text"', b"null", b"", b"{"])
def test_bodies_that_are_not_json_objects_are_400(
    client: httpx.Client, path: str, raw: bytes
) -> None:
    assert_openai_error(client.post(path, content=raw))


@pytest.mark.parametrize(
    "extra",
    [
        {"messages": "hi"},
        {"messages": []},
        {"messages": [1]},
        {"messages": [{"role": "bogus", "content": "x"}]},
        {"messages": [{"role": {"not": "hashable"}, "content": "x"}]},
        {"messages": [{"role": "user", "content": 5}]},
        {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
        {"messages": [{"role": "user", "content": ["loose string"]}]},
        {"max_tokens": -1},
        {"max_tokens": 0},
        {"max_tokens": "5"},
        {"max_tokens": True},
        {"max_tokens": 1.5},
        {"max_tokens": 10**30},
        {"max_completion_tokens": -3},
        {"stream": "yes"},
        {"stream_options": 3},
        {"stream_options": {"include_usage": "x"}},
        {"seed": "x"},
        {"n": 0},
        {"n": 129},
        {"model": 5},
        {"response_format": {"type": "xml"}},
        {"response_format": {"type": "json_schema"}},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": 1}}},
        {"logprobs": "yes"},
        {"top_logprobs": 3},
        {"logprobs": True, "top_logprobs": 21},
        {"logprobs": True, "top_logprobs": -1},
        {"tools": "x"},
        {"tools": [{"type": "function"}]},
        {"tools": [{"type": "function", "function": {"name": ""}}]},
        {"tool_choice": "bogus"},
        {"tool_choice": {"type": {}}},
        {"tool_choice": "required"},
        {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "g"}}},
    ],
)
def test_invalid_chat_fields_are_400(client: httpx.Client, extra: dict[str, Any]) -> None:
    assert_openai_error(client.post("/v1/chat/completions", json={"messages": USER, **extra}))


@pytest.mark.parametrize("prompt", [None, 5, [], ["a", "b"], [-1], [True], [[1], [2]], {"a": 1}])
def test_invalid_completion_prompts_are_400(client: httpx.Client, prompt: Any) -> None:
    error = assert_openai_error(client.post("/v1/completions", json={"prompt": prompt}))
    assert error["param"] == "prompt"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"input": 5},
        {"input": []},
        {"input": [1.5]},
        {"input": "x", "encoding_format": "hex"},
        {"input": "x", "dimensions": 0},
        {"input": "x", "dimensions": 10_000},
    ],
)
def test_invalid_embedding_requests_are_400(client: httpx.Client, body: dict[str, Any]) -> None:
    assert_openai_error(client.post("/v1/embeddings", json=body))


def test_huge_max_tokens_is_a_context_length_error_like_vllm(client: httpx.Client) -> None:
    body = {"messages": USER, "max_tokens": 1_000_000}
    error = assert_openai_error(client.post("/v1/chat/completions", json=body))
    assert "maximum context length is 2048 tokens" in error["message"]


def test_a_prompt_longer_than_the_context_is_400(client: httpx.Client) -> None:
    body = {"prompt": "word " * 5000}
    error = assert_openai_error(client.post("/v1/completions", json=body))
    assert "maximum context length" in error["message"]


def test_output_is_capped_by_the_room_left_in_the_context(client: httpx.Client) -> None:
    reply = client.post("/v1/completions", json={"prompt": "x" * 8180}).json()
    assert reply["usage"]["prompt_tokens"] == 2045
    assert reply["usage"]["completion_tokens"] == 3
    assert reply["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": None}],
        [{"role": "user"}],
        [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url"}]}],
        [
            {"role": "assistant", "content": None, "tool_calls": []},
            {"role": "tool", "content": "1"},
        ],
        [{"role": "user", "content": "x", "unknown_field": {"deep": [1, 2]}}],
    ],
)
def test_unusual_but_valid_messages_are_answered(client: httpx.Client, messages: Any) -> None:
    reply = client.post("/v1/chat/completions", json={"messages": messages, "temperature": "hot"})
    assert reply.status_code == 200
    assert reply.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize(
    "parameters",
    [None, 5, {"type": ["null"]}, {"properties": {"a": 5, "b": {"type": "array"}}},
     {"type": "object", "properties": {"n": {"type": ["integer", "null"]}, "e": {"enum": []}}},
     {"properties": {"a": {"properties": {"b": {"properties": {"c": {"properties": {
         "d": {"properties": {"e": {"type": "object"}}}}}}}}}}}],
)  # fmt: skip
def test_odd_tool_schemas_still_give_a_tool_call(client: httpx.Client, parameters: Any) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": parameters}}
    body = {"messages": USER, "tools": [tool], "tool_choice": "required"}
    reply = client.post("/v1/chat/completions", json=body)
    assert reply.status_code == 200
    call = reply.json()["choices"][0]["message"]["tool_calls"][0]
    assert isinstance(orjson.loads(call["function"]["arguments"]), dict | str | list | None)


def test_unknown_route_is_404_and_wrong_method_is_405(client: httpx.Client) -> None:
    assert_openai_error(client.get("/v2/whatever"), 404)
    assert_openai_error(client.get("/v1/chat/completions"), 405)


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(8 if depth < 3 else 5)
    keys = ["messages", "role", "content", "prompt", "max_tokens", "stream", "tools", "type",
            "function", "name", "tool_choice", "stream_options", "include_usage", "seed", "text",
            "input", "model", "n", "parameters", "x"]  # fmt: skip
    scalars = [None, True, False, 0, -1, 1, 2**40, 1.5, "", "user", "text", "function", "required",
               "sim-strict", "auto", "none", "x" * 50]  # fmt: skip
    if pick < 5:
        return rng.choice(scalars)
    if pick < 7:
        return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randrange(4))}
    return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]


def test_random_json_bodies_never_get_a_5xx(client: httpx.Client) -> None:
    rng = random.Random(1234)
    paths = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]
    for _ in range(300):
        body = _random_json(rng)
        if rng.random() < 0.5:  # mostly-valid shapes reach the deeper checks
            body = {"messages": [{"role": "user", "content": body}], "tools": [body]}
        reply = client.post(rng.choice(paths), content=orjson.dumps(body))
        assert reply.status_code < 500, (body, reply.text)
        if reply.status_code >= 400:
            assert_openai_error(reply, reply.status_code)
