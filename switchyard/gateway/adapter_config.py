"""LoRA adapters in the settings: a model's ``adapter:`` entry and the ``adapters:`` section.

A model with ``adapter: {base, name, source}`` is a LoRA adapter of the model ``base``: it
has no endpoints of its own, its requests go to the base model's replicas naming ``name``
(vLLM's ``lora_name``) as the model, and it is otherwise a model like any other (its own
prices, its place among a router's candidates). ``source`` is where vLLM loads it from
(``lora_path``: a path on the replicas or a URI a resolver understands); it is needed only
when the gateway loads adapters on demand (``adapters.on_demand_loading``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from switchyard.gateway.settings import ModelConfig

__all__ = ["AdapterConfig", "AdaptersConfig", "check_adapters", "fill_adapter_defaults"]


class AdapterConfig(BaseModel):
    """This model is a LoRA adapter of ``base``, named ``name`` on its replicas."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base: str = Field(min_length=1, description="The base model (a model of this config).")
    name: str = Field(
        min_length=1, description="The adapter's name on the replicas (vLLM's lora_name)."
    )
    source: str | None = Field(
        default=None,
        min_length=1,
        description="Where the replicas load it from (vLLM's lora_path); needed for "
        "on-demand loading.",
    )


class AdaptersConfig(BaseModel):
    """How adapters are placed on the base model's replicas (balancer switchyard)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    on_demand_loading: bool = Field(
        default=False,
        description="Load an adapter (POST /v1/load_lora_adapter) on the chosen replica when "
        "this gateway does not know it to be there; the replicas need "
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True.",
    )
    max_loaded_per_replica: int = Field(
        default=0,
        ge=0,
        description="Adapters this gateway keeps loaded per replica before it unloads its "
        "least recently used one (0: the replica's max_lora from its metrics, else 8).",
    )
    swap_s: float = Field(
        default=0.1, ge=0, description="Cost charged for swapping an inactive adapter in."
    )
    evict_s: float = Field(
        default=1.0,
        ge=0,
        description="Extra cost on a replica whose adapter slots are all active (one must go).",
    )
    load_s: float = Field(
        default=1.0,
        ge=0,
        description="Extra cost on a replica that must load the adapter first (on demand).",
    )
    load_timeout_s: float = Field(default=60.0, gt=0, description="One load call's limit.")


def fill_adapter_defaults(data: Any) -> Any:
    """An adapter model's upstream name defaults to its adapter name (before validation)."""
    if isinstance(data, dict) and data.get("adapter") and not data.get("upstream_model"):
        adapter = data["adapter"]
        name = adapter.get("name") if isinstance(adapter, dict) else adapter.name
        return {**data, "upstream_model": name}
    return data


def check_adapters(models: Sequence[ModelConfig], on_demand: bool) -> None:
    """Each model has endpoints or an adapter (not both); an adapter's base is a model with
    endpoints; on-demand loading needs every adapter's source. ``ValueError`` otherwise."""
    by_name = {m.name: m for m in models}
    for i, model in enumerate(models):
        adapter = model.adapter
        if adapter is None:
            if not model.endpoints:
                raise ValueError(f"models.{i}.endpoints: give endpoints, or an adapter entry")
            continue
        if model.endpoints:
            raise ValueError(f"models.{i}: an adapter uses its base model's endpoints; "
                             "give no endpoints")  # fmt: skip
        base = by_name.get(adapter.base)
        if base is None or base.adapter is not None:
            raise ValueError(f"models.{i}.adapter.base: {adapter.base!r} is not a model with "
                             "endpoints")  # fmt: skip
        if on_demand and adapter.source is None:
            raise ValueError(f"models.{i}.adapter.source: needed for on-demand loading")
