"""The simulator honours ``response_format``, ``n`` and ``logprobs`` as vLLM does: checked with
the official openai SDK over a real socket, on the instant path and through the engine."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import openai
import pytest
from pydantic import BaseModel

from switchyard.backends.simulator import build_config, create_simulator_app
from tests.support.servers import ServerThread

MODEL = "sim-json"
MESSAGES: list[Any] = [{"role": "user", "content": "Describe a train as JSON."}]
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 3},
        "cars": {"type": "integer", "minimum": 2, "maximum": 12},
        "speed": {"type": "number", "exclusiveMinimum": 0},
        "kind": {"enum": ["freight", "passenger"]},
        "stops": {"type": "array", "items": {"$ref": "#/$defs/stop"}, "minItems": 2},
        "electric": {"type": ["boolean", "null"]},
        "built": {"type": "string", "format": "date"},
    },
    "required": ["name", "cars", "speed", "kind", "stops", "electric", "built"],
    "additionalProperties": False,
    "$defs": {
        "stop": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "minutes": {"type": "integer"}},
            "required": ["city", "minutes"],
            "additionalProperties": False,
        }
    },
}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "train", "schema": SCHEMA}}


class Station(BaseModel):
    name: str
    platforms: int
    lines: list[str]
    next: Station | None = None


@pytest.fixture(scope="module", params=["zero", "fast"])
def server(request: pytest.FixtureRequest) -> Iterator[ServerThread]:
    """ "zero": answered at once; "fast": through the engine's decode steps."""
    preset = request.param
    overrides = {} if preset == "zero" else {"decode_base_s": 0.0005, "prefill_s_per_token": 0.0}
    app = create_simulator_app(build_config(MODEL, preset, seed=3, **overrides))
    with ServerThread(app) as running:
        yield running


@pytest.fixture
def client(server: ServerThread) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as sdk:
        yield sdk


def _validate(value: Any) -> None:
    jsonschema_rs.validate(SCHEMA, value, validate_formats=True)


def _chat(client: openai.OpenAI, **kwargs: Any) -> Any:
    return client.chat.completions.create(model=MODEL, messages=MESSAGES, **kwargs)


def _streamed_texts(stream: Any) -> tuple[dict[int, str], dict[int, str]]:
    """Text and finish reason of each choice index, from chat chunks."""
    texts: dict[int, str] = {}
    finish: dict[int, str] = {}
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason:
                finish[choice.index] = choice.finish_reason
    return texts, finish


def test_json_object_mode_answers_a_json_object(client: openai.OpenAI) -> None:
    reply = _chat(client, response_format={"type": "json_object"})
    assert isinstance(json.loads(reply.choices[0].message.content), dict)
    assert reply.choices[0].finish_reason == "stop"


def test_json_schema_mode_answers_an_instance_of_the_schema(client: openai.OpenAI) -> None:
    reply = _chat(client, response_format=JSON_SCHEMA)
    value = json.loads(reply.choices[0].message.content)
    _validate(value)
    again = _chat(client, response_format=JSON_SCHEMA)
    assert again.choices[0].message.content == reply.choices[0].message.content  # deterministic


def test_json_schema_streamed_is_the_same_json(client: openai.OpenAI) -> None:
    whole = _chat(client, response_format=JSON_SCHEMA).choices[0].message.content
    texts, finish = _streamed_texts(_chat(client, response_format=JSON_SCHEMA, stream=True))
    assert texts[0] == whole and finish[0] == "stop"


def test_sdk_parse_fills_a_pydantic_model(client: openai.OpenAI) -> None:
    """The SDK's structured-output helper sends a strict schema with $defs and a recursive
    $ref, and parses the answer back into the model."""
    reply = client.chat.completions.parse(model=MODEL, messages=MESSAGES, response_format=Station)
    station = reply.choices[0].message.parsed
    assert isinstance(station, Station) and isinstance(station.platforms, int)


def test_a_short_max_tokens_cuts_the_json_with_finish_length(client: openai.OpenAI) -> None:
    reply = _chat(client, response_format=JSON_SCHEMA, max_tokens=3)
    choice = reply.choices[0]
    assert choice.finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 3
    with pytest.raises(json.JSONDecodeError):
        json.loads(choice.message.content or "")


def test_completions_honour_response_format_too(client: openai.OpenAI) -> None:
    reply = client.completions.create(
        model=MODEL, prompt="A train:", extra_body={"response_format": JSON_SCHEMA}
    )
    _validate(json.loads(reply.choices[0].text))


def test_n_choices_differ_and_usage_counts_them_all(client: openai.OpenAI) -> None:
    reply = _chat(client, n=3, seed=5)
    texts = [c.message.content for c in reply.choices]
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert len(set(texts)) == 3 and all(texts)
    assert texts[0] == _chat(client, seed=5).choices[0].message.content  # choice 0 unchanged
    assert reply.usage is not None
    assert reply.usage.completion_tokens == sum(len(t.split()) for t in texts if t)


