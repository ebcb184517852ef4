"""The embedder interface every router depends on, and the check that a router is used with
the embedder it was trained with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Embeddings = npt.NDArray[np.float32]
"""Float32 array of shape (n, dim), one L2-normalised row per text."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors.

    ``name`` identifies the embedding space (model, numeric format and truncation policy): two
    embedders with the same name are interchangeable; a router stores the name it was trained
    with and refuses any other (see :func:`check_embedder`)."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False
    ) -> Embeddings: ...


class EmbedderMismatchError(ValueError):
    """A router trained with one embedder was given another."""

    def __init__(self, expected: str, loaded: str) -> None:
        self.expected = expected
        self.loaded = loaded
        super().__init__(
            f"router was trained with embedder {expected!r}, but {loaded!r} is loaded; "
            f"re-train the router with {loaded!r} or load {expected!r}"
        )


def check_embedder(expected_name: str, embedder: Embedder) -> None:
    """Raise :class:`EmbedderMismatchError` unless ``embedder`` is the one named."""
    if embedder.name != expected_name:
        raise EmbedderMismatchError(expected_name, embedder.name)
