"""Request-body checks on the hot path, and what is sent upstream."""

from __future__ import annotations

import orjson
import pytest

from switchyard.gateway.errors import InvalidRequestError, MalformedJSONError
from switchyard.gateway.payload import parse_payload, upstream_body
from switchyard.gateway.settings import Capability

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "top_k": 5, "x": [1]}


def test_body_without_changes_is_forwarded_byte_for_byte() -> None:
    raw = orjson.dumps(CHAT) + b"   "
    payload = parse_payload(raw, Capability.chat)
    assert upstream_body(payload, "m") is raw


def test_stream_without_usage_asks_upstream_for_usage_and_keeps_other_fields() -> None:
    raw = orjson.dumps({**CHAT, "stream": True, "stream_options": {"other": 1}})
    payload = parse_payload(raw, Capability.chat)
    assert payload.stream and not payload.wants_usage
    sent = orjson.loads(upstream_body(payload, "m"))
    assert sent["stream_options"] == {"other": 1, "include_usage": True}
    assert sent["top_k"] == 5 and sent["x"] == [1]


def test_upstream_model_name_replaces_the_gateway_name() -> None:
    payload = parse_payload(orjson.dumps(CHAT), Capability.chat)
    assert orjson.loads(upstream_body(payload, "org/Model-8B"))["model"] == "org/Model-8B"


@pytest.mark.parametrize(
    ("body", "error", "param"),
    [
        (b"", MalformedJSONError, None),
        (b"{nope", MalformedJSONError, None),
        (b"[1, 2]", InvalidRequestError, None),
        (b'{"messages": [{"role": "user", "content": "x"}]}', InvalidRequestError, "model"),
        (b'{"model": 3, "messages": []}', InvalidRequestError, "model"),
        (b'{"model": "m"}', InvalidRequestError, "messages"),
        (b'{"model": "m", "messages": []}', InvalidRequestError, "messages"),
        (b'{"model": "m", "messages": [{}], "stream": "yes"}', InvalidRequestError, "stream"),
        (b'{"model": "m", "messages": [{}], "stream_options": 1}', InvalidRequestError,
         "stream_options"),
    ],
)  # fmt: skip
def test_bad_chat_bodies_are_rejected_with_the_field_named(
    body: bytes, error: type[Exception], param: str | None
) -> None:
    with pytest.raises(error) as info:
        parse_payload(body, Capability.chat)
    assert getattr(info.value, "param", None) == param


def test_embeddings_need_input_and_cannot_stream() -> None:
    with pytest.raises(InvalidRequestError, match="'input' is required"):
        parse_payload(b'{"model": "e"}', Capability.embeddings)
    with pytest.raises(InvalidRequestError, match="cannot be streamed"):
        parse_payload(b'{"model": "e", "input": "x", "stream": true}', Capability.embeddings)
