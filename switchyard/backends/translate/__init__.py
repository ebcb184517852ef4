"""Translations between OpenAI chat completions and the other generation APIs clients speak:
OpenAI's Responses API (``responses``) and Anthropic's Messages API (``messages``).

Pure functions and small stateful stream translators over decoded JSON and SSE bytes: no
HTTP, no settings. The gateway serves ``POST /v1/responses`` and ``POST /v1/messages`` with
them in front of backends that speak only chat completions; the simulator serves
``POST /v1/responses`` with the same translation, as vLLM serves it over its chat engine.

Each API module offers the same four parts:

* ``chat_request(body) -> dict``: the API's request as a chat completions request
  (``TranslationError`` when it asks for something chat completions cannot express);
* ``from_chat(chat, request) -> dict``: a chat completion as the API's answer;
* an event translator (``feed(chunk) -> bytes``, ``flush() -> bytes``, ``fail(...)``):
  a chat completions SSE stream as the API's SSE events, with ``usage`` once seen;
* ``usage_of(answer)``: the chat-style usage (prompt/completion tokens) of an answer.
"""

from __future__ import annotations

import random
from typing import Any


class TranslationError(ValueError):
    """The request cannot be expressed in chat completions (or is malformed); ``param``
    names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


Json = dict[str, Any]


def new_id(prefix: str) -> str:
    """An id such as ``resp_<24 hex digits>``: unique enough to tell answers apart, and
    ~10x cheaper than a uuid4 (no syscall per id)."""
    return f"{prefix}_{random.getrandbits(96):024x}"


__all__ = ["Json", "TranslationError", "new_id"]


def first_message(chat: Json) -> tuple[Json, Json]:
    """A chat completion's first choice and its message (empty dicts where missing)."""
    choices = chat.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    return choice, message if isinstance(message, dict) else {}
