"""Panels of the gateway's response cache (``cache.enabled``), on the Overview board: hits
and misses by kind (exact, semantic), stores and store failures; the similarity of semantic
hits. A failing store or index costs hits, never requests (alert
``SwitchyardCacheStoreFailing``)."""

from __future__ import annotations

from switchyard.deploy.dashboards.style import Panel, target, timeseries

__all__ = ["response_cache", "semantic_similarity"]


def response_cache() -> Panel:
    return timeseries(
        "Response cache",
        "Opted-in requests per second (5m): answered from the cache (hits, no upstream call), "
        "not found (misses), by kind (exact; semantic: a similar prompt's answer), answers "
        "stored, and store failures by operation (get/put: answers; index_*: the semantic "
        "index; Redis down or "
        "too slow: those requests are answered uncached), and opted-in requests skipped because "
        "they sample (temperature > 0 or absent, n > 1, logprobs). Empty when the cache is off.",
        [
            target("sum by (kind) (rate(switchyard_cache_hits_total[5m]))", "hits {{kind}}"),
            target("sum by (kind) (rate(switchyard_cache_misses_total[5m]))", "misses {{kind}}"),
            target("sum(rate(switchyard_cache_stores_total[5m]))", "stores"),
            target("sum by (op) (rate(switchyard_cache_errors_total[5m]))", "errors {{op}}"),
            target(
                "sum by (reason) (rate(switchyard_cache_skipped_total[5m]))", "skipped {{reason}}"
            ),
        ],
        "reqps",
        w=24,
    )


def semantic_similarity() -> Panel:
    hist = "sum by (le) (rate(switchyard_cache_semantic_similarity_bucket[15m]))"
    return timeseries(
        "Semantic cache: similarity of hits",
        "Cosine similarity of the prompts behind semantic hits (15m): the median and the 5th "
        "percentile against cache.semantic_threshold. Hits crowding at the threshold mean it "
        "answers prompts that are only somewhat alike: check that the answers fit, or raise "
        "the threshold. Empty without semantic opt-ins.",
        [
            target(f"histogram_quantile(0.5, {hist})", "p50"),
            target(f"histogram_quantile(0.05, {hist})", "p5"),
        ],
        "percentunit",
        w=12,
        max_value=1,
    )
