"""Candidate serving configurations for a workload: generated, sized, rated and pruned.

For each model and each allowed GPU type: tensor-parallel degrees within one node, for MoE
models also data parallelism with expert parallelism, native or FP8 weights, bf16 or FP8
KV cache. Configurations vLLM could not start (memory) or that meet the latency targets for
no bucket are dropped, and so is any configuration that ``k`` copies of a smaller one on
the same GPU type match in every bucket (same GPUs and price, at least the capacity).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from switchyard.deploy.perf.capacity import OperatingPoint, max_rate
from switchyard.deploy.perf.memory import memory_plan
from switchyard.deploy.perf.specs import GpuSpec, ModelSpec, ServingConfig
from switchyard.deploy.workload import ModelDemand, SearchSpace, Workload


@dataclass(frozen=True, slots=True)
class Candidate:
    """A configuration and its operating point (max rate) for every bucket of its model."""

    cfg: ServingConfig
    points: tuple[OperatingPoint, ...]

    @property
    def capacity(self) -> tuple[float, ...]:
        return tuple(p.rate for p in self.points)


def priced_gpus(workload: Workload, gpus: dict[str, GpuSpec]) -> dict[str, GpuSpec]:
    """The GPU types the workload allows, with its price overrides; unpriced ones dropped."""
    allowed = workload.gpus or dict.fromkeys(gpus)
    unknown = sorted(set(allowed) - set(gpus))
    if unknown:
        raise ValueError(f"unknown GPU types in workload: {unknown}; known: {sorted(gpus)}")
    out = {}
    for name in allowed:
        spec = gpus[name]
        price = workload.prices.get(name, spec.price_per_hour)
        if price is not None:
            out[name] = replace(spec, price_per_hour=price)
    return out


def _parallelisms(
    model: ModelSpec, gpu: GpuSpec, space: SearchSpace
) -> Iterator[tuple[int, int, bool]]:
    for tp in space.tensor_parallel:
        if tp > gpu.max_per_node or model.attention_heads % tp:
            continue
        yield tp, 1, False
        if not model.is_moe:
            continue
        for dp in space.data_parallel:
            if dp > 1 and tp * dp <= gpu.max_per_node and model.experts % (tp * dp) == 0:
                yield tp, dp, True


def generate(
    demand: ModelDemand, model: ModelSpec, gpu: GpuSpec, space: SearchSpace
) -> Iterator[ServingConfig]:
    """Every configuration of the search space for one model on one GPU type."""
    max_len = demand.model_len(model.max_context)
    for tp, dp, ep in _parallelisms(model, gpu, space):
        for quant in space.quantizations:
            if quant is not None and model.native_dtype != "bf16":
                continue  # already 8-bit or narrower
            for kv in space.kv_dtypes:
                yield ServingConfig(
                    model, gpu, tp=tp, dp=dp, expert_parallel=ep, quantization=quant,
                    kv_dtype=kv, max_model_len=max_len, max_num_seqs=space.max_num_seqs,
                    gpu_memory_utilization=space.gpu_memory_utilization,
                )  # fmt: skip


def rate(cfg: ServingConfig, demand: ModelDemand) -> Candidate | None:
    """The candidate with its capacity per bucket, or None if it cannot serve any bucket."""
    mem = memory_plan(cfg)
    if not mem.feasible:
        return None
    points = tuple(
        max_rate(cfg, b.input_tokens, b.output_tokens, demand.targets, mem) for b in demand.buckets
    )
    return Candidate(cfg, points) if any(p.rate > 0 for p in points) else None


def _dominates(small: Candidate, big: Candidate) -> bool:
    if small.cfg.gpu.name != big.cfg.gpu.name or small.cfg.gpus > big.cfg.gpus:
        return False
    copies = big.cfg.gpus // small.cfg.gpus
    return all(copies * s >= b for s, b in zip(small.capacity, big.capacity, strict=True))


def prune(candidates: list[Candidate]) -> list[Candidate]:
    """Drop every candidate that copies of another one (same GPU type) match or beat."""
    kept: list[Candidate] = []
    # Fewest GPUs first, then most capacity, so that of two equal candidates the first stays.
    ordered = sorted(candidates, key=lambda c: (c.cfg.gpus, -sum(c.capacity)))
    for cand in ordered:
        if not any(_dominates(k, cand) for k in kept):
            kept.append(cand)
    return kept


def candidates_for(
    demand: ModelDemand, model: ModelSpec, gpus: dict[str, GpuSpec], space: SearchSpace
) -> tuple[list[Candidate], int]:
    """(pruned candidates, number generated) for one model over the allowed GPU types."""
    rated: list[Candidate] = []
    generated = 0
    for gpu in gpus.values():
        for cfg in generate(demand, model, gpu, space):
            generated += 1
            cand = rate(cfg, demand)
            if cand is not None:
                rated.append(cand)
    return prune(rated), generated
