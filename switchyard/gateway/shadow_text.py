"""Reading an answer's text and usage out of an OpenAI response body: for shadow mode
(``switchyard.gateway.shadow``) a JSON answer, or the SSE stream the user was relayed (the
deltas of the first choice, joined), in the background; for a cascade's verifier
(``switchyard.gateway.cascade``) a parsed JSON answer (``choice_text``)."""

from __future__ import annotations

from typing import Any

import orjson

from switchyard.gateway.settings import Capability


def answer_text(body: bytes, cap: Capability, stream: bool) -> str | None:
    """The first choice's text (None when the body holds none)."""
    if stream:
        return _stream_text(body, cap)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return choice_text(data, cap)


def usage_of(body: bytes) -> dict[str, int] | None:
    """``prompt_tokens`` and ``completion_tokens`` of a JSON answer (None without them)."""
    try:
        usage = orjson.loads(body).get("usage")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not (isinstance(prompt, int) and isinstance(completion, int)):
        return None
    return {"prompt_tokens": prompt, "completion_tokens": completion}


def choice_text(data: Any, cap: Capability, part: str = "message") -> str | None:
    """The text of choice 0 of one answer (``part``: "message") or chunk ("delta")."""
    if not isinstance(data, dict):
        return None
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    choice = choices[0]
    if cap is Capability.completions:
        text = choice.get("text")
    else:
        message = choice.get(part)
        text = message.get("content") if isinstance(message, dict) else None
    return text if isinstance(text, str) else None


def _stream_text(body: bytes, cap: Capability) -> str | None:
    pieces: list[str] = []
    found = False
    for line in body.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            break
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(chunk, dict) and "error" in chunk:
            return None  # the stream broke: the user did not get a whole answer
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        first = choices[0] if isinstance(choices, list) and choices else None
        if isinstance(first, dict) and first.get("index", 0) != 0:
            continue  # n > 1: the first choice only
        text = choice_text(chunk, cap, "delta")
        if text is not None:
            pieces.append(text)
            found = True
    return "".join(pieces) if found else None
