"""Panel of the gateway's response cache (``cache.enabled``), on the Overview board: hits,
misses, stores and store failures. A failing store costs hits, never requests (alert
``SwitchyardCacheStoreFailing``)."""

from __future__ import annotations

from switchyard.deploy.dashboards.style import Panel, target, timeseries

__all__ = ["response_cache"]


def response_cache() -> Panel:
    return timeseries(
        "Response cache",
        "Opted-in requests per second (5m): answered from the cache (hits, no upstream call), "
        "not found (misses), answers stored, and store failures by operation (Redis down or "
        "too slow: those requests are answered uncached), and opted-in requests skipped because "
        "they sample (temperature > 0 or absent, n > 1, logprobs). Empty when the cache is off.",
        [
            target("sum(rate(switchyard_cache_hits_total[5m]))", "hits"),
            target("sum(rate(switchyard_cache_misses_total[5m]))", "misses"),
            target("sum(rate(switchyard_cache_stores_total[5m]))", "stores"),
            target("sum by (op) (rate(switchyard_cache_errors_total[5m]))", "errors {{op}}"),
            target(
                "sum by (reason) (rate(switchyard_cache_skipped_total[5m]))", "skipped {{reason}}"
            ),
        ],
        "reqps",
        w=24,
    )
