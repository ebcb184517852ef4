"""Deterministic example instances of JSON schemas: forced tool calls' arguments and
``response_format: json_schema`` answers.

vLLM's guided decoding only lets the model emit JSON the schema accepts; the simulator has no
model, so it builds one such value from the schema, drawing every free choice from the
request's random source. Covered: ``type`` (one or a list), ``enum``, ``const``, objects
(``properties``; every ``required`` one, optional ones while the depth allows), arrays
(``items``, ``prefixItems``, ``minItems``/``maxItems``), numbers (``minimum``/``maximum``,
exclusive bounds, ``multipleOf`` for integers), strings (``minLength``/``maxLength``,
``format`` date, date-time, time, email, uri, uuid), ``anyOf``/``oneOf`` (a branch),
``allOf`` (merged) and local ``$ref`` (``#/$defs/...``, ``#/definitions/...``, ``#``).
Not covered: ``pattern``, ``not``, ``if``/``then``, ``dependentSchemas`` and schemas that require
infinite nesting; such a schema may get a value it rejects.
"""

from __future__ import annotations

import random
from typing import Any

from switchyard.backends.simulator.text import WORDS

MAX_DEPTH = 6  # past it only what the schema requires is built (recursive $refs end)
_GIVE_UP_DEPTH = 4 * MAX_DEPTH  # a schema that requires infinite nesting gets a null there
_FORMATS = {
    "date": lambda r: f"2025-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
    "date-time": lambda r: f"2025-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T12:00:00Z",
    "time": lambda r: f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:00",
    "email": lambda r: f"{r.choice(WORDS)}@example.com",
    "uri": lambda r: f"https://example.com/{r.choice(WORDS)}",
    "uuid": lambda r: f"{r.getrandbits(32):08x}-0000-4000-8000-{r.getrandbits(48):012x}",
}


def example_value(schema: Any, rng: random.Random, root: Any = None, depth: int = 0) -> Any:
    """A value ``schema`` accepts (within the subset above); ``root`` resolves ``$ref``."""
    root = schema if root is None else root
    if depth > _GIVE_UP_DEPTH:
        return None
    schema = _resolve(schema, root)
    if not isinstance(schema, dict):
        return rng.choice(WORDS)
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return rng.choice(enum)
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            rest = {k: v for k, v in schema.items() if k != key}
            branch = _branch(branches, root, depth > MAX_DEPTH)
            return example_value({**rest, **branch}, rng, root, depth)
    parts = schema.get("allOf")
    if isinstance(parts, list) and parts:
        return example_value(_merge(schema, parts, root), rng, root, depth)
    kind = _schema_type(schema, depth)
    if kind == "object" or (kind is None and isinstance(schema.get("properties"), dict)):
        return _example_object(schema, rng, root, depth)
    if kind == "array":
        return _example_array(schema, rng, root, depth)
    return _example_scalar(kind, schema, rng)


def _resolve(schema: Any, root: Any) -> Any:
    """Follow local ``$ref``s (a chain of them too); an unknown one resolves to ``{}``."""
    for _ in range(16):
        ref = schema.get("$ref") if isinstance(schema, dict) else None
        if not isinstance(ref, str):
            return schema
        target: Any = root
        for part in ref.removeprefix("#").strip("/").split("/") if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, dict) else None
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**target, **rest} if isinstance(target, dict) else rest
    return schema


def _branch(branches: list[Any], root: Any, deep: bool) -> dict[str, Any]:
    """The first branch that is not ``null`` (a nullable field gets a value), or, too deep,
    the ``null`` one (a recursive, nullable ``$ref`` ends there); else the first."""
    resolved = [_resolve(b, root) for b in branches]
    dicts = [b for b in resolved if isinstance(b, dict)]
    for branch in dicts:
        if (branch.get("type") == "null") == deep:
            return branch
    return dicts[0] if dicts else {}


def _merge(schema: dict[str, Any], parts: list[Any], root: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in parts:
        part = _resolve(part, root)
        if not isinstance(part, dict):
            continue
        props = {**merged.get("properties", {}), **part.get("properties", {})}
        required = [*merged.get("required", []), *part.get("required", [])]
        merged.update(part)
        merged["properties"], merged["required"] = props, required
    return merged


def _schema_type(schema: dict[str, Any], depth: int) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):  # e.g. ["string", "null"]: a value, unless too deep
        useful = [k for k in kind if isinstance(k, str) and k != "null"]
        if depth > MAX_DEPTH and "null" in kind:
            return "null"
        kind = useful[0] if useful else ("null" if "null" in kind else None)
    return kind if isinstance(kind, str) else None


def _example_object(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> Any:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return {}
    required = schema.get("required")
    needed = set(required) if isinstance(required, list) else set()
    return {
        str(name): example_value(sub, rng, root, depth + 1)
        for name, sub in properties.items()
        if name in needed or depth < MAX_DEPTH
    }


def _example_array(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> Any:
    low = _int(schema.get("minItems"), 0)
    high = _int(schema.get("maxItems"), 64)
    count = max(low, min(1 if depth < MAX_DEPTH else 0, high))  # one item, if allowed
    prefix = schema.get("prefixItems")
    prefix = prefix if isinstance(prefix, list) else []
    items = schema.get("items")
    out = []
    for i in range(count):
        sub = prefix[i] if i < len(prefix) else items
        out.append(example_value(sub if sub is not None else {}, rng, root, depth + 1))
    return out


def _example_scalar(kind: str | None, schema: dict[str, Any], rng: random.Random) -> Any:
    if kind in ("integer", "number"):
        return _example_number(kind, schema, rng)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    fmt = _FORMATS.get(schema.get("format", ""))
    if fmt is not None:
        return fmt(rng)
    low = _int(schema.get("minLength"), 0)
    high = _int(schema.get("maxLength"), max(low, 64))
    text = rng.choice(WORDS)
    while len(text) < low:
        text += " " + rng.choice(WORDS)
    return text[: max(high, low)]


def _example_number(kind: str, schema: dict[str, Any], rng: random.Random) -> int | float:
    low, high = (
        _bound(schema, "minimum", "exclusiveMinimum", 0),
        _bound(schema, "maximum", "exclusiveMaximum", 100),
    )
    low_open, high_open = "exclusiveMinimum" in schema, "exclusiveMaximum" in schema
    if high < low:  # only one bound given, beyond the default range
        low, high = (low, low + 100) if "minimum" in schema or low_open else (high - 100, high)
    if kind == "number":
        value = round(rng.uniform(low, high), 2)
        if (low_open and value <= low) or (high_open and value >= high):
            value = (low + high) / 2
        return value
    first = int(low) + 1 if low_open or low != int(low) else int(low)
    last = int(high) - 1 if high_open and high == int(high) else int(high)
    step = schema.get("multipleOf")
    if isinstance(step, int) and not isinstance(step, bool) and step > 0:
        first = -(-first // step) * step
        return first + step * rng.randint(0, max((last - first) // step, 0))
    return rng.randint(first, max(first, last))


def _bound(schema: dict[str, Any], inclusive: str, exclusive: str, default: float) -> float:
    for key in (inclusive, exclusive):
        value = schema.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return float(default)


def _int(value: Any, default: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return min(value, 64)  # a schema cannot make the simulator build a huge answer
    return default
