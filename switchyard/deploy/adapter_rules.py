"""The alert on LoRA adapters the gateway fails to load on demand (``adapters:
on_demand_loading``): each failure is a request answered 502 ``adapter_load_failed``, and
the adapter is unusable on that replica until its source is fixed."""

from __future__ import annotations

from typing import Any

__all__ = ["adapter_alerts"]


def adapter_alerts() -> dict[str, Any]:
    expr = (
        'sum by (job, instance, model) (rate(switchyard_adapter_loads_total{outcome="failed"}'
        "[5m])) > 0"
    )
    rule = {
        "alert": "SwitchyardAdapterLoadFailing",
        "expr": expr,
        "for": "5m",
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "Gateway {{ $labels.instance }} cannot load LoRA adapter model "
            "{{ $labels.model }}",
            "description": "Loading the adapter on a replica (POST /v1/load_lora_adapter) "
            "keeps failing, and its requests are answered 502 adapter_load_failed. Check the "
            "adapter's source (lora_path) and that the replicas run with "
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True.",
        },
    }
    return {"name": "switchyard.alerts.adapters", "rules": [rule]}
