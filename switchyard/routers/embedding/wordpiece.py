"""A fast path for the embedders' tokeniser: BERT's uncased WordPiece on plain ASCII text.

Routing with the static embedder is a tokeniser pass and a table lookup, so the tokeniser is
most of its cost: the ``tokenizers`` library takes ~75 µs for a 60-token prompt (one Rust
call through its whole normaliser, pre-tokeniser and offsets machinery). For text of printable
ASCII plus tab, newline and carriage return (nearly all prompts), BERT's pipeline reduces to:
lowercase; split into runs of letters and digits, each other printable character alone, and
whitespace between; then WordPiece (greedy longest match, ``##`` for continuations, ``[UNK]``
for a word it cannot cover or longer than 100 characters). Each distinct word's pieces are
remembered, so a prompt costs a regular expression and a dictionary lookup per word.

Any other text (accents, CJK, control characters) goes to the ``tokenizers`` library, whose
normaliser handles it. ``tests/routers/embedding/test_wordpiece.py`` checks the two agree on
every prompt of the reference data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_PLAIN = re.compile(r"[\x20-\x7e\t\n\r]*")
_WORDS = re.compile(r"[a-z0-9]+|[^a-z0-9\s]")
MAX_WORD_CHARS = 100
CACHE_WORDS = 100_000


class AsciiWordPiece:
    """WordPiece over ``vocab`` for plain ASCII text; :meth:`ids` is None for other text."""

    def __init__(self, vocab: Mapping[str, int], unk_id: int) -> None:
        self._vocab = dict(vocab)
        self._unk = unk_id
        self._cache: dict[str, list[int]] = {}

    def ids(self, text: str) -> list[int] | None:
        """Token ids of ``text`` without special tokens, or None when it is not plain ASCII."""
        if not _PLAIN.fullmatch(text):
            return None
        cache, out = self._cache, []
        for word in _WORDS.findall(text.lower()):
            pieces = cache.get(word)
            if pieces is None:
                pieces = self._pieces(word)
                if len(cache) >= CACHE_WORDS:
                    cache.clear()
                cache[word] = pieces
            out += pieces
        return out

    def _pieces(self, word: str) -> list[int]:
        """Greedy longest-match-first WordPiece of one word."""
        if len(word) > MAX_WORD_CHARS:
            return [self._unk]
        vocab, pieces, start = self._vocab, [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                found = vocab.get(piece)
                if found is not None:
                    pieces.append(found)
                    start = end
                    break
            else:
                return [self._unk]
        return pieces
