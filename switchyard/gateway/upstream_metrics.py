"""The upstream client's connections in Prometheus, read at scrape time from ``Upstreams``
(``switchyard.backends.http1``): ``switchyard_upstream_connections{kind}`` (open, idle
among them, the limit ``upstream.pool_size``, and requests waiting because the limit is
reached) and ``switchyard_upstream_connection_waits_total`` (requests that had to wait).

    registry.register(UpstreamConnectionsCollector(upstreams))
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from switchyard.gateway.upstreams import Upstreams

__all__ = ["UpstreamConnectionsCollector"]


class UpstreamConnectionsCollector(Collector):
    def __init__(self, upstreams: Upstreams) -> None:
        self._upstreams = upstreams

    def collect(self) -> Iterable[Metric]:
        connections = GaugeMetricFamily(
            "switchyard_upstream_connections",
            "Connections of this process to the engines, by kind: open (idle ones included), "
            "idle, limit (upstream.pool_size), waiting (requests waiting for one: the limit "
            "is reached).",
            labels=["kind"],
        )
        waits = CounterMetricFamily(
            "switchyard_upstream_connection_waits",
            "Requests that waited for a connection to an engine because the process held "
            "upstream.pool_size of them.",
        )
        client = self._upstreams.http_client
        if client is not None:
            for kind, value in (("open", client.opened), ("idle", client.idle),
                                ("limit", client.limit), ("waiting", client.waiting)):  # fmt: skip
                connections.add_metric([kind], value)
            waits.add_metric([], client.waits)
        yield connections
        yield waits
