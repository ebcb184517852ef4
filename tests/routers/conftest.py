"""Fixtures shared by the router tests: the ONNX prompt embedder, exported once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchyard.routers.embedding import OnnxEmbedder, export_onnx


@pytest.fixture(scope="session")
def embedder_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory holding the exported embedder (torch export, once per session)."""
    cache = tmp_path_factory.mktemp("switchyard-cache")
    export_onnx(cache)
    return cache


@pytest.fixture(scope="session")
def onnx_embedder(embedder_cache: Path) -> OnnxEmbedder:
    """The default int8 ONNX embedder on one intra-op thread."""
    return OnnxEmbedder(embedder_cache, threads=1)
