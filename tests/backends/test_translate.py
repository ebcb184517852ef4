"""The pure translations between chat completions and the Responses and Messages APIs."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchyard.backends.translate import TranslationError, messages, responses
from switchyard.backends.translate.messages_stream import MessagesEvents
from switchyard.backends.translate.responses_stream import ResponsesEvents

TOOL_SCHEMA: Any = {"type": "object", "properties": {"city": {"type": "string"}}}


def chat_stream(*deltas: dict[str, Any], finish: str = "stop", **choice: Any) -> bytes:
    """A chat completions SSE stream: the deltas, the finish chunk, usage, [DONE]."""
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    chunks = [{**head, "choices": [{"index": 0, "delta": d, "finish_reason": None}]}
              for d in deltas]  # fmt: skip
    chunks.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": finish,
                                        **choice}]})  # fmt: skip
    usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    chunks.append({**head, "choices": [], "usage": usage})
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def events_of(stream: bytes) -> list[tuple[str, Any]]:
    found = []
    for block in stream.split(b"\n\n"):
        if block:
            name, data = block.split(b"\n")
            found.append((name[7:].decode(), orjson.loads(data[6:])))
    return found


def test_responses_input_items_become_chat_messages() -> None:
    chat = responses.chat_request({
        "model": "m",
        "instructions": "be brief",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
            {"type": "message", "role": "assistant", "content": "let me look"},
            {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {"type": "reasoning", "summary": []},
        ],
        "max_output_tokens": 9,
        "tools": [{"type": "function", "name": "w", "parameters": TOOL_SCHEMA}],
        "tool_choice": {"type": "function", "name": "w"},
        "text": {"format": {"type": "json_schema", "name": "x", "schema": {}}},
        "store": False,
    })  # fmt: skip
    assert chat["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
        {"role": "assistant", "content": "let me look", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]  # fmt: skip
    assert chat["max_tokens"] == 9 and "store" not in chat
    assert chat["tools"] == [
        {"type": "function", "function": {"name": "w", "parameters": TOOL_SCHEMA}}
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "w"}}
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {}},
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi", "previous_response_id": "resp_1"}, "previous_response_id"),
        ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools"),
        ({"input": [{"type": "file_search_call", "id": "x"}]}, "input"),
        ({"input": [{"role": ["user"], "content": "hi"}]}, "input"),
        ({"input": []}, "input"),
        ({}, "input"),
    ],
)
def test_responses_requests_chat_cannot_express_are_refused(body: Any, param: str) -> None:
    with pytest.raises(TranslationError) as caught:
        responses.chat_request({"model": "m", **body})
    assert caught.value.param == param


def test_a_chat_answer_becomes_a_response_with_usage() -> None:
    chat = {
        "id": "chatcmpl-1", "created": 5, "model": "m",
        "choices": [{"index": 0, "finish_reason": "length", "message": {
            "role": "assistant", "content": "hello",
            "tool_calls": [{"id": "c1", "type": "function",
                            "function": {"name": "w", "arguments": "{}"}}]}}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
    }  # fmt: skip
    answer = responses.from_chat(chat, {"model": "m", "input": "hi"})
    assert answer["status"] == "incomplete"
    assert answer["incomplete_details"] == {"reason": "max_output_tokens"}
    assert [o["type"] for o in answer["output"]] == ["message", "function_call"]
    assert answer["output"][0]["content"][0]["text"] == "hello"
    assert answer["output"][1]["call_id"] == "c1"
    assert answer["usage"]["input_tokens"] == 4 and answer["usage"]["total_tokens"] == 6


def test_responses_events_do_not_depend_on_how_the_stream_is_cut() -> None:
    stream = chat_stream(
        {"role": "assistant", "content": ""}, {"content": "Hel"}, {"content": "lo"}
    )
    whole = ResponsesEvents({"input": "hi"})
    out = whole.feed(stream) + whole.flush()
    cut = ResponsesEvents({"input": "hi"})
    pieces = b"".join(cut.feed(stream[i : i + 1]) for i in range(len(stream))) + cut.flush()
    kinds = [k for k, _ in events_of(out)]
    assert kinds == [k for k, _ in events_of(pieces)]
    assert kinds.count("response.output_text.delta") == 2
    assert kinds[-1] == "response.completed" and whole.usage == cut.usage
    done = events_of(out)[-1][1]["response"]
    assert done["output"][0]["content"][0]["text"] == "Hello"
    assert done["usage"]["output_tokens"] == 3


def test_a_broken_stream_ends_with_an_error_and_response_failed() -> None:
    events = ResponsesEvents({"input": "hi"})
    started = events.feed(chat_stream({"content": "Hel"}).split(b'data: {"id"', 3)[0])
    failed = events_of(started + events.fail("upstream_error", "broke"))
    assert [k for k, _ in failed][-2:] == ["error", "response.failed"]
    assert events.flush() == b""  # nothing after the failure


def test_messages_blocks_become_chat_messages_with_tool_results_first() -> None:
    chat = messages.chat_request({
        "model": "m", "max_tokens": 5,
        "system": [{"type": "text", "text": "be"}, {"type": "text", "text": "brief"}],
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "looking"},
                {"type": "tool_use", "id": "t1", "name": "w", "input": {"city": "Oslo"}}]},
            {"role": "user", "content": [
                {"type": "text", "text": "thanks"},
                {"type": "tool_result", "tool_use_id": "t1",
                 "content": [{"type": "text", "text": "sunny"}]}]},
        ],
        "tools": [{"name": "w", "input_schema": TOOL_SCHEMA}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u1"},
    })  # fmt: skip
    assert chat["messages"] == [
        {"role": "system", "content": "be\nbrief"},
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "looking", "tool_calls": [{"id": "t1", "type": "function",
            "function": {"name": "w", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
        {"role": "user", "content": [{"type": "text", "text": "thanks"}]},
    ]  # fmt: skip
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False
    assert chat["stop"] == ["END"] and chat["user"] == "u1" and chat["max_tokens"] == 5
    assert chat["tools"][0]["function"]["parameters"] == TOOL_SCHEMA


@pytest.mark.parametrize(
    ("finish", "matched", "reason", "sequence"),
    [
        ("stop", None, "end_turn", None),
        ("stop", "END", "stop_sequence", "END"),
        ("stop", 2, "end_turn", None),  # vLLM: a stop token id, not one of stop_sequences
        ("length", None, "max_tokens", None),
        ("tool_calls", None, "tool_use", None),
    ],
)
def test_chat_finish_reasons_map_to_anthropic_stop_reasons(
    finish: str, matched: Any, reason: str, sequence: str | None
) -> None:
    request = {"stop_sequences": ["END"]}
    assert messages.stop_reason(finish, matched, request) == (reason, sequence)
    stream = chat_stream({"content": "hi"}, finish=finish, stop_reason=matched)
    events = MessagesEvents(request)
    delta = dict(events_of(events.feed(stream)))["message_delta"]
    assert delta["delta"] == {"stop_reason": reason, "stop_sequence": sequence}
    assert delta["usage"] == {"input_tokens": 7, "output_tokens": 3}


def test_a_streamed_tool_call_becomes_a_tool_use_block() -> None:
    call = {
        "index": 0,
        "id": "c1",
        "type": "function",
        "function": {"name": "w", "arguments": '{"ci'},
    }
    more = {"index": 0, "function": {"arguments": 'ty":"Oslo"}'}}
    stream = chat_stream({"content": "ok"}, {"tool_calls": [call]}, {"tool_calls": [more]},
                         finish="tool_calls")  # fmt: skip
    found = events_of(MessagesEvents({}).feed(stream))
    starts = [d["content_block"] for k, d in found if k == "content_block_start"]
    assert starts == [{"type": "text", "text": ""},
                      {"type": "tool_use", "id": "c1", "name": "w", "input": {}}]  # fmt: skip
    json_parts = [d["delta"]["partial_json"] for k, d in found
                  if k == "content_block_delta" and d["index"] == 1]  # fmt: skip
    assert "".join(json_parts) == '{"city":"Oslo"}'
    assert [k for k, _ in found].count("content_block_stop") == 2


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, "invalid_request_error"), (404, "not_found_error"), (413, "request_too_large"),
     (429, "rate_limit_error"), (502, "api_error"), (503, "overloaded_error")],
)  # fmt: skip
def test_errors_take_anthropics_types(status: int, kind: str) -> None:
    assert messages.error_body(status, "no") == {
        "type": "error",
        "error": {"type": kind, "message": "no"},
    }


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    ["input", "instructions", "tools", "tool_choice", "text", "messages", "system", "max_tokens",
     "stop_sequences", "role", "content", "type"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(FIELDS, JSON, max_size=5))
def test_any_json_request_translates_or_is_refused_cleanly(body: dict[str, Any]) -> None:
    for translate in (responses.chat_request, messages.chat_request):
        with contextlib.suppress(TranslationError):
            translate({"model": "m", **body})
