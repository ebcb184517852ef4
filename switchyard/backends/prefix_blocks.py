"""Prompt blocks: a prompt cut into fixed-size token blocks and hashed as vLLM's prefix cache
hashes them — each block's hash covers its parent's hash and its own tokens, so a hash names
the whole prefix up to the end of its block, and two prompts share block ``i`` only when they
share every token before it.

Tokens are approximated as the simulator counts them (``simulator/text.py``): 4 characters
of text per token, 4 tokens for a chat message's role and separators, one token per token id.
Each token becomes exactly ``CHARS_PER_TOKEN`` characters of an aligned *token text* (a role
header, then the text padded to a whole token), so block ``i`` is one slice of it and its
length is ``4 x`` the simulator's prompt token count. Both ends use this one module: the
simulator keys its prefix cache on it, the gateway's ``PrefixIndex`` the blocks it sent.

Hashes are Python's ``hash()`` of ``(parent, block)`` (~0.15 µs a block, a third of
blake2b's): salted per process, so they are never stored or compared across processes; a
process's hit-or-miss verdicts are deterministic all the same. Tool definitions are not
part of the token text (a chat template puts them in a model-specific place).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BLOCK_TOKENS",
    "CHARS_PER_TOKEN",
    "PromptBlocks",
    "block_hashes",
    "chat_token_text",
    "ids_token_text",
    "message_segment",
    "request_blocks",
    "text_segment",
]

BLOCK_TOKENS = 16  # vLLM's default --block-size on GPUs
CHARS_PER_TOKEN = 4
_HEADER_CHARS = 4 * CHARS_PER_TOKEN  # a message's role and separators: 4 tokens
_PAD = "\x00"


@dataclass(frozen=True, slots=True)
class PromptBlocks:
    """A request's full prompt blocks (hash chain, root first) and its token count."""

    hashes: tuple[int, ...]
    prompt_tokens: int
    block_tokens: int = BLOCK_TOKENS


def text_segment(text: str) -> str:
    """``text`` padded to whole tokens (``ceil(len / 4)`` of them)."""
    extra = -len(text) % CHARS_PER_TOKEN
    return text + _PAD * extra if extra else text


def message_segment(role: str, text: str) -> str:
    """One chat message: a 4-token role header, then its text in whole tokens."""
    header = f"<|{role}|>"[:_HEADER_CHARS]
    return header.ljust(_HEADER_CHARS, _PAD) + text_segment(text)


def ids_token_text(ids: Iterable[int]) -> str:
    """A prompt of token ids, one token each (ids above 65535 share a token: approximate)."""
    return "".join(f"{i & 0xFFFF:04x}" for i in ids)


def chat_token_text(messages: Any) -> str:
    """The token text of a chat ``messages`` array, leniently (the gateway reads bodies it
    has not validated): what is not a message with a role contributes nothing."""
    if not isinstance(messages, list):
        return ""
    parts = []
    for message in messages:
        if isinstance(message, dict) and isinstance(role := message.get("role"), str):
            parts.append(message_segment(role, _content_text(message.get("content"))))
    return "".join(parts)


def block_hashes(
    token_text: str, block_tokens: int = BLOCK_TOKENS, max_blocks: int | None = None
) -> tuple[int, ...]:
    """The hash chain of the full blocks of ``token_text``, root first (at most
    ``max_blocks``; a partial last block is never hashed, as in vLLM)."""
    step = block_tokens * CHARS_PER_TOKEN
    count = len(token_text) // step
    if max_blocks is not None:
        count = min(count, max_blocks)
    out = []
    parent = 0
    for start in range(0, count * step, step):
        parent = hash((parent, token_text[start : start + step]))
        out.append(parent)
    return tuple(out)


def request_blocks(
    body: Mapping[str, Any],
    chat: bool,
    block_tokens: int = BLOCK_TOKENS,
    max_blocks: int | None = 512,
) -> PromptBlocks | None:
    """The prompt blocks of an OpenAI chat (``chat``) or completions body; ``None`` when the
    prompt has no full block (nothing a prefix cache could hold)."""
    if chat:
        text = chat_token_text(body.get("messages"))
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if isinstance(prompt, str):
            text = text_segment(prompt)
        elif isinstance(prompt, list) and all(isinstance(t, int) for t in prompt):
            text = ids_token_text(prompt)
        else:
            return None
    hashes = block_hashes(text, block_tokens, max_blocks)
    if not hashes:
        return None
    return PromptBlocks(hashes, len(text) // CHARS_PER_TOKEN, block_tokens)


def _content_text(content: Any) -> str:
    """A message's text as the simulator reads it: a string, or its text parts joined."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text":
            text = part.get("text")
            if isinstance(text, str):
                texts.append(text)
    return "\n".join(texts)
