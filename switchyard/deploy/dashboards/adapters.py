"""The LoRA adapter panel of the Backends board: what the gateway loads on demand
(``adapters.on_demand_loading``), with the failures alert ``SwitchyardAdapterLoadFailing``
pages on. (vLLM's ``vllm:lora_requests_info`` carries adapter names in labels and a
timestamp as its value: nothing PromQL can plot.)"""

from __future__ import annotations

from switchyard.deploy.dashboards.style import Panel, target, timeseries

__all__ = ["adapter_loads"]


def adapter_loads() -> Panel:
    return timeseries(
        "Adapter loads on demand",
        "LoRA adapters the gateway loaded, unloaded to make room, and failed to load on a "
        "replica, per second (5m). Failures are requests answered 502 adapter_load_failed; "
        "steady loads and unloads mean more adapters are in use than the replicas keep.",
        [
            target(
                "sum by (model, outcome) (rate(switchyard_adapter_loads_total[5m]))",
                "{{model}} {{outcome}}",
            )
        ],
        "ops",
        w=12,
    )
