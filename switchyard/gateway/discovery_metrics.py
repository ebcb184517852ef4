"""Endpoint discovery in Prometheus, read at scrape time from ``Upstreams``:
``switchyard_discovered_endpoints{model}`` (pods found now, kept through failed lookups) and
``switchyard_discovery_errors_total{model}`` (failed lookups since start). Only models with a
``discover:`` endpoint appear.

    registry.register(DiscoveryCollector(upstreams))
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from switchyard.gateway.upstreams import Upstreams

__all__ = ["DiscoveryCollector"]


class DiscoveryCollector(Collector):
    def __init__(self, upstreams: Upstreams) -> None:
        self._upstreams = upstreams

    def collect(self) -> Iterable[Metric]:
        found = GaugeMetricFamily(
            "switchyard_discovered_endpoints",
            "Endpoints (pods) discovery knows for a model now; the last known set is kept "
            "while lookups fail.",
            labels=["model"],
        )
        errors = CounterMetricFamily(
            "switchyard_discovery_errors",
            "Failed discovery lookups of a model's pods (each keeps the last known set).",
            labels=["model"],
        )
        upstreams = self._upstreams
        for model, count in upstreams.discovered().items():
            found.add_metric([model], count)
            errors.add_metric([model], upstreams.discovery_errors.get(model, 0))
        yield found
        yield errors
