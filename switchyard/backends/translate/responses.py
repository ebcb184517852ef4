"""OpenAI's Responses API over chat completions: the request, the answer and the stream.

The answer and the events follow OpenAI's Responses reference: an output ``message`` item with
``output_text`` parts and ``function_call`` items; streams send ``response.created``,
``response.in_progress``, ``response.output_item.added``, ``response.content_part.added``,
``response.output_text.delta`` ... ``response.output_text.done``, ``response.content_part.done``,
``response.output_item.done`` (``response.function_call_arguments.delta``/``.done`` for tool
calls) and end with ``response.completed`` (``response.incomplete`` when cut by
``max_output_tokens``), each with a ``sequence_number``.

Nothing is stored: ``previous_response_id`` (and ``conversation``, ``background``) are refused
with a 400 that says to send the whole conversation in ``input``.
"""

from __future__ import annotations

import time
from typing import Any

from switchyard.backends.translate import Json, TranslationError, first_message, new_id
from switchyard.backends.translate.responses_input import chat_messages, chat_tools

# Request fields that name server-side state the translation does not keep.
_STATEFUL = ("previous_response_id", "conversation", "background")
_PASSED = ("model", "temperature", "top_p", "parallel_tool_calls", "user", "seed", "top_logprobs")


def chat_request(body: Json) -> Json:
    """A Responses request as a chat completions request."""
    for name in _STATEFUL:
        if body.get(name):
            raise TranslationError(
                f"'{name}' is not supported: Switchyard keeps no response state; send the "
                "whole conversation in 'input' (and 'store': false)",
                param=name,
            )
    if "input" not in body:
        raise TranslationError("'input' is required", param="input")
    chat: Json = {k: body[k] for k in _PASSED if body.get(k) is not None}
    chat["messages"] = chat_messages(body.get("instructions"), body["input"])
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    tools, choice = chat_tools(body.get("tools"), body.get("tool_choice"))
    if tools:
        chat["tools"] = tools
    if choice is not None:
        chat["tool_choice"] = choice
    fmt = _response_format(body.get("text"))
    if fmt is not None:
        chat["response_format"] = fmt
    if body.get("stream") is not None:
        chat["stream"] = body["stream"]
    return chat


def _response_format(text: Any) -> Json | None:
    if text is None:
        return None
    fmt = text.get("format") if isinstance(text, dict) else None
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema" and isinstance(fmt, dict):
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    raise TranslationError("text.format must be text, json_object or json_schema", "text")


def usage_of(chat_usage: Any) -> Json | None:
    """Chat usage as Responses usage."""
    if not isinstance(chat_usage, dict):
        return None
    prompt = chat_usage.get("prompt_tokens") or 0
    completion = chat_usage.get("completion_tokens") or 0
    details = chat_usage.get("prompt_tokens_details") or {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": details.get("cached_tokens") or 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def chat_usage(answer_usage: Any) -> Json | None:
    """Responses usage as chat usage (what the gateway counts and bills)."""
    if not isinstance(answer_usage, dict):
        return None
    return {
        "prompt_tokens": answer_usage.get("input_tokens") or 0,
        "completion_tokens": answer_usage.get("output_tokens") or 0,
    }


def response_object(
    request: Json, rid: str, model: str, created: float, status: str, output: list[Json]
) -> Json:
    """The ``response`` object around ``output``, echoing the request's settings."""
    text = request.get("text") if isinstance(request.get("text"), dict) else None
    return {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": ({"reason": "max_output_tokens"} if status == "incomplete" else None),
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "store": False,
        "temperature": request.get("temperature"),
        "text": text or {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [],
        "top_p": request.get("top_p"),
        "truncation": "disabled",
        "usage": None,
        "metadata": request.get("metadata") or {},
    }


def message_item(item_id: str, text: str, status: str) -> Json:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [part] if status == "completed" else [],
    }


def function_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> Json:
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def from_chat(chat: Json, request: Json) -> Json:
    """A chat completion as a Responses ``response`` object."""
    choice, message = first_message(chat)
    output: list[Json] = []
    if message.get("content"):
        output.append(message_item(new_id("msg"), message["content"], "completed"))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        output.append(
            function_item(
                new_id("fc"),
                call.get("id") or new_id("call"),
                function.get("name", ""),
                function.get("arguments") or "",
                "completed",
            )
        )
    status = "incomplete" if choice.get("finish_reason") == "length" else "completed"
    created = chat.get("created") or time.time()
    answer = response_object(
        request, new_id("resp"), chat.get("model", ""), created, status, output
    )
    answer["usage"] = usage_of(chat.get("usage"))
    return answer


__all__ = ["chat_request", "chat_usage", "from_chat", "usage_of"]
