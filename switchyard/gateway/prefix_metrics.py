"""Metrics of the prefix index (``upstream.prefix_scoring``), read at scrape time.

``switchyard_prefix_index_blocks`` / ``_capacity_blocks`` / ``_bytes``: what the index holds,
its bound and an estimate of its memory (per gateway process, all models together);
``switchyard_prefix_index_evictions_total``: blocks forgotten to stay within the bound. An
index evicting at its bound forgets prefixes the replicas may still hold, so prefix scoring
misses hits it could have had (alert ``SwitchyardPrefixIndexThrashing``). All 0 when prefix
scoring is off.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from switchyard.gateway.upstreams import Upstreams

__all__ = ["PrefixIndexCollector"]


class PrefixIndexCollector(Collector):
    def __init__(self, upstreams: Upstreams) -> None:
        self._upstreams = upstreams

    def collect(self) -> Iterable[Metric]:
        index = self._upstreams.prefix_index
        held, bound, size, evicted = (
            (len(index), index.max_blocks, index.approx_bytes, index.evictions)
            if index is not None
            else (0, 0, 0, 0)
        )
        yield GaugeMetricFamily(
            "switchyard_prefix_index_blocks",
            "Prompt blocks the prefix index remembers (what this gateway sent where).",
            value=held,
        )
        yield GaugeMetricFamily(
            "switchyard_prefix_index_capacity_blocks",
            "Bound of the prefix index (upstream.prefix_index_blocks; 0: prefix scoring off).",
            value=bound,
        )
        yield GaugeMetricFamily(
            "switchyard_prefix_index_bytes",
            "Estimated memory of the prefix index, in bytes.",
            value=size,
        )
        yield CounterMetricFamily(
            "switchyard_prefix_index_evictions",
            "Blocks the prefix index forgot to stay within its bound.",
            value=evicted,
        )
