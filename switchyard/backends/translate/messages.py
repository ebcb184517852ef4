"""Anthropic's Messages API over chat completions: the request and the answer.

Requests: ``system`` (a string or text blocks) becomes the system message; content blocks
``text``, ``image`` (base64 or URL sources), ``tool_use`` (assistant) and ``tool_result``
(user; sent as ``tool`` messages right after the assistant's calls, as chat completions wants)
are translated; ``thinking`` blocks are left out. Tools with an ``input_schema`` become
function tools; ``tool_choice`` auto/any/tool/none maps onto auto/required/named/none.

Answers: text and ``tool_use`` blocks; ``stop_reason`` from the chat finish reason: ``stop`` is
``end_turn`` unless vLLM's ``stop_reason`` names one of the request's ``stop_sequences``
(then ``stop_sequence``), ``length`` is ``max_tokens``, ``tool_calls`` is ``tool_use``.
"""

from __future__ import annotations

from typing import Any

import orjson

from switchyard.backends.translate import Json, TranslationError, first_message, new_id

_PASSED = ("model", "temperature", "top_p", "top_k", "stream")
_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def chat_request(body: Json) -> Json:
    """A Messages request as a chat completions request."""
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise TranslationError("max_tokens: a positive integer is required", "max_tokens")
    chat: Json = {k: body[k] for k in _PASSED if body.get(k) is not None}
    chat["max_tokens"] = max_tokens
    chat["messages"] = _system(body.get("system")) + _messages(body.get("messages"))
    stops = body.get("stop_sequences")
    if stops is not None:
        if not (isinstance(stops, list) and all(isinstance(s, str) for s in stops)):
            raise TranslationError("stop_sequences must be an array of strings", "stop_sequences")
        chat["stop"] = stops
    tools = _tools(body.get("tools"))
    if tools:
        chat["tools"] = tools
    _tool_choice(body.get("tool_choice"), chat)
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        chat["user"] = metadata["user_id"]
    return chat


def _system(system: Any) -> list[Json]:
    if system is None:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if isinstance(system, list) and all(_is_text(b) for b in system):
        return [{"role": "system", "content": "\n".join(b["text"] for b in system)}]
    raise TranslationError("system must be a string or an array of text blocks", "system")


def _is_text(block: Any) -> bool:
    return (
        isinstance(block, dict)
        and block.get("type") == "text"
        and isinstance(block.get("text"), str)
    )


def _messages(messages: Any) -> list[Json]:
    if not isinstance(messages, list) or not messages:
        raise TranslationError("messages: a non-empty array is required", "messages")
    chat: list[Json] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise TranslationError(f"messages.{i}.role must be 'user' or 'assistant'", "messages")
        content = message.get("content")
        if isinstance(content, str):
            chat.append({"role": role, "content": content})
        elif isinstance(content, list):
            chat += _assistant(content, i) if role == "assistant" else _user(content, i)
        else:
            raise TranslationError(f"messages.{i}.content must be a string or an array", "messages")
    return chat


def _user(blocks: list[Any], i: int) -> list[Json]:
    results: list[Json] = []
    parts: list[Json] = []
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result" and isinstance(block.get("tool_use_id"), str):
            content = block.get("content")
            text = content if isinstance(content, str) else _text(content or [], i)
            if block.get("is_error"):
                text = f"[error] {text}"
            results.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": text})
        elif kind == "text" and isinstance(block.get("text"), str):
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block, i)}})
        elif kind not in ("thinking", "redacted_thinking"):
            raise TranslationError(
                f"messages.{i}.content: cannot translate a {kind!r} block", "messages"
            )
    return results + ([{"role": "user", "content": parts}] if parts else [])


def _image_url(block: Json, i: int) -> str:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "base64":
        return f"data:{source.get('media_type')};base64,{source.get('data')}"
    if (
        isinstance(source, dict)
        and source.get("type") == "url"
        and isinstance(source.get("url"), str)
    ):
        return str(source["url"])
    raise TranslationError(
        f"messages.{i}.content: an image needs a base64 or url source", "messages"
    )


