"""A placement workload: per model, its request rate and request-size buckets; latency
targets; which GPUs may be used and how many; prices; an optional budget; solver limits.

Read from YAML (``switchyard/data/workloads/chat.yaml`` is an example)::

    targets: {ttft_s: 2.0, tpot_s: 0.06}     # default for every model
    headroom: 0.2                             # plan each server for <= 80 % of its capacity
    gpus: {L4: 32, H100-80GB: 16, A100-80GB}  # allowed types, with a count or unlimited
    prices: {H100-80GB: 5.5}                  # override catalogue prices (USD per GPU-hour)
    budget_per_hour: 200
    models:
      - name: Llama-3.1-8B
        rate: 20                              # requests per second
        min_replicas: 2
        buckets: [{input: 512, output: 256, weight: 0.7}, {input: 4096, output: 512, weight: 0.3}]
        adapters: [{name: sql-expert, share: 0.3}]  # LoRA adapters: see deploy/lora.py
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from switchyard.deploy.lora import Adapter, LoraSettings, parse_adapters, parse_lora
from switchyard.deploy.perf.capacity import LatencyTargets


class WorkloadError(ValueError):
    """The workload file cannot be planned; the message names the bad field."""


@dataclass(frozen=True, slots=True)
class Bucket:
    """Requests of about ``input_tokens`` prompt and ``output_tokens`` output tokens."""

    input_tokens: int
    output_tokens: int
    weight: float

    @property
    def label(self) -> str:
        return f"{self.input_tokens}in/{self.output_tokens}out"


@dataclass(frozen=True, slots=True)
class ModelDemand:
    """Traffic for one model: total rate (req/s) split over buckets by weight."""

    model: str
    rate: float
    buckets: tuple[Bucket, ...]
    targets: LatencyTargets
    min_replicas: int = 1
    max_model_len: int | None = None
    adapters: tuple[Adapter, ...] = ()  # share the model's pools; their requests are in rate

    def bucket_rates(self) -> tuple[float, ...]:
        total = sum(b.weight for b in self.buckets)
        return tuple(self.rate * b.weight / total for b in self.buckets)

    def model_len(self, model_max: int) -> int:
        """``max_model_len`` for vLLM: as given, else the longest bucket rounded up to a
        power of two (at least 4096), never beyond what the model supports."""
        if self.max_model_len is not None:
            return min(self.max_model_len, model_max)
        longest = max(b.input_tokens + b.output_tokens for b in self.buckets)
        size = 4096
        while size < longest:
            size *= 2
        return min(size, model_max)


@dataclass(frozen=True, slots=True)
class SearchSpace:
    """Which configurations to generate for each model and GPU type."""

    tensor_parallel: tuple[int, ...] = (1, 2, 4, 8)
    data_parallel: tuple[int, ...] = (1, 2, 4, 8)  # with expert parallelism, MoE only
    quantizations: tuple[str | None, ...] = (None, "fp8")
    kv_dtypes: tuple[str, ...] = ("auto", "fp8")
    max_num_seqs: int = 256
    gpu_memory_utilization: float = 0.9


@dataclass(frozen=True, slots=True)
class Workload:
    models: tuple[ModelDemand, ...]
    gpus: dict[str, int | None] = field(default_factory=dict)  # empty: every priced GPU
    prices: dict[str, float] = field(default_factory=dict)
    budget_per_hour: float | None = None
    headroom: float = 0.2
    search: SearchSpace = field(default_factory=SearchSpace)
    time_limit_s: float = 30.0
    mip_rel_gap: float = 1e-4
    lora: LoraSettings = field(default_factory=LoraSettings)


def _targets(raw: Any, default: LatencyTargets | None, where: str) -> LatencyTargets:
    if raw is None:
        if default is None:
            raise WorkloadError(f"{where}: latency targets (ttft_s, tpot_s) are required")
        return default
    try:
        return LatencyTargets(float(raw["ttft_s"]), float(raw["tpot_s"]))
    except (KeyError, TypeError, ValueError) as err:
        raise WorkloadError(f"{where}.targets: {err}") from None


def _bucket(raw: Any, where: str) -> Bucket:
    try:
        bucket = Bucket(int(raw["input"]), int(raw["output"]), float(raw.get("weight", 1.0)))
    except (KeyError, TypeError, ValueError) as err:
        raise WorkloadError(f"{where}: expected {{input, output, weight}} ({err})") from None
    if bucket.input_tokens < 1 or bucket.output_tokens < 1 or bucket.weight < 0:
        raise WorkloadError(f"{where}: token counts must be >= 1 and weight >= 0")
    return bucket


def _demand(raw: dict[str, Any], default: LatencyTargets | None, i: int) -> ModelDemand:
    where = f"models[{i}]"
    if not isinstance(raw, dict) or "name" not in raw:
        raise WorkloadError(f"{where}: needs a name")
    buckets = tuple(
        _bucket(b, f"{where}.buckets[{j}]") for j, b in enumerate(raw.get("buckets") or [])
    )
    if not buckets or sum(b.weight for b in buckets) <= 0:
        raise WorkloadError(f"{where}.buckets: at least one bucket with weight > 0")
    rate = float(raw.get("rate", -1))
    if rate < 0:
        raise WorkloadError(f"{where}.rate: requests per second >= 0 required")
    max_len = raw.get("max_model_len")
    return ModelDemand(
        model=str(raw["name"]),
        rate=rate,
        buckets=buckets,
        targets=_targets(raw.get("targets"), default, where),
        min_replicas=int(raw.get("min_replicas", 1)),
        max_model_len=None if max_len is None else int(max_len),
        adapters=parse_adapters(raw.get("adapters"), f"{where}.adapters"),
    )


def _search(raw: dict[str, Any]) -> SearchSpace:
    base = SearchSpace()
    quant = raw.get("quantizations", base.quantizations)
    return SearchSpace(
        tensor_parallel=tuple(int(t) for t in raw.get("tensor_parallel", base.tensor_parallel)),
        data_parallel=tuple(int(d) for d in raw.get("data_parallel", base.data_parallel)),
        quantizations=tuple(None if q in (None, "none") else str(q) for q in quant),
        kv_dtypes=tuple(str(k) for k in raw.get("kv_dtypes", base.kv_dtypes)),
        max_num_seqs=int(raw.get("max_num_seqs", base.max_num_seqs)),
        gpu_memory_utilization=float(raw.get("gpu_memory_utilization", 0.9)),
    )


def parse_workload(doc: dict[str, Any]) -> Workload:
    """A ``Workload`` from its YAML document; ``WorkloadError`` names what is wrong."""
    if not isinstance(doc, dict) or not doc.get("models"):
        raise WorkloadError("a workload needs a non-empty 'models' list")
    default = _targets(doc["targets"], None, "targets") if "targets" in doc else None
    headroom = float(doc.get("headroom", 0.2))
    if not 0 <= headroom < 1:
        raise WorkloadError(f"headroom must be in [0, 1), got {headroom}")
    gpus = {str(k): None if v is None else int(v) for k, v in (doc.get("gpus") or {}).items()}
    budget = doc.get("budget_per_hour")
    models = tuple(_demand(m, default, i) for i, m in enumerate(doc["models"]))
    names = [d.model for d in models]
    if len(set(names)) != len(names):
        raise WorkloadError(f"models: each model may appear once, got {names}")
    adapters = [a.name for d in models for a in d.adapters]
    clash = sorted({n for n in adapters if n in names or adapters.count(n) > 1})
    if clash:
        raise WorkloadError(f"adapters: names must differ from models and each other: {clash}")
    return Workload(
        models=models,
        gpus=gpus,
        prices={str(k): float(v) for k, v in (doc.get("prices") or {}).items()},
        budget_per_hour=None if budget is None else float(budget),
        headroom=headroom,
        search=_search(doc.get("search") or {}),
        time_limit_s=float(doc.get("time_limit_s", 30.0)),
        mip_rel_gap=float(doc.get("mip_rel_gap", 1e-4)),
        lora=parse_lora(doc.get("lora")),
    )


def load_workload(path: Path) -> Workload:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise WorkloadError(f"cannot read workload {path}: {err}") from None
    return parse_workload(doc)
