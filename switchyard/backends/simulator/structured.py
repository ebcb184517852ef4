"""``response_format``: JSON answers, as vLLM's guided decoding gives them.

``{"type": "json_object"}`` answers a JSON object; ``{"type": "json_schema", "json_schema":
{"name", "schema", "strict"}}`` answers an instance of the schema
(``switchyard.backends.simulator.schema``); ``{"type": "text"}`` changes nothing. The JSON is a
pure function of the request's random source, so the same request gets the same object. Its
tokens are 4-character pieces (the simulator's ``ceil(chars / 4)`` rule); a ``max_tokens``
below that cuts the JSON short with ``finish_reason: "length"``, as vLLM does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import orjson

from switchyard.backends.simulator.schema import example_value
from switchyard.backends.simulator.text import WORDS, Completion

PIECE_CHARS = 4
_JSON_OBJECT_WORDS = (4, 24)  # the answer's length in words, json_object mode


class FormatError(ValueError):
    """A malformed ``response_format``; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    kind: str  # "json_object" or "json_schema"
    schema: dict[str, Any] | None  # json_schema only


def parse_response_format(value: Any) -> ResponseFormat | None:
    """The JSON mode a request asks for; None for plain text (absent or ``"text"``)."""
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat("json_object", None)
    if kind != "json_schema":
        raise FormatError("response_format.type must be one of text, json_object, json_schema")
    spec = value.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise FormatError("response_format.json_schema must be an object with a name")
    schema = spec.get("schema", {})
    if not isinstance(schema, dict):
        raise FormatError("response_format.json_schema.schema must be an object")
    return ResponseFormat("json_schema", schema)


def json_completion(
    fmt: ResponseFormat, rng: random.Random, max_tokens: int | None, room: int
) -> Completion:
    """The JSON answer, cut to ``max_tokens`` and to the ``room`` left in the context."""
    if fmt.schema is None:
        words = rng.choices(WORDS, k=rng.randint(*_JSON_OBJECT_WORDS))
        value: Any = {"answer": " ".join(words)}
    else:
        value = example_value(fmt.schema, rng)
    text = _dump(value)
    pieces = tuple(text[i : i + PIECE_CHARS] for i in range(0, len(text), PIECE_CHARS))
    limit = min(room, len(pieces) if max_tokens is None else max_tokens)
    if limit >= len(pieces):
        return Completion(tokens=pieces, text=text, finish_reason="stop")
    kept = pieces[:limit]
    return Completion(tokens=kept, text="".join(kept), finish_reason="length")


def _dump(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # e.g. a const integer beyond 64 bits
        return "{}"
