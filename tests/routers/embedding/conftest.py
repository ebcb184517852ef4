"""Reference embedder and real prompts from the shared RouterDC data."""

from __future__ import annotations

import json

import pytest

from switchyard.routers.embedding import OnnxEmbedder, SentenceTransformerEmbedder
from tests.support.requirements import reference_data


def _questions(file: str, count: int) -> list[str]:
    rows = json.loads(reference_data("routing", "routerdc", file).read_text())
    return [str(row["question"]) for row in rows[:count]]


@pytest.fixture(scope="session")
def reference_embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


@pytest.fixture(scope="session")
def real_prompts(onnx_embedder: OnnxEmbedder) -> list[str]:
    """About 200 MMLU and GSM8K questions short enough that no truncation applies (the
    reference and the ONNX embedder only agree below 255 tokens)."""
    texts = _questions("mmlu_test.json", 120) + _questions("gsm8k-test.json", 100)
    lengths = [len(ids) for ids in onnx_embedder.tokenizer.content_ids(texts)]
    short = [t for t, n in zip(texts, lengths, strict=True) if n <= 254]
    assert len(short) >= 180, f"only {len(short)} of {len(texts)} prompts fit in 254 tokens"
    return short
