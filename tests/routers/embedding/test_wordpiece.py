"""The tokeniser's fast path gives exactly the ``tokenizers`` library's ids."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from switchyard.routers.embedding import PromptTokenizer, model_dir, wordpiece
from switchyard.routers.embedding.wordpiece import FastWordPiece
from tests.support.requirements import reference_data

EDGE_CASES = [
    "",
    "   \t\n ",
    "Hello, World!!  It's 3:45pm -- isn't it? (yes) [no] {maybe} <tag/> a_b~c`d|e^f",
    "x" * 101,  # longer than WordPiece's 100 characters: [UNK]
    "unbelievably antidisestablishmentarianism supercalifragilistic",
    "def f(x):\n\treturn x**2 + 1  # comment\r\n",
    "1234567890 3.14159 1e-9 0xFF",
    "数学问题：下列哪个选项是正确的？（A）甲；（B）乙。",  # noqa: RUF001
    "mixed中文and English，「quoted」— dash… ellipsis",  # noqa: RUF001
    "\u4e00\u9fff\U00020000 rare ideographs, 丂丄 and 龥",
]


def library(cache: Path) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(model_dir(cache) / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def both(cache: Path) -> tuple[PromptTokenizer, Tokenizer]:
    """The project's tokeniser (fast path on) and the library's, on the same vocabulary."""
    return PromptTokenizer(model_dir(cache) / "tokenizer.json"), library(cache)


def reference_prompts() -> list[str]:
    texts = []
    for path in sorted(reference_data("routing", "routerdc").glob("*.json")):
        texts += [str(row["question"]) for row in json.loads(path.read_text())]
    for path in sorted(reference_data("routing", "routerbench").glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as f:
            texts += [row["prompt"] for row in csv.DictReader(f)]
    return texts


def test_ascii_cjk_and_punctuation_edge_cases_match_the_library(embedder_cache: Path) -> None:
    ours, theirs = both(embedder_cache)
    for text in EDGE_CASES:
        assert ours._fast is not None and ours._fast.ids(text) is not None, text
        assert ours.content_ids([text])[0] == theirs.encode(text, add_special_tokens=False).ids
    assert ours.content_ids(["x" * 101])[0] == [theirs.token_to_id("[UNK]")]


def test_every_reference_prompt_matches_the_library_alone_and_in_a_batch(
    embedder_cache: Path,
) -> None:
    ours, theirs = both(embedder_cache)
    texts = reference_prompts()
    expected = [e.ids for e in theirs.encode_batch(texts, add_special_tokens=False)]
    assert ours.content_ids(texts) == expected
    assert ours._fast is not None
    plain = sum(ours._fast.ids(t) is not None for t in texts)
    assert 0.5 * len(texts) < plain < len(texts)  # both paths are exercised
    for text, ids in list(zip(texts, expected, strict=True))[::97]:
        assert ours.content_ids([text]) == [ids]


@pytest.mark.parametrize(
    "text",
    [
        "café au lait",
        "カタカナ",
        "한국어",
        "3\u00d74",
        "½",
        "tab\x0bcontrol",
        "nul\x00",
        "\x7f",
        "数\u3000学",
    ],
)
def test_other_text_is_left_to_the_library(text: str, embedder_cache: Path) -> None:
    ours = PromptTokenizer(model_dir(embedder_cache) / "tokenizer.json")
    assert ours._fast is not None and ours._fast.ids(text) is None
    assert (
        ours.content_ids([text])[0]
        == library(embedder_cache).encode(text, add_special_tokens=False).ids
    )


def test_a_word_the_vocabulary_cannot_cover_is_one_unk() -> None:
    wp = FastWordPiece({"ab": 1, "##c": 2, "x": 3, "!": 4}, unk_id=0)
    assert wp.ids("abc x!") == [1, 2, 3, 4]
    assert wp.ids("abd x") == [0, 3]  # "d" has no piece: the whole word is [UNK]
    assert wp.ids("ABC") == [1, 2]  # lowercased


def test_every_character_the_fast_path_takes_alone_gets_the_library_s_ids(
    embedder_cache: Path,
) -> None:
    ours, theirs = both(embedder_cache)
    assert ours._fast is not None
    taken = [chr(c) for c in range(0x80, 0x30000) if ours._fast.ids(chr(c)) is not None]
    assert len(taken) > 80_000  # the CJK blocks and the punctuation
    assert "\uf902" not in taken  # a compatibility ideograph: NFD makes it another one
    expected = [e.ids for e in theirs.encode_batch(taken, add_special_tokens=False)]
    assert [ours._fast.ids(c) for c in taken] == expected


def test_a_chunk_s_ids_are_remembered_and_the_memory_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wordpiece, "CACHE_WORDS", 4)
    wp = FastWordPiece({"ab": 1, "##c": 2, "x": 3, "!": 4, "(": 5, ")": 6}, unk_id=0)
    assert wp.ids("(abc) x!") == [5, 1, 2, 6, 3, 4]  # chunks "(abc)" and "x!"
    assert wp.ids("x! (abc)\tx!") == [3, 4, 5, 1, 2, 6, 3, 4]  # the same chunks, remembered
    for text in ("ab x", "abc!", "x!x", "(x)", "ab ab(", "!ab"):  # past the bound: cleared
        assert wp.ids(text) == [i for w in text.split() for i in wp._chunk_ids(w.lower())]
        assert len(wp._chunks) <= 4 and len(wp._words) <= 4
    assert wp.ids("(abc) x!") == [5, 1, 2, 6, 3, 4]


def test_a_long_chunk_is_tokenised_each_time_and_not_kept() -> None:
    wp = FastWordPiece({"ab": 1, "##c": 2, "x": 3, "!": 4}, unk_id=0)
    long = "abc!" * 10  # 40 characters without whitespace
    assert len(long) > wordpiece.MAX_CHUNK_CHARS
    assert wp.ids(f"x {long} x!") == [3, *[1, 2, 4] * 10, 3, 4]
    assert long.lower() not in wp._chunks and "x!" in wp._chunks
    assert wp.ids(long) == [1, 2, 4] * 10


def test_characters_judged_once_are_remembered_either_way() -> None:
    wp = FastWordPiece({"x": 3, "，": 5}, unk_id=0)  # noqa: RUF001
    for _ in range(2):
        assert wp.ids("x，x") == [3, 5, 3]  # noqa: RUF001
        assert wp.ids("x café") is None  # "é" is not a word alone: the library's
        assert wp.ids("x\x0b") is None  # an ASCII control character
    assert "，" in wp._single and "é" in wp._other  # noqa: RUF001
