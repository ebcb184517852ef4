"""The exported ONNX embedder against the sentence-transformers reference, and the export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from switchyard.routers.embedding import (
    EMBEDDER_NAME,
    Embedder,
    OnnxEmbedder,
    SentenceTransformerEmbedder,
    export_onnx,
    model_dir,
)
from switchyard.routers.embedding.export import is_complete


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))


def test_int8_per_channel_agrees_with_reference(
    onnx_embedder: OnnxEmbedder,
    reference_embedder: SentenceTransformerEmbedder,
    real_prompts: list[str],
) -> None:
    got = onnx_embedder.embed(real_prompts)
    want = reference_embedder.embed(real_prompts)
    cos = cosines(got, want)
    summary = (
        f"n={len(cos)} mean={cos.mean():.4f} min={cos.min():.4f} p5={np.quantile(cos, 0.05):.4f}"
    )
    assert cos.mean() >= 0.99, summary
    assert cos.min() >= 0.97, summary


def test_fp32_export_matches_reference(
    embedder_cache: Path,
    reference_embedder: SentenceTransformerEmbedder,
    real_prompts: list[str],
) -> None:
    fp32 = OnnxEmbedder(embedder_cache, variant="fp32", threads=1)
    prompts = real_prompts[:48]
    cos = cosines(fp32.embed(prompts, batch_size=16), reference_embedder.embed(prompts))
    assert cos.min() >= 0.9999, f"min cosine {cos.min():.6f}"
    single = fp32.embed(prompts[:8], batch_size=1)  # padding in batches changes nothing
    np.testing.assert_allclose(single, fp32.embed(prompts[:8], batch_size=8), atol=1e-5)


def test_output_is_normalised_and_deterministic(
    onnx_embedder: OnnxEmbedder, real_prompts: list[str]
) -> None:
    texts = real_prompts[:20]
    first = onnx_embedder.embed(texts, batch_size=7)
    assert first.shape == (20, 384) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    # int8 embeds each text alone: equal whatever the order, batch size or batch-mates.
    np.testing.assert_array_equal(onnx_embedder.embed(texts), first)
    np.testing.assert_array_equal(onnx_embedder.embed(texts[::-1])[::-1], first)
    np.testing.assert_array_equal(onnx_embedder.embed([texts[3]])[0], first[3])


def test_interface_and_names(embedder_cache: Path, onnx_embedder: OnnxEmbedder) -> None:
    assert isinstance(onnx_embedder, Embedder)
    assert onnx_embedder.name == f"{EMBEDDER_NAME}/onnx-int8-pc"
    assert onnx_embedder.dim == 384
    assert onnx_embedder.providers[-1] == "CPUExecutionProvider"
    assert onnx_embedder.embed([]).shape == (0, 384)
    with pytest.raises(TypeError):
        onnx_embedder.embed("not a list")
    fp32 = OnnxEmbedder(model_dir(embedder_cache), variant="fp32")  # the model dir works too
    assert fp32.name == f"{EMBEDDER_NAME}/onnx-fp32"
    with pytest.raises(FileNotFoundError, match="embedder export"):
        OnnxEmbedder(embedder_cache / "nowhere")


def test_export_is_idempotent(embedder_cache: Path) -> None:
    directory = model_dir(embedder_cache)
    before = {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}
    assert set(before) == {"model.onnx", "model.int8.onnx", "tokenizer.json", "embedder.json"}
    assert export_onnx(embedder_cache) == directory
    assert {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == before
    left = sorted(p.name for p in embedder_cache.iterdir())  # no temp dirs left
    assert left == [directory.name, "all-MiniLM-L6-v2-static"]


def test_incomplete_export_is_not_used(embedder_cache: Path, tmp_path: Path) -> None:
    source, partial = model_dir(embedder_cache), model_dir(tmp_path)
    partial.mkdir()
    for name in ("model.onnx", "model.int8.onnx", "tokenizer.json"):
        (partial / name).symlink_to(source / name)
    assert not is_complete(partial)  # no manifest: an export that did not finish
    manifest = json.loads((source / "embedder.json").read_text())
    manifest["files"]["model.int8.onnx"]["bytes"] += 1  # a file that is not what was written
    (partial / "embedder.json").write_text(json.dumps(manifest))
    assert not is_complete(partial)
    with pytest.raises(FileNotFoundError):
        OnnxEmbedder(tmp_path)
    assert is_complete(source)
