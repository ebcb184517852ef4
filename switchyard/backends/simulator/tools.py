"""Forced tool calls: which function the "model" calls and with what arguments.

The simulator only calls a tool when the client forces it (``tool_choice`` "required" or a
named function); with "auto" it answers in text, so the outcome never depends on chance.
Arguments are a deterministic example instance of the function's JSON-schema parameters.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import orjson

from switchyard.backends.simulator.text import WORDS

_MAX_SCHEMA_DEPTH = 4
_PIECE_CHARS = 8  # one streamed "token" of arguments


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str
    pieces: tuple[str, ...]  # ``arguments`` cut into token-sized pieces, for streaming

    def to_message_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


def forced_function(tools: list[dict[str, Any]], tool_choice: Any) -> dict[str, Any] | None:
    """The ``function`` object of the tool to call, or None to answer in text.

    Expects ``tools``/``tool_choice`` already validated (see ``protocol``).
    """
    if not tools or tool_choice in (None, "none", "auto"):
        return None
    if tool_choice == "required":
        function: dict[str, Any] = tools[0]["function"]
        return function
    wanted = tool_choice["function"]["name"]
    for tool in tools:
        if tool["function"]["name"] == wanted:
            found: dict[str, Any] = tool["function"]
            return found
    return None


def make_tool_call(function: dict[str, Any], rng: random.Random) -> ToolCall:
    arguments = _dump(example_value(function.get("parameters"), rng))
    pieces = tuple(arguments[i : i + _PIECE_CHARS] for i in range(0, len(arguments), _PIECE_CHARS))
    return ToolCall(
        id=f"call_{rng.getrandbits(96):024x}",
        name=function["name"],
        arguments=arguments,
        pieces=pieces,
    )


def example_value(schema: Any, rng: random.Random, depth: int = 0) -> Any:
    """A value matching the simple parts of a JSON schema (type, enum, const, properties)."""
    if not isinstance(schema, dict) or depth > _MAX_SCHEMA_DEPTH:
        return rng.choice(WORDS)
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return rng.choice(enum)
    if "const" in schema:
        return schema["const"]
    kind = _schema_type(schema)
    if kind == "object" or (kind is None and isinstance(schema.get("properties"), dict)):
        return _example_object(schema, rng, depth)
    if kind == "array":
        return [example_value(schema.get("items"), rng, depth + 1)]
    return _example_scalar(kind, rng)


def _schema_type(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):  # e.g. ["string", "null"]: use the first useful one
        kind = next((k for k in kind if isinstance(k, str) and k != "null"), None)
    return kind if isinstance(kind, str) else None


def _example_object(schema: dict[str, Any], rng: random.Random, depth: int) -> dict[str, Any]:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return {}
    return {str(name): example_value(sub, rng, depth + 1) for name, sub in properties.items()}


def _example_scalar(kind: str | None, rng: random.Random) -> Any:
    if kind == "integer":
        return rng.randint(0, 100)
    if kind == "number":
        return round(rng.uniform(0, 100), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return rng.choice(WORDS)


def _dump(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # e.g. an enum of integers beyond 64 bits
        return "{}"