def _text(blocks: Any, i: int) -> str:
    if not isinstance(blocks, list) or not all(_is_text(b) or _is_image(b) for b in blocks):
        raise TranslationError(f"messages.{i}: tool_result content must be text", "messages")
    return "\n".join(b["text"] for b in blocks if b["type"] == "text")


def _is_image(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "image"


def _assistant(blocks: list[Any], i: int) -> list[Json]:
    texts: list[str] = []
    calls: list[Json] = []
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif (
            kind == "tool_use"
            and isinstance(block.get("id"), str)
            and isinstance(block.get("name"), str)
        ):
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = {"name": block["name"], "arguments": arguments}
            calls.append({"id": block["id"], "type": "function", "function": function})
        elif kind not in ("thinking", "redacted_thinking"):
            raise TranslationError(
                f"messages.{i}.content: cannot translate a {kind!r} block", "messages"
            )
    message: Json = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def _tools(tools: Any) -> list[Json]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise TranslationError("tools must be an array", "tools")
    converted = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise TranslationError(f"tools.{i}: a tool needs a name", "tools")
        if not isinstance(tool.get("input_schema"), dict):
            raise TranslationError(
                f"tools.{i}: only client tools with an input_schema can be translated", "tools"
            )
        function = {"name": tool["name"], "parameters": tool["input_schema"]}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        converted.append({"type": "function", "function": function})
    return converted


def _tool_choice(choice: Any, chat: Json) -> None:
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if isinstance(kind, str) and kind in _CHOICES:
        chat["tool_choice"] = _CHOICES[kind]
    elif kind == "tool" and isinstance(choice.get("name"), str):
        chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise TranslationError("tool_choice type must be auto, any, tool or none", "tool_choice")
    if choice.get("disable_parallel_tool_use") is True:
        chat["parallel_tool_calls"] = False


def stop_reason(finish: Any, matched: Any, request: Json) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) of a chat finish reason; ``matched`` is vLLM's
    ``stop_reason`` (the stop string that ended the text, when one did)."""
    if finish == "length":
        return "max_tokens", None
    if finish == "tool_calls":
        return "tool_use", None
    if finish == "content_filter":
        return "refusal", None
    stops = request.get("stop_sequences") or ()
    if isinstance(matched, str) and matched in stops:
        return "stop_sequence", matched
    return "end_turn", None


def usage_of(chat_usage: Any) -> Json:
    usage = chat_usage if isinstance(chat_usage, dict) else {}
    return {
        "input_tokens": usage.get("prompt_tokens") or 0,
        "output_tokens": usage.get("completion_tokens") or 0,
    }


def chat_usage(answer_usage: Any) -> Json | None:
    if not isinstance(answer_usage, dict):
        return None
    return {
        "prompt_tokens": answer_usage.get("input_tokens") or 0,
        "completion_tokens": answer_usage.get("output_tokens") or 0,
    }


def tool_input(arguments: Any) -> Json:
    """A tool call's arguments as the ``input`` object (``{}`` when they are not one)."""
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def from_chat(chat: Json, request: Json) -> Json:
    """A chat completion as a Messages ``message``."""
    choice, message = first_message(chat)
    content: list[Json] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        content.append({
            "type": "tool_use",
            "id": call.get("id") or new_id("toolu"),
            "name": function.get("name", ""),
            "input": tool_input(function.get("arguments")),
        })  # fmt: skip
    reason, sequence = stop_reason(choice.get("finish_reason"), choice.get("stop_reason"), request)
    return {
        "id": new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": chat.get("model", ""),
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage_of(chat.get("usage")),
    }


ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


def error_body(status: int, message: str) -> Json:
    """Anthropic's error shape for an HTTP status."""
    default = "api_error" if status >= 500 else "invalid_request_error"
    kind = ERROR_TYPES.get(status, default)
    return {"type": "error", "error": {"type": kind, "message": message}}


__all__ = ["chat_request", "chat_usage", "error_body", "from_chat", "stop_reason", "usage_of"]
