"""The ``cache:`` section of the settings (nothing heavy imported here)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CacheConfig(BaseModel):
    """The response cache (``switchyard.gateway.cache``): exact matches of opted-in requests,
    and similar prompts for a semantic opt-in (``cache.semantic``), in process, or in Redis
    when ``state.redis_url`` is set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=False, description="Serve opted-in requests from the cache.")
    ttl_s: float = Field(default=300.0, gt=0, description="How long an answer is kept.")
    max_entries: int = Field(default=10_000, ge=1, description="In-process LRU: entries.")
    max_bytes: int = Field(default=64 << 20, ge=1, description="In-process LRU: total bytes.")
    max_body_bytes: int = Field(default=1 << 20, ge=1, description="Larger answers are not stored.")
    semantic_threshold: float = Field(
        default=0.95,
        gt=0,
        le=1,
        description="Semantic opt-ins: the least cosine similarity of prompt embeddings that "
        "counts as the same question (docs/BENCHMARKS.md section 24).",
    )
    semantic_max_entries: int = Field(
        default=1000, ge=1, description="Semantic index: prompts kept per (scope, model)."
    )
    semantic_refresh_s: float = Field(
        default=1.0, gt=0, description="Redis: how often a gateway rereads a shared index."
    )
