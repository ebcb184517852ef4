"""The static embedder distilled from MiniLM: what it computes, how it is built and loaded."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from switchyard.routers.datasets.core import RoutingDataset
from switchyard.routers.embedding import (
    EmbedderUnavailableError,
    OnnxEmbedder,
    StaticEmbedder,
    kind_of,
    load_embedder,
    model_dir,
    static_name,
)
from switchyard.routers.embedding.static import (
    TABLE_FILE,
    distill_static,
    static_dir,
    static_is_complete,
    zipf_pca,
)
from switchyard.routers.models import make_router
from switchyard.routers.pipeline import RoutingPipeline

PROMPTS = [
    "What is the capital of France?",
    "Which city is the capital of Germany?",
    "Write a Python function that reverses a linked list.",
    # Not "Implement quicksort in Java and explain its complexity.": MiniLM itself put that
    # one nearer the apples question (0.138 against 0.121) on a later machine: a near tie.
    "Write a JavaScript function that sorts a list of numbers.",
    "Janet has 3 apples and buys twice as many. How many apples does she have now?",
    "A train travels 60 miles in 1.5 hours. What is its average speed?",
]


def test_a_text_embeds_as_the_normalised_mean_of_its_token_rows(
    static_embedder: StaticEmbedder,
) -> None:
    table = np.load(static_embedder.directory / TABLE_FILE)
    got = static_embedder.embed(PROMPTS)
    for text, vector in zip(PROMPTS, got, strict=True):
        ids = static_embedder.tokenizer.content_ids([text])[0]
        mean = table[ids].mean(axis=0)
        assert np.allclose(vector, mean / np.linalg.norm(mean), atol=1e-6)
    assert got.shape == (len(PROMPTS), 256) and got.dtype == np.float32
    assert static_embedder.name == static_name(256) == "all-MiniLM-L6-v2-static/pcaz256"


def test_a_batch_embeds_each_text_as_it_would_alone(static_embedder: StaticEmbedder) -> None:
    batch = static_embedder.embed(PROMPTS)
    alone = np.vstack([static_embedder.embed([p]) for p in PROMPTS])
    assert np.allclose(batch, alone, atol=1e-6)


def test_empty_text_embeds_as_cls_and_nothing_is_nan(static_embedder: StaticEmbedder) -> None:
    got = static_embedder.embed(["", "   ", "hi"])
    assert np.isfinite(got).all()
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert np.allclose(got[0], got[1])
    assert static_embedder.embed([]).shape == (0, 256)
    with pytest.raises(TypeError):
        static_embedder.embed("a string")


def test_the_middle_of_a_very_long_prompt_is_cut_like_minilms(
    static_embedder: StaticEmbedder,
) -> None:
    head, tail = "alpha " * 300, " omega" * 300
    a = static_embedder.embed([head + "the middle says cats" + tail])
    b = static_embedder.embed([head + "the middle says quantum chromodynamics" + tail])
    assert np.allclose(a, b)


def test_it_keeps_minilms_notion_of_which_prompts_are_alike(
    static_embedder: StaticEmbedder, onnx_embedder: OnnxEmbedder
) -> None:
    """Each prompt's nearest other prompt is the same under both embedders (the pairs above
    are two geography, two coding and two arithmetic questions)."""

    def nearest(vectors: np.ndarray) -> list[int]:
        sims = vectors @ vectors.T
        np.fill_diagonal(sims, -np.inf)
        return [int(i) for i in sims.argmax(axis=1)]

    assert nearest(static_embedder.embed(PROMPTS)) == nearest(onnx_embedder.embed(PROMPTS))
    assert nearest(static_embedder.embed(PROMPTS)) == [1, 0, 3, 2, 5, 4]


def test_distilling_again_is_a_no_op_and_the_manifest_holds_the_tables_checksum(
    embedder_cache: Path, static_embedder: StaticEmbedder
) -> None:
    directory = static_dir(embedder_cache)
    before = {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}
    assert distill_static(embedder_cache) == directory
    assert {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == before
    manifest = json.loads((directory / "embedder.json").read_text())
    assert manifest["name"] == static_embedder.name
    assert static_embedder.checksum == manifest["files"][TABLE_FILE]["sha256"]
    assert len(static_embedder.checksum) == 64


def test_pca_table_is_reproducible_and_weighs_frequent_tokens_less() -> None:
    rng = np.random.default_rng(0)
    vocab = rng.normal(size=(50, 8)) @ np.diag([5, 4, 3, 2, 1, 1, 1, 1])
    table = zipf_pca(vocab, 4)
    assert np.array_equal(table, zipf_pca(vocab.copy(), 4))
    assert table.shape == (50, 4) and table.dtype == np.float32
    assert table[0].tolist() == [0.0] * 4  # row 0 weighs log(1) = 0
    projected = table[1:] / np.log1p(np.arange(1, 50))[:, None]
    spread = projected.var(axis=0)
    assert list(spread) == sorted(spread, reverse=True)  # principal components, in order
    with pytest.raises(ValueError, match="dim"):
        zipf_pca(vocab, 9)


def test_load_embedder_distils_the_table_once_from_an_exported_minilm(
    embedder_cache: Path, tmp_path: Path
) -> None:
    model_dir(tmp_path).symlink_to(model_dir(embedder_cache), target_is_directory=True)
    assert not static_is_complete(static_dir(tmp_path))
    built = load_embedder("static", cache=tmp_path)
    assert isinstance(built, StaticEmbedder) and static_is_complete(static_dir(tmp_path))
    shared = StaticEmbedder(embedder_cache)
    assert np.allclose(built.embed(PROMPTS), shared.embed(PROMPTS), atol=1e-5)


def test_without_an_export_and_not_allowed_to_export_it_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(EmbedderUnavailableError, match="switchyard embedder export"):
        load_embedder("static", cache=tmp_path, export_if_missing=False)
    with pytest.raises(FileNotFoundError, match="embedder export"):
        StaticEmbedder(tmp_path)


def test_kind_of_maps_each_recorded_name_back_to_its_kind(
    static_embedder: StaticEmbedder, onnx_embedder: OnnxEmbedder
) -> None:
    assert kind_of(static_embedder.name) == "static"
    assert kind_of(onnx_embedder.name) == "onnx-int8"
    assert kind_of("all-MiniLM-L6-v2/onnx-fp32") == "onnx-fp32"
    assert kind_of("all-MiniLM-L6-v2/st-fp32") == "st-fp32"
    with pytest.raises(ValueError, match="no embedder kind"):
        kind_of("some-other-model/v1")


def test_a_router_warns_on_another_table_but_not_on_one_that_differs_in_its_last_bits(
    static_embedder: StaticEmbedder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    quality = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]] * 2)
    data = RoutingDataset(prompts=PROMPTS, models=["a", "b"], quality=quality, tasks=["t"] * 6)
    pipe = RoutingPipeline(make_router("knn", k=3), static_embedder, cache=tmp_path)
    pipe.fit(data)
    pipe.save(tmp_path / "r")
    manifest = json.loads((tmp_path / "r" / "router.json").read_text())
    assert manifest["embedder_checksum"] == static_embedder.checksum
    assert RoutingPipeline.recorded_embedder(tmp_path / "r") == static_embedder.name
    assert len(manifest["embedder_probe"]) == 3  # the probe texts as this table embeds them

    def load_with(**changes: Any) -> list[logging.LogRecord]:
        (tmp_path / "r" / "router.json").write_text(json.dumps(manifest | changes))
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="switchyard.routers.pipeline"):
            RoutingPipeline.load(tmp_path / "r", static_embedder)
        return caplog.records

    assert not load_with()
    # Another CPU's table: another checksum, the same probe embeddings to within noise.
    probe = [[float(v) for v in row.split()] for row in manifest["embedder_probe"]]
    noisy = [" ".join(str(v + 1e-6) for v in row) for row in probe]
    (quiet,) = load_with(embedder_checksum="0" * 64, embedder_probe=noisy)
    assert quiet.levelno == logging.INFO and "last bits only" in quiet.getMessage()
    # A different table: the probes embed differently.
    other = [" ".join(str(-v) for v in row) for row in probe]
    (loud,) = load_with(embedder_checksum="0" * 64, embedder_probe=other)
    assert loud.levelno == logging.WARNING and "table sha256 000000000000" in loud.getMessage()
    assert "probe cosine -1.0000" in loud.getMessage()
    # A router saved before probes: the checksum alone decides.
    (old,) = load_with(embedder_checksum="0" * 64, embedder_probe=None)
    assert old.levelno == logging.WARNING and "probe" not in old.getMessage()
