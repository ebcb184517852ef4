"""A Responses request's ``instructions``, ``input`` items and tools as chat messages and tools.

Input items: messages (``{"role", "content"}``, with or without ``"type": "message"``; text,
image and refusal parts), ``function_call`` items (merged into the assistant message before
them, as chat completions puts tool calls) and ``function_call_output`` items (``tool``
messages); ``reasoning`` items carry nothing a chat backend reads and are left out. Any other
item (built-in tools' calls, item references) cannot be expressed and is refused.
"""

from __future__ import annotations

from typing import Any

from switchyard.backends.translate import Json, TranslationError

_ROLES = frozenset({"user", "assistant", "system", "developer"})
_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})


def chat_messages(instructions: Any, items: Any) -> list[Json]:
    messages: list[Json] = []
    if instructions is not None:
        if not isinstance(instructions, str):
            raise TranslationError("'instructions' must be a string", "instructions")
        messages.append({"role": "system", "content": instructions})
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
        return messages
    if not isinstance(items, list) or not items:
        raise TranslationError("'input' must be a string or a non-empty array of items", "input")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise TranslationError(f"input[{i}] must be an object", "input")
        _add_item(messages, item, i)
    return messages


def _add_item(messages: list[Json], item: Json, i: int) -> None:
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise TranslationError(f"input[{i}].role must be one of {sorted(_ROLES)}", "input")
        messages.append({"role": role, "content": _content(item.get("content"), i)})
    elif kind == "function_call":
        call = {
            "id": _string(item, "call_id", i),
            "type": "function",
            "function": {
                "name": _string(item, "name", i),
                "arguments": _string(item, "arguments", i),
            },
        }
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant" and "tool_calls" in last:
            last["tool_calls"].append(call)
        elif last is not None and last["role"] == "assistant" and isinstance(last["content"], str):
            last["tool_calls"] = [call]
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        output = item.get("output")
        text = output if isinstance(output, str) else _text_of(output, i)
        messages.append(
            {"role": "tool", "tool_call_id": _string(item, "call_id", i), "content": text}
        )
    elif kind != "reasoning":
        raise TranslationError(
            f"input[{i}] is a '{kind}' item; only messages, function_call and "
            "function_call_output items can be translated to chat completions",
            "input",
        )


def _string(item: Json, name: str, i: int) -> str:
    value = item.get(name)
    if not isinstance(value, str):
        raise TranslationError(f"input[{i}].{name} must be a string", "input")
    return value


def _content(content: Any, i: int) -> str | list[Json]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise TranslationError(f"input[{i}].content must be a string or an array", "input")
    parts: list[Json] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if isinstance(kind, str) and kind in _TEXT_PARTS and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            parts.append({"type": "text", "text": part["refusal"]})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            image = {"url": part["image_url"], "detail": part.get("detail") or "auto"}
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise TranslationError(
                f"input[{i}].content holds a part that cannot be translated ({kind!r})", "input"
            )
    return parts


def _text_of(content: Any, i: int) -> str:
    parts = _content(content, i)
    if isinstance(parts, str):
        return parts
    return "".join(p["text"] for p in parts if p["type"] == "text")


def chat_tools(tools: Any, choice: Any) -> tuple[list[Json], Any]:
    """Function tools in chat completions' shape, and the tool choice to match."""
    converted: list[Json] = []
    if tools is not None and not isinstance(tools, list):
        raise TranslationError("'tools' must be an array", "tools")
    for i, tool in enumerate(tools or ()):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise TranslationError(
                f"tools[{i}] is a '{kind}' tool; only function tools can be translated to chat "
                "completions",
                "tools",
            )
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise TranslationError(f"tools[{i}].name must be a non-empty string", "tools")
        function = {
            k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool
        }
        converted.append({"type": "function", "function": function})
    return converted, _choice(choice)


def _choice(choice: Any) -> Any:
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise TranslationError(
        "'tool_choice' must be auto, none, required or {'type': 'function', 'name': ...}",
        "tool_choice",
    )
