"""On-demand LoRA loading in Prometheus, read at scrape time from ``Upstreams``:
``switchyard_adapter_loads_total{model, outcome}`` — adapters this gateway loaded
(``loaded``), failed to load (``failed``: the request got a 502 ``adapter_load_failed``) and
unloaded to make room (``unloaded``). Empty while on-demand loading is off.

    registry.register(AdapterCollector(upstreams))
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from switchyard.gateway.upstreams import Upstreams

__all__ = ["AdapterCollector"]


class AdapterCollector(Collector):
    def __init__(self, upstreams: Upstreams) -> None:
        self._upstreams = upstreams

    def collect(self) -> Iterable[Metric]:
        loads = CounterMetricFamily(
            "switchyard_adapter_loads",
            "LoRA adapter loads and unloads this gateway asked replicas for, by outcome "
            "(loaded, failed, unloaded).",
            labels=["model", "outcome"],
        )
        loader = self._upstreams.adapter_loader
        if loader is not None:
            for (model, outcome), count in sorted(loader.outcomes.items()):
                loads.add_metric([model, outcome], count)
        yield loads
