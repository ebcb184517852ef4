"""The semantic cache's prompt embeddings: int8 MiniLM, whatever the routers embed with.

The static embedder the default routers use averages token vectors, so two questions that
share their words and differ in a number or a negation come out nearly identical: at the
cache's threshold (0.95) 3.4 % of RouterDC questions would be answered with their nearest
*different* question's answer, against 0.22 % with MiniLM (docs/BENCHMARKS.md section 28); so
semantic lookups embed with MiniLM, on a thread of their own (a few ms a prompt, paid only by
requests that opt in), and every gateway indexes the same space. When the routers themselves
run on int8 MiniLM, the routing decision's embedding is reused instead.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from switchyard.gateway.settings import RoutingConfig

SEMANTIC_KIND = "onnx-int8"


class SemanticEmbedder:
    """int8 MiniLM on one thread of its own: :meth:`vector` of a prompt text."""

    def __init__(self, cache: Path | None, threads: int) -> None:
        from switchyard.routers.embedding import load_embedder

        self._embedder = load_embedder(SEMANTIC_KIND, cache=cache, threads=threads)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="switchyard-cache-embed")

    @property
    def name(self) -> str:
        return str(self._embedder.name)

    async def vector(self, text: str) -> Any:
        """The float32, L2-normalised embedding of ``text``."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._one, text)

    def _one(self, text: str) -> Any:
        return self._embedder.embed([text])[0]

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def semantic_embedder(routing: RoutingConfig) -> SemanticEmbedder:
    """Load it from the routers' embedder cache, with their thread count (blocking)."""
    return SemanticEmbedder(routing.embedder_cache, routing.embedder_threads)
