"""Embedding cache, loading embedders and the mismatch check (the CLI: tests/cli)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from switchyard.routers.embedding import (
    EmbedderMismatchError,
    EmbedderUnavailableError,
    Embeddings,
    OnnxEmbedder,
    cache_dir,
    check_embedder,
    embed_cached,
    embeddings_dir,
    load_embedder,
)


class Counting:
    """Wraps an embedder under another name and counts the texts it is asked to embed."""

    def __init__(self, inner: OnnxEmbedder, name: str) -> None:
        self.inner, self._name = inner, name
        self.calls: list[int] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False
    ) -> Embeddings:
        self.calls.append(len(texts))
        return self.inner.embed(texts, batch_size=batch_size, progress=progress)


class Hashing:
    """A cheap deterministic embedder (a hash per text) for the 20k-text timing."""

    name = "test/hashing"
    dim = 384

    def embed(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False
    ) -> Embeddings:
        seeds = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little") for t in texts]
        rows = [np.random.default_rng(s).standard_normal(self.dim) for s in seeds]
        out = np.array(rows, dtype=np.float32).reshape(len(texts), self.dim)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.asarray(out / norms, dtype=np.float32)


TEXTS = [f"question number {i}: what is {i} plus {i * 7}?" for i in range(12)]


def test_second_run_hits_the_cache(tmp_path: Path, onnx_embedder: OnnxEmbedder) -> None:
    counting = Counting(onnx_embedder, onnx_embedder.name)
    texts = [*TEXTS, TEXTS[0], TEXTS[3]]  # duplicates are embedded once
    first = embed_cached(counting, texts, cache=tmp_path, progress=False)
    assert counting.calls == [len(TEXTS)]
    second = embed_cached(counting, texts, cache=tmp_path, progress=False)
    assert counting.calls == [len(TEXTS)]
    np.testing.assert_array_equal(second, first)
    np.testing.assert_array_equal(first, onnx_embedder.embed(texts))
    shards = sorted(p.name for p in embeddings_dir(counting.name, tmp_path).glob("*.npy"))
    assert len(shards) == 2 and shards[0].endswith(".emb.npy")


def test_rows_are_reused_and_names_do_not_collide(
    tmp_path: Path, onnx_embedder: OnnxEmbedder
) -> None:
    a = Counting(onnx_embedder, "test/a")
    embed_cached(a, TEXTS[:8], cache=tmp_path, progress=False)
    later = embed_cached(a, TEXTS[4:], cache=tmp_path, progress=False)
    assert a.calls == [8, 4]  # only the 4 texts never seen before
    np.testing.assert_array_equal(later, onnx_embedder.embed(TEXTS[4:]))
    b = Counting(onnx_embedder, "test/b")
    embed_cached(b, TEXTS[:8], cache=tmp_path, progress=False)
    assert b.calls == [8]
    assert embeddings_dir("test/a", tmp_path) != embeddings_dir("test/b", tmp_path)
    assert embed_cached(a, [], cache=tmp_path).shape == (0, 384)


def test_corrupt_shard_is_recomputed(tmp_path: Path, onnx_embedder: OnnxEmbedder) -> None:
    counting = Counting(onnx_embedder, "test/corrupt")
    good = embed_cached(counting, TEXTS, cache=tmp_path, progress=False)
    for path in embeddings_dir(counting.name, tmp_path).glob("*.npy"):
        path.write_bytes(path.read_bytes()[:100])
    again = embed_cached(counting, TEXTS, cache=tmp_path, progress=False)
    assert counting.calls == [12, 12]
    np.testing.assert_array_equal(again, good)


def test_repeat_of_20k_texts_is_fast(tmp_path: Path) -> None:
    texts = [f"prompt {i} about topic {i % 97}" for i in range(20_000)]
    first = embed_cached(Hashing(), texts, cache=tmp_path, progress=False)
    started = time.perf_counter()
    again = embed_cached(Hashing(), texts, cache=tmp_path, progress=False)
    elapsed = time.perf_counter() - started
    np.testing.assert_array_equal(again, first)
    assert elapsed < 1.0, f"cached repeat took {elapsed:.2f} s"


def test_check_embedder(onnx_embedder: OnnxEmbedder) -> None:
    check_embedder(onnx_embedder.name, onnx_embedder)
    with pytest.raises(EmbedderMismatchError, match="trained with embedder") as info:
        check_embedder("all-MiniLM-L6-v2/st-fp32", onnx_embedder)
    assert isinstance(info.value, ValueError)
    assert info.value.expected == "all-MiniLM-L6-v2/st-fp32"
    assert info.value.loaded == onnx_embedder.name
    assert "re-train" in str(info.value)


def test_load_embedder(
    embedder_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = load_embedder(cache=embedder_cache, threads=1, export_if_missing=False)
    assert loaded.name == "all-MiniLM-L6-v2/onnx-int8-pc"
    fp32 = load_embedder("onnx-fp32", cache=embedder_cache, export_if_missing=False)
    assert fp32.name == "all-MiniLM-L6-v2/onnx-fp32"
    with pytest.raises(EmbedderUnavailableError, match="embedder export"):
        load_embedder(cache=tmp_path, export_if_missing=False)
    with pytest.raises(ValueError, match="unknown embedder kind"):
        load_embedder("bert-large")
    monkeypatch.setenv("SWITCHYARD_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert cache_dir() == Path.home() / ".cache" / "switchyard"  # only the CLI reads the env
