"""LoRA adapters in a workload and in its plan: parsing, vLLM's adapter slots and arguments.

An adapter has no pools of its own: its requests are part of its base model's ``rate`` (and
buckets), so the planner places the base model for the whole traffic and every pool of the
base model serves its adapters. The performance model charges LoRA nothing, an assumption
and not a measurement: a rank-16 adapter on all projections of Llama-3.1-8B has
r·(d_in + d_out) parameters per A/B pair, 42 M in all (0.5 % of the parameters, ~1 % of
the bytes of FP8 weights) read per active adapter per decode step; the GPU memory vLLM
reserves for ``--max-loras`` slots at ``--max-lora-rank`` (~170 MB per slot at rank 32
on that model) comes out of the KV cache; and vLLM's batched LoRA kernels (Punica's
SGMV/BGMV) add a kernel-dependent cost the catalogue has no measurement of. The plan's
headroom has to absorb all three. In YAML, under a model of the workload::

    models:
      - name: Llama-3.1-8B
        rate: 20                        # base model and adapters together
        buckets: [...]
        adapters:                       # share: of this model's requests
          - {name: sql-expert, share: 0.3, rank: 16, lora_name: sql-lora,
             source: /adapters/sql-lora}  # lora_name: vLLM's name (default: name)
          - {name: support-bot, share: 0.1}  # source default: /adapters/<lora_name>
    lora: {on_demand_loading: false, slot_coverage: 0.9, max_slots: 16}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ADAPTER_MOUNT",
    "RUNTIME_UPDATING_ENV",
    "Adapter",
    "LoraSettings",
    "lora_args",
    "lora_slots",
    "max_lora_rank",
    "parse_adapters",
    "parse_lora",
]

ADAPTER_MOUNT = "/adapters"  # where the chart mounts a pool's adapter sources
RUNTIME_UPDATING_ENV = "VLLM_ALLOW_RUNTIME_LORA_UPDATING"
# vLLM's accepted --max-lora-rank values (vllm/config/lora.py, MaxLoRARanks).
VLLM_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


@dataclass(frozen=True, slots=True)
class Adapter:
    """A LoRA adapter of a workload model: ``name`` is the gateway's model, ``lora_name``
    vLLM's, ``share`` its fraction of the base model's requests."""

    name: str
    share: float
    lora_name: str
    source: str
    rank: int = 16


@dataclass(frozen=True, slots=True)
class LoraSettings:
    """How pools serving adapters are sized and loaded: vLLM's ``--max-loras`` covers the
    most popular adapters up to ``slot_coverage`` of the adapter traffic, at most
    ``max_slots``; ``on_demand_loading``: the gateway loads adapters at run time instead of
    ``--lora-modules`` registering them at start."""

    on_demand_loading: bool = False
    slot_coverage: float = 0.9
    max_slots: int = 16


def _error(message: str) -> ValueError:
    # The workload's own error type (a ValueError) without importing workload.py here.
    from switchyard.deploy.workload import WorkloadError

    return WorkloadError(message)


def _adapter(raw: Any, where: str) -> Adapter:
    if not isinstance(raw, dict) or not raw.get("name"):
        raise _error(f"{where}: an adapter needs a name")
    unknown = sorted(set(raw) - {"name", "share", "rank", "lora_name", "source"})
    if unknown:
        raise _error(f"{where}: unknown fields {unknown}")
    try:
        share, rank = float(raw.get("share", -1)), int(raw.get("rank", 16))
    except (TypeError, ValueError) as err:
        raise _error(f"{where}: share and rank must be numbers ({err})") from None
    if not 0 <= share <= 1:
        raise _error(f"{where}.share: a fraction of the base model's requests in [0, 1]")
    if not 1 <= rank <= VLLM_RANKS[-1]:
        raise _error(f"{where}.rank: 1 to {VLLM_RANKS[-1]} (vLLM's largest LoRA rank)")
    lora_name = str(raw.get("lora_name") or raw["name"])
    source = str(raw.get("source") or f"{ADAPTER_MOUNT}/{lora_name}")
    return Adapter(str(raw["name"]), share, lora_name, source, rank)


def parse_adapters(raw: Any, where: str) -> tuple[Adapter, ...]:
    """A model's ``adapters`` list; names unique, shares summing to at most 1."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _error(f"{where}: a list of {{name, share, rank, lora_name, source}}")
    adapters = tuple(_adapter(a, f"{where}[{i}]") for i, a in enumerate(raw))
    for field in ("name", "lora_name"):
        names = [getattr(a, field) for a in adapters]
        if len(set(names)) != len(names):
            raise _error(f"{where}: each adapter {field} may appear once, got {names}")
    total = sum(a.share for a in adapters)
    if total > 1 + 1e-9:
        raise _error(f"{where}: shares sum to {total:g}, more than the model's requests")
    return adapters


def parse_lora(raw: Any) -> LoraSettings:
    if raw is None:
        return LoraSettings()
    if not isinstance(raw, dict):
        raise _error("lora: a mapping {on_demand_loading, slot_coverage, max_slots}")
    unknown = sorted(set(raw) - {"on_demand_loading", "slot_coverage", "max_slots"})
    if unknown:
        raise _error(f"lora: unknown fields {unknown}")
    settings = LoraSettings(
        on_demand_loading=bool(raw.get("on_demand_loading", False)),
        slot_coverage=float(raw.get("slot_coverage", 0.9)),
        max_slots=int(raw.get("max_slots", 16)),
    )
    if not 0 < settings.slot_coverage <= 1:
        raise _error("lora.slot_coverage: a fraction of the adapter traffic in (0, 1]")
    if settings.max_slots < 1:
        raise _error("lora.max_slots: at least 1")
    return settings


def lora_slots(adapters: Sequence[Adapter], settings: LoraSettings) -> int:
    """vLLM's ``--max-loras`` (adapters in one batch): the fewest of the most popular
    adapters that carry ``slot_coverage`` of the adapter traffic, within [1, max_slots]."""
    shares = sorted((a.share for a in adapters), reverse=True)
    target = settings.slot_coverage * sum(shares)
    covered, slots = 0.0, 0
    for share in shares:
        if covered >= target - 1e-12 and slots:
            break
        covered += share
        slots += 1
    return max(1, min(slots, settings.max_slots))


def max_lora_rank(adapters: Sequence[Adapter]) -> int:
    """The smallest rank vLLM accepts that holds every adapter's."""
    largest = max(a.rank for a in adapters)
    return next(r for r in VLLM_RANKS if r >= largest)


def lora_args(adapters: Sequence[Adapter], settings: LoraSettings) -> list[str]:
    """``vllm serve`` flags for a pool serving ``adapters`` (none without adapters): slots
    for the popular ones on the GPU, every adapter in the CPU cache, and ``--lora-modules``
    unless the gateway loads them on demand."""
    if not adapters:
        return []
    slots = lora_slots(adapters, settings)
    args = [
        "--enable-lora",
        "--max-loras", str(slots),
        "--max-lora-rank", str(max_lora_rank(adapters)),
        "--max-cpu-loras", str(max(slots, len(adapters))),
    ]  # fmt: skip
    if not settings.on_demand_loading:
        args += ["--lora-modules", *(f"{a.lora_name}={a.source}" for a in adapters)]
    return args
