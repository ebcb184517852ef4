"""Forced tool calls: which function the "model" calls and with what arguments.

The simulator only calls a tool when the client forces it (``tool_choice`` "required" or a
named function); with "auto" it answers in text, so the outcome never depends on chance.
Arguments are a deterministic example instance of the function's JSON-schema parameters
(``switchyard.backends.simulator.schema``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import orjson

from switchyard.backends.simulator.schema import example_value

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


def _dump(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # e.g. an enum of integers beyond 64 bits
        return "{}"
