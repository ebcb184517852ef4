"""Step times of a vLLM engine from a roofline: FLOPs over compute, bytes over bandwidth.

Each kernel class (weight GEMMs, attention over the KV cache) costs the (smooth) maximum
of its compute time and its memory time at the GPU's fitted efficiency, plus a fixed
per-kernel overhead; tensor-parallel all-reduces and expert-parallel all-to-alls add communication.
A MoE step reads only the experts its tokens touch: under uniform routing a batch of ``B``
tokens touches ``E * (1 - (1 - k/E) ** B)`` of a layer's ``E`` experts.
"""

from __future__ import annotations

from switchyard.deploy.perf.memory import kv_bytes_per_token, weight_bytes
from switchyard.deploy.perf.specs import GpuSpec, ServingConfig

# Kernels per transformer layer whose launch and tail cost does not shrink with size: QKV,
# attention, output projection, gate/up, down, two norms, the residual adds.
KERNELS_PER_LAYER = 8
# Achieved share of the link bandwidth by NCCL collectives, and their fixed latency.
_LINK_EFFICIENCY = 0.7
_NVLINK_LATENCY_S = 8e-6
_PCIE_LATENCY_S = 25e-6


def gemm_time(flops: float, nbytes: float, gpu: GpuSpec, fp8: bool = False) -> float:
    """One kernel's time on the roofline at the GPU's efficiency, with its fixed overhead."""
    eff = gpu.efficiency
    compute = flops / (eff.compute * gpu.peak_flops(fp8))
    memory = nbytes / (eff.memory * gpu.hbm_gbs * 1e9)
    return eff.roof(compute, memory) + eff.kernel_overhead_s


def touched_experts(experts: int, top_k: int, tokens: float) -> float:
    """Expected experts of one layer hit by ``tokens`` tokens routed uniformly, top-k each."""
    if experts <= 0 or tokens <= 0:
        return 0.0
    return float(experts * (1.0 - (1.0 - top_k / experts) ** tokens))


def _link(gpu: GpuSpec) -> tuple[float, float]:
    latency = _NVLINK_LATENCY_S if gpu.nvlink else _PCIE_LATENCY_S
    return gpu.interconnect_gbs * 1e9 * _LINK_EFFICIENCY, latency


def comm_time(cfg: ServingConfig, tokens: float) -> float:
    """Per-step collectives: two TP all-reduces per layer, two EP all-to-alls per MoE layer."""
    model = cfg.model
    bandwidth, latency = _link(cfg.gpu)
    total = 0.0
    if cfg.tp > 1:
        size = tokens * model.hidden * 2.0
        ring = 2.0 * (cfg.tp - 1) / cfg.tp * size / bandwidth
        total += 2 * model.layers * (ring + latency)
    if cfg.expert_parallel and cfg.gpus > 1 and model.is_moe:
        ranks = cfg.gpus
        size = tokens * model.hidden * 2.0 * model.top_k * (ranks - 1) / ranks
        total += 2 * model.moe_layers * (size / bandwidth + latency)
    return total


def _weight_kernels(cfg: ServingConfig, tokens_rank: float, tokens_all: float) -> float:
    """Weight GEMMs of one step on one GPU: read the (touched) weights, do 2 FLOPs a weight."""
    model = cfg.model
    dense_bytes, expert_bytes = weight_bytes(cfg)
    expert_shards = cfg.gpus if cfg.expert_parallel else cfg.tp
    touched_share = 0.0
    if model.is_moe:
        touched_share = touched_experts(model.experts, model.top_k, tokens_all) / model.experts
    nbytes = dense_bytes / cfg.tp + expert_bytes * touched_share / expert_shards
    flops = 2.0 * model.active_params_b * 1e9 * tokens_rank / cfg.tp
    fp8 = cfg.computes_in_fp8
    eff = cfg.gpu.efficiency
    roof = eff.roof(
        flops / (eff.compute * cfg.gpu.peak_flops(fp8)),
        nbytes / (eff.memory * cfg.gpu.hbm_gbs * 1e9),
    )
    return roof + model.layers * KERNELS_PER_LAYER * eff.kernel_overhead_s


def _attention_dim(cfg: ServingConfig) -> float:
    model = cfg.model
    if model.attention == "mla":
        # Absorbed MLA attends over the latent vector, per query head.
        return float(model.kv_lora_rank + model.rope_head_dim)
    return float(model.head_dim)


def decode_step_time(cfg: ServingConfig, batch: float, context: float) -> float:
    """One decode step of one data-parallel rank: ``batch`` sequences of ``context`` tokens."""
    if batch <= 0:
        return 0.0
    model = cfg.model
    tokens_all = batch * cfg.dp if cfg.expert_parallel else batch
    weights = _weight_kernels(cfg, batch, tokens_all)
    kv_read = batch * context * kv_bytes_per_token(cfg, int(context))
    heads = model.attention_heads / cfg.tp
    attn_flops = 4.0 * batch * context * heads * _attention_dim(cfg) * model.layers
    eff = cfg.gpu.efficiency
    attention = eff.roof(
        attn_flops / (eff.compute * cfg.gpu.peak_flops(False)),
        kv_read / (eff.memory * cfg.gpu.hbm_gbs * 1e9),
    )
    return weights + attention + comm_time(cfg, batch)


def prefill_time(cfg: ServingConfig, prompt_tokens: float) -> float:
    """Prefill of one prompt of ``prompt_tokens`` tokens on one data-parallel rank."""
    if prompt_tokens <= 0:
        return 0.0
    model = cfg.model
    tokens_all = prompt_tokens * cfg.dp if cfg.expert_parallel else prompt_tokens
    weights = _weight_kernels(cfg, prompt_tokens, tokens_all)
    heads = model.attention_heads / cfg.tp
    # Causal attention: half of the QK^T and AV products of a full square.
    attn_flops = 2.0 * prompt_tokens**2 * heads * _attention_dim(cfg) * model.layers
    eff = cfg.gpu.efficiency
    attention = attn_flops / (eff.compute * cfg.gpu.peak_flops(False))
    return weights + attention + comm_time(cfg, prompt_tokens)
