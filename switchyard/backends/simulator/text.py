"""Deterministic "model output" and the token arithmetic the simulator reports.

Output is a pure function of (server seed, request ``seed``, prompt text): the same request
gives the same words, so tests and caches can rely on it. Token counting is an approximation
documented here and used everywhere (usage, metrics, context checks):

* a text costs ``ceil(chars / 4)`` tokens (the usual rule of thumb for English BPE);
* a chat message costs 4 more tokens for its role and separators;
* a prompt given as token ids costs one token per id;
* one output token is one word (with its leading space after the first).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

MESSAGE_OVERHEAD_TOKENS = 4
MIN_NATURAL_TOKENS = 16
MAX_NATURAL_TOKENS = 64
_MAX_CACHED_PROMPT_CHARS = 8192

_WORD_SOURCE = """
    the of and to in is that for it as was with be by on not he this are or his from at
    which but have an they you were her she there been one all we their has would when
    if so no what up out more other into time only new some could these two may first
    then do any like my now over such our man me even most made after also did many
    before must through back years where much your way well down should because each just
    those people how too little state good very make world still own see men work long
    get here between both life being under never day same another know while last might
    us great old year off come since against go came right used take three river signal
    engine batch token model router replica latency cache queue stream prompt gateway
    cloud switch yard train track lantern harbor meadow copper violet amber garden orbit
"""
WORDS: tuple[str, ...] = tuple(_WORD_SOURCE.split())


class ContextLengthError(ValueError):
    """The prompt plus the requested completion does not fit the model's context."""


def count_text_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def check_context(prompt_tokens: int, max_tokens: int | None, max_model_len: int) -> None:
    """Raise ``ContextLengthError`` with vLLM's wording when the request cannot fit."""
    wanted = max_tokens or 0
    if prompt_tokens + wanted <= max_model_len and prompt_tokens < max_model_len:
        return
    raise ContextLengthError(
        f"This model's maximum context length is {max_model_len} tokens. However, you "
        f"requested {prompt_tokens + wanted} tokens ({prompt_tokens} in the messages, "
        f"{wanted} in the completion). Please reduce the length of the messages or completion."
    )


@dataclass(frozen=True, slots=True)
class Completion:
    """The whole answer to one request, decided before any token is "generated"."""

    tokens: tuple[str, ...]
    text: str
    finish_reason: str  # "stop" or "length"


class TextModel:
    """Makes completions for one server; remembers recent ones because benchmarks repeat."""

    def __init__(self, seed: int, max_model_len: int, cache_size: int = 2048) -> None:
        self._seed = seed
        self._max_model_len = max_model_len
        self._cache_size = cache_size
        self._cache: dict[tuple[int | None, str, int | None, int, str], Completion] = {}

    def rng(self, prompt: str, request_seed: int | None, salt: str = "") -> random.Random:
        """The random source every deterministic choice for this request is drawn from
        (``salt`` names another one: a further choice of ``n``, the log-probabilities)."""
        return random.Random(f"{self._seed}:{request_seed}:{prompt}{salt}")

    def room(self, prompt_tokens: int) -> int:
        """Output tokens that still fit in the context after the prompt."""
        return max(self._max_model_len - prompt_tokens, 0)

    def complete(
        self,
        prompt: str,
        prompt_tokens: int,
        max_tokens: int | None,
        request_seed: int | None,
        salt: str = "",
    ) -> Completion:
        """``max_tokens`` words if given (finish "length"), else 16..64 words (finish "stop");
        always capped by the room left in the context."""
        key = (request_seed, prompt, max_tokens, prompt_tokens, salt)
        found = self._cache.get(key)
        if found is not None:
            return found
        completion = self._make(prompt, prompt_tokens, max_tokens, request_seed, salt)
        if len(prompt) <= _MAX_CACHED_PROMPT_CHARS:  # keeps the cache's memory bounded too
            if len(self._cache) >= self._cache_size:
                self._cache.clear()  # crude but O(1) per request and bounded; hits dominate
            self._cache[key] = completion
        return completion

    def _make(
        self,
        prompt: str,
        prompt_tokens: int,
        max_tokens: int | None,
        request_seed: int | None,
        salt: str,
    ) -> Completion:
        rng = self.rng(prompt, request_seed, salt)
        natural = rng.randint(MIN_NATURAL_TOKENS, MAX_NATURAL_TOKENS)
        wanted = natural if max_tokens is None else max_tokens
        count = min(wanted, self.room(prompt_tokens))
        finish = "stop" if max_tokens is None and count == natural else "length"
        words = rng.choices(WORDS, k=count)
        tokens = tuple(word if i == 0 else " " + word for i, word in enumerate(words))
        return Completion(tokens=tokens, text=" ".join(words), finish_reason=finish)
