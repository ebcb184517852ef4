"""Token log-probabilities, in the shapes vLLM (and OpenAI) answer them.

Chat: ``logprobs: true`` and ``top_logprobs: k`` (0..20) give each choice
``{"content": [{"token", "logprob", "bytes", "top_logprobs": [k entries]}]}``, one entry per
output token (one per chunk when streamed). Completions: ``logprobs: k`` gives
``{"tokens", "token_logprobs", "top_logprobs": [{token: logprob}], "text_offset"}`` with the
sampled token plus alternatives, ``max(k, 1)`` entries a token.

The numbers are plausible, not learned: each answer draws a confidence, each token a
probability around it (a beta distribution), and the alternatives share part of the rest,
so the probabilities of a position sum to less than 1 and a less confident answer has lower
log-probabilities throughout (what a cascade's verifier reads). They come from a random
source of their own, so asking for them never changes the answer's text.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from switchyard.backends.simulator.text import WORDS

MAX_TOP_LOGPROBS = 20  # vLLM's default --max-logprobs
_SHARPNESS = 8.0  # beta concentration: how closely tokens follow the answer's confidence
_CONFIDENCE = (0.55, 0.97)


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    token: str
    logprob: float
    top: tuple[tuple[str, float], ...]  # most likely first; holds ``token`` when listed
    offset: int  # where the token starts in the choice's text


def token_logprobs(pieces: Sequence[str], rng: random.Random, listed: int) -> list[TokenLogprob]:
    """Log-probabilities of ``pieces`` with ``listed`` entries in each top list."""
    confidence = rng.uniform(*_CONFIDENCE)
    a, b = confidence * _SHARPNESS, (1 - confidence) * _SHARPNESS
    out, offset = [], 0
    for piece in pieces:
        p = min(max(rng.betavariate(a, b), 1e-4), 0.9999)
        entries = [(piece, math.log(p))]
        if listed > 1:
            entries += _alternatives(piece, 1 - p, listed - 1, rng)
            entries.sort(key=lambda e: -e[1])
        out.append(TokenLogprob(piece, math.log(p), tuple(entries[:listed]), offset))
        offset += len(piece)
    return out


def _alternatives(
    token: str, mass: float, count: int, rng: random.Random
) -> list[tuple[str, float]]:
    """``count`` other tokens sharing 90 % of ``mass``, each likely less than the one before."""
    lead = " " if token.startswith(" ") else ""
    names: list[str] = []
    while len(names) < count:
        name = lead + rng.choice(WORDS)
        if name != token and name not in names:  # 19 at most, of some 200 words
            names.append(name)
    weights = [max(rng.random(), 1e-6) * 0.5**j for j in range(count)]
    scale = 0.9 * mass / sum(weights)
    return [(n, math.log(w * scale)) for n, w in zip(names, weights, strict=True)]


def _entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}


def chat_content(items: Sequence[TokenLogprob]) -> dict[str, Any]:
    """A chat choice's ``logprobs`` object for these tokens."""
    content = []
    for item in items:
        entry = _entry(item.token, item.logprob)
        entry["top_logprobs"] = [_entry(t, lp) for t, lp in item.top]
        content.append(entry)
    return {"content": content}


def completion_logprobs(items: Sequence[TokenLogprob]) -> dict[str, Any]:
    """A completion choice's ``logprobs`` object for these tokens (all, or a chunk's)."""
    return {
        "text_offset": [item.offset for item in items],
        "token_logprobs": [item.logprob for item in items],
        "tokens": [item.token for item in items],
        "top_logprobs": [dict(item.top) for item in items],
    }