def test_n_choices_stream_with_their_own_index(client: openai.OpenAI) -> None:
    whole = _chat(client, n=2, seed=9)
    texts, finish = _streamed_texts(_chat(client, n=2, seed=9, stream=True))
    assert texts == {c.index: c.message.content for c in whole.choices}
    assert set(finish) == {0, 1}


def test_n_json_choices_are_each_valid(client: openai.OpenAI) -> None:
    reply = _chat(client, n=2, response_format=JSON_SCHEMA)
    for choice in reply.choices:
        _validate(json.loads(choice.message.content))


def test_n_completions_choices(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=MODEL, prompt="Once", n=2, max_tokens=5)
    assert [c.index for c in reply.choices] == [0, 1]
    assert reply.choices[0].text != reply.choices[1].text


def _plausible(logprob: float) -> bool:
    return math.isfinite(logprob) and logprob < 0


def test_chat_logprobs_have_openai_shape(client: openai.OpenAI) -> None:
    reply = _chat(client, logprobs=True, top_logprobs=3, max_tokens=12, seed=1)
    choice = reply.choices[0]
    content = choice.logprobs.content if choice.logprobs else None
    assert content is not None and len(content) == 12
    assert "".join(t.token for t in content) == choice.message.content
    for token in content:
        assert _plausible(token.logprob) and token.bytes == list(token.token.encode())
        assert len(token.top_logprobs) == 3
        assert token.token in [t.token for t in token.top_logprobs]
        listed = [t.logprob for t in token.top_logprobs]
        assert listed == sorted(listed, reverse=True)
        assert sum(math.exp(lp) for lp in listed) <= 1.0
    plain = _chat(client, max_tokens=12, seed=1).choices[0]
    assert plain.logprobs is None and plain.message.content == choice.message.content


def test_chat_logprobs_streamed_one_per_chunk(client: openai.OpenAI) -> None:
    whole = _chat(client, logprobs=True, top_logprobs=2, max_tokens=6, seed=2)
    assert whole.choices[0].logprobs and whole.choices[0].logprobs.content
    streamed = [
        entry
        for chunk in _chat(client, logprobs=True, top_logprobs=2, max_tokens=6, seed=2, stream=True)
        for choice in chunk.choices
        if choice.logprobs and choice.logprobs.content
        for entry in choice.logprobs.content
    ]
    assert streamed == whole.choices[0].logprobs.content


def test_completion_logprobs_have_openai_shape(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=MODEL, prompt="Once", max_tokens=5, logprobs=2)
    choice = reply.choices[0]
    lp = choice.logprobs
    assert lp is not None and lp.tokens and lp.token_logprobs and lp.top_logprobs
    assert lp.text_offset is not None
    assert "".join(lp.tokens) == choice.text
    assert lp.text_offset == [len("".join(lp.tokens[:i])) for i in range(len(lp.tokens))]
    assert all(_plausible(x) for x in lp.token_logprobs)
    assert all(
        len(top) == 2 and tok in top for tok, top in zip(lp.tokens, lp.top_logprobs, strict=True)
    )
    chunks = client.completions.create(
        model=MODEL, prompt="Once", max_tokens=5, logprobs=2, stream=True
    )
    tokens = [t for c in chunks if c.choices and c.choices[0].logprobs
              for t in c.choices[0].logprobs.tokens or []]  # fmt: skip
    assert tokens == lp.tokens


def test_a_less_confident_answer_has_lower_logprobs_throughout(client: openai.OpenAI) -> None:
    """Each answer draws its own confidence, so answers differ in mean log-probability (what
    a cascade's verifier thresholds on)."""
    means = []
    for seed in range(8):
        content = _chat(client, logprobs=True, max_tokens=16, seed=seed).choices[0].logprobs
        assert content is not None and content.content is not None
        means.append(sum(t.logprob for t in content.content) / len(content.content))
    assert max(means) - min(means) > 0.1


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#/$defs/a", "$defs": {"a": {"type": "object", "required": ["a"],
                                              "properties": {"a": {"$ref": "#/$defs/a"}}}}},
        {"$ref": "#/nowhere"},
        {"type": "integer", "minimum": 500, "multipleOf": 7},
        {"type": "array", "minItems": 1000, "items": {"type": "string", "maxLength": 10**9}},
        {"allOf": [{"properties": {"a": {"type": "integer"}}}, {"required": ["a"]}, 5]},
    ],
)  # fmt: skip
def test_odd_schemas_still_give_json(client: openai.OpenAI, schema: dict[str, Any]) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "odd", "schema": schema}}
    json.loads(_chat(client, response_format=fmt).choices[0].message.content)
