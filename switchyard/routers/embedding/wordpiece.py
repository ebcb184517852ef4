"""A fast path for the embedders' tokeniser: BERT's uncased WordPiece on common text.

Routing with the static embedder is a tokeniser pass and a table lookup, so the tokeniser is
most of its cost: the ``tokenizers`` library takes ~75 µs for a 60-token prompt (one Rust
call through its whole normaliser, pre-tokeniser and offsets machinery). For text made of
printable ASCII, tab, newline and carriage return, CJK ideographs and Unicode punctuation
(nearly all prompts, Chinese ones included), BERT's pipeline reduces to: lowercase; split
into runs of letters and digits, each other character alone (BERT pads CJK ideographs with
spaces and splits punctuation off), and whitespace between; then WordPiece (greedy longest
match, ``##`` for continuations, ``[UNK]`` for a word it cannot cover or longer than 100
characters). Neither runs of letters and digits nor the characters split off cross
whitespace, so a text's words are its whitespace-separated chunks' words, one after the other:
each distinct chunk's ids are remembered (and each distinct word's pieces), and a prompt of
known chunks costs a ``str.split`` and a dictionary lookup per chunk, all in C (a regular
expression over the whole prompt took three times as long as the rest together).

Any other text (accents, kana, Hangul, symbols such as the multiplication sign, which BERT
keeps inside words, control characters) goes to the ``tokenizers`` library, whose normaliser
handles it.
``tests/routers/embedding/test_wordpiece.py`` checks the two agree on every prompt of the
reference data.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from itertools import chain

_PLAIN = re.compile(r"[\x20-\x7e\t\n\r]*")
_PLAIN_CHARS = frozenset(map(chr, range(0x20, 0x7F))) | {"\t", "\n", "\r"}
_WORDS = re.compile(r"[a-z0-9]+|[^a-z0-9\s]")
MAX_WORD_CHARS = 100
CACHE_WORDS = 100_000  # remembered words, and remembered chunks (each bound on its own)
MAX_CHUNK_CHARS = 24  # longer chunks are tokenised each time (bounds the chunks' memory)
# The code points BERT treats as Chinese characters (each one a word of its own).
_CJK = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)  # fmt: skip


def is_single_char_word(char: str) -> bool:
    """Whether BERT's uncased normaliser and pre-tokeniser make ``char`` (not ASCII) a word
    of its own, unchanged: a CJK ideograph or a punctuation character that lowercasing and
    accent stripping (NFD) leave alone (a CJK compatibility ideograph decomposes into
    another)."""
    point = ord(char)
    single = any(low <= point <= high for low, high in _CJK)
    single = single or unicodedata.category(char).startswith("P")
    return single and char.lower() == char and unicodedata.normalize("NFD", char) == char


class FastWordPiece:
    """WordPiece over ``vocab``; :meth:`ids` is None for text it leaves to the library."""

    def __init__(self, vocab: Mapping[str, int], unk_id: int) -> None:
        self._vocab = dict(vocab)
        self._unk = unk_id
        self._chunks: dict[str, tuple[int, ...]] = {}  # whitespace-separated chunk -> ids
        self._words: dict[str, list[int]] = {}  # word -> its WordPiece ids
        self._single: set[str] = set()  # non-ASCII characters seen that are words alone
        self._other: set[str] = set()  # non-ASCII characters seen that are not

    def ids(self, text: str) -> list[int] | None:
        """Token ids of ``text`` without special tokens, or None when the fast path cannot
        tokenise it exactly."""
        if not _PLAIN.fullmatch(text) and not self._covered(text):
            return None
        chunks = text.lower().split()
        known = self._chunks
        try:
            return list(chain.from_iterable(map(known.__getitem__, chunks)))
        except KeyError:  # a chunk not seen yet: add the new ones, then look up again
            if len(known) + len(chunks) > CACHE_WORDS:
                known.clear()
            long: dict[str, tuple[int, ...]] = {}  # chunks too long to keep (no spaces)
            for chunk in chunks:
                if chunk not in known and chunk not in long:
                    ids = self._chunk_ids(chunk)
                    (known if len(chunk) <= MAX_CHUNK_CHARS else long)[chunk] = ids
            if long:
                return list(chain.from_iterable(long.get(c) or known[c] for c in chunks))
            return list(chain.from_iterable(map(known.__getitem__, chunks)))

    def _chunk_ids(self, chunk: str) -> tuple[int, ...]:
        """The ids of one lower-cased chunk without whitespace: its words' pieces in turn."""
        words = _WORDS.findall(chunk)
        cache = self._words
        if len(cache) + len(words) > CACHE_WORDS:
            cache.clear()
        for word in words:  # a loop beats set differences: most chunks are a word or two
            if word not in cache:
                cache[word] = self._pieces(word)
        return tuple(chain.from_iterable(map(cache.__getitem__, words)))

    def _covered(self, text: str) -> bool:
        """Every character is plain ASCII or a non-ASCII single-character word."""
        rest = set(text).difference(_PLAIN_CHARS).difference(self._single)
        if not rest:
            return True
        if not rest.isdisjoint(self._other) or min(rest) < "\x80":  # ASCII control chars
            return False
        if len(self._single) + len(self._other) + len(rest) > CACHE_WORDS:
            self._single.clear()
            self._other.clear()
        for char in rest:
            (self._single if is_single_char_word(char) else self._other).add(char)
        return rest.isdisjoint(self._other)

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
