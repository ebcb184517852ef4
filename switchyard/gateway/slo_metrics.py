"""Scrape-time metrics of the ``slo`` balancer: requests it shed, per model.

The counts live on the endpoint pools (``EndpointPool.slo_shed``); a config reload builds new
pools, so a count restarts from 0 there, which Prometheus' ``rate()`` reads as a reset."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from switchyard.backends.pool import EndpointPool

__all__ = ["SloCollector"]


class SloCollector(Collector):
    """``switchyard_slo_shed_total{model}`` for every pool: 0 where the balancer is not
    ``slo`` (the series exist from the start, so rates and alerts read zero, not nothing)."""

    def __init__(self, pools: Callable[[], Mapping[str, EndpointPool]]) -> None:
        self._pools = pools

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(
            "switchyard_slo_shed",
            "Requests the slo balancer refused with 429 because no replica was likely to "
            "start them within upstream.slo.ttft_s.",
            labels=["model"],
        )
        for model, pool in self._pools().items():
            family.add_metric([model], pool.slo_shed)
        yield family
