"""The prompt text a router embeds and the head + tail token truncation policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from switchyard.routers.embedding import (
    HEAD_TOKENS,
    MAX_TOKENS,
    OnnxEmbedder,
    content_text,
    prompt_text,
    truncate_ids,
)


def test_prompt_text_keeps_system_and_last_user_turn() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": "second question"},
        {"role": "tool", "content": "tool output"},
    ]
    assert prompt_text(messages) == "You are terse.\n\nAnswer in French.\n\nsecond question"


def test_prompt_text_content_parts_and_edge_cases() -> None:
    parts = [
        {"type": "text", "text": "Describe this"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "text", "text": "in one line."},
    ]
    assert prompt_text([{"role": "user", "content": parts}]) == "Describe this\nin one line."
    assert prompt_text("already a prompt") == "already a prompt"
    assert prompt_text([{"role": "system", "content": "only system"}]) == "only system"
    assert prompt_text([{"role": "user", "content": None}]) == ""
    assert prompt_text([]) == ""
    with pytest.raises(TypeError):
        content_text(42)


def test_truncate_ids_keeps_head_and_tail() -> None:
    ids = list(range(1000))
    kept = truncate_ids(ids)
    tail = MAX_TOKENS - 2 - HEAD_TOKENS
    assert kept == ids[:HEAD_TOKENS] + ids[-tail:]
    assert len(kept) == MAX_TOKENS - 2
    assert truncate_ids(ids[:254]) == ids[:254]
    assert truncate_ids(ids, max_tokens=10, head=8) == [0, 1, 2, 3, 4, 5, 6, 7]
    with pytest.raises(ValueError):
        truncate_ids(ids, max_tokens=10, head=9)


def words(tokens: OnnxEmbedder, count: int, offset: int) -> str:
    """A text of exactly ``count`` tokens, made of single-token words."""
    vocab = [f"{w}" for w in ("river", "stone", "light", "green", "house", "music", "table")]
    text = " ".join(vocab[(i * 3 + offset) % len(vocab)] for i in range(count))
    assert len(tokens.tokenizer.content_ids([text])[0]) == count
    return text


def test_long_prompt_keeps_head_and_tail_tokens(onnx_embedder: OnnxEmbedder) -> None:
    tok = onnx_embedder.tokenizer
    tail_len = MAX_TOKENS - 2 - HEAD_TOKENS
    head, tail = words(onnx_embedder, HEAD_TOKENS, 0), words(onnx_embedder, tail_len, 1)
    middle = words(onnx_embedder, 400, 2)
    long_text = f"{head} {middle} {tail}"
    content = tok.content_ids([long_text])[0]
    assert len(content) == HEAD_TOKENS + 400 + tail_len
    ids = tok.encode([long_text])[0]
    assert ids == [tok.cls_id, *content[:HEAD_TOKENS], *content[-tail_len:], tok.sep_id]
    assert len(ids) == MAX_TOKENS
    assert tok.encode([f"{head} {tail}"])[0] == ids  # the middle is what gets dropped

    vectors = onnx_embedder.embed(
        [
            long_text,
            f"{head} {tail}",
            f"{head} {words(onnx_embedder, 300, 5)} {tail}",
            f"{words(onnx_embedder, HEAD_TOKENS, 4)} {middle} {tail}",
            f"{head} {middle} {head}",
        ]
    )
    np.testing.assert_array_equal(vectors[1], vectors[0])
    np.testing.assert_array_equal(vectors[2], vectors[0])
    assert not np.array_equal(vectors[3], vectors[0])  # a different head counts
    assert not np.array_equal(vectors[4], vectors[0])  # so does a different tail


def test_custom_limits_change_the_name(embedder_cache: Path) -> None:
    short = OnnxEmbedder(embedder_cache, max_tokens=64, head_tokens=16, threads=1)
    assert short.name.endswith("/t64h16")
    assert len(short.tokenizer.encode(["word " * 500])[0]) == 64
    with pytest.raises(ValueError):
        OnnxEmbedder(embedder_cache, max_tokens=1024)
