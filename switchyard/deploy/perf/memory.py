"""Memory feasibility of a serving configuration, sized the way vLLM sizes it at start-up.

vLLM loads the weights, runs one profiling forward pass of ``max_num_batched_tokens`` to
measure peak activation memory, subtracts both (and non-torch memory: CUDA context, CUDA
graphs, NCCL buffers) from ``gpu_memory_utilization * total``, and gives the rest to KV
blocks. It refuses to start when the KV cache cannot hold one ``max_model_len`` sequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from switchyard.deploy.perf.specs import DTYPE_BYTES, GIB, ServingConfig

# Peak activation of the profiling pass, in hidden-sized bf16 vectors per batched token: the
# residual stream, QKV, attention output and the gated MLP's two intermediate tensors
# (about 3.5x hidden each) live at once. A deliberately generous round figure.
_ACTIVATION_VECTORS_PER_TOKEN = 20
_RUNTIME_OVERHEAD_BYTES = 1.5 * GIB  # CUDA context + CUDA graphs, measured ~1-2 GiB
_NCCL_OVERHEAD_BYTES = 0.5 * GIB  # per GPU once there is a collective group


def weight_bytes(cfg: ServingConfig) -> tuple[float, float]:
    """(dense, expert) weight bytes of the whole model under the configuration's precision."""
    model = cfg.model
    if cfg.quantization == "fp8":
        return model.dense_params * 1.0, model.expert_params * 1.0
    if model.native_dtype == "mxfp4":
        # gpt-oss ships only its expert weights in MXFP4; attention and embeddings stay bf16.
        return model.dense_params * 2.0, model.expert_params * DTYPE_BYTES["mxfp4"]
    per_param = DTYPE_BYTES[model.native_dtype]
    return model.dense_params * per_param, model.expert_params * per_param


def weight_bytes_per_gpu(cfg: ServingConfig) -> float:
    """Weights one GPU holds: dense layers split by TP; experts by TP, or TP*DP under EP."""
    dense, expert = weight_bytes(cfg)
    expert_shards = cfg.tp * cfg.dp if cfg.expert_parallel else cfg.tp
    return dense / cfg.tp + expert / expert_shards


def kv_element_bytes(cfg: ServingConfig) -> float:
    # "auto" stores KV in the activation dtype, bf16 for every catalogued model.
    return 1.0 if cfg.kv_dtype.startswith("fp8") else 2.0


def kv_bytes_per_layer_token(cfg: ServingConfig) -> float:
    """KV bytes one layer stores per token on one GPU."""
    model = cfg.model
    elem = kv_element_bytes(cfg)
    if model.attention == "mla":
        # The latent vector is not split by TP: every rank keeps the whole of it.
        return (model.kv_lora_rank + model.rope_head_dim) * elem
    # With fewer KV heads than TP ranks vLLM replicates heads, so a rank holds at least one.
    heads = max(1.0, model.kv_heads / cfg.tp)
    return 2 * heads * model.head_dim * elem


def kv_bytes_per_token(cfg: ServingConfig, context: int) -> float:
    """Average KV bytes per token on one GPU for sequences of ``context`` tokens.

    Sliding-window layers keep at most ``sliding_window`` tokens, so their share per token
    falls as sequences grow longer than the window.
    """
    model = cfg.model
    per_layer = kv_bytes_per_layer_token(cfg)
    sliding = model.sliding_layers if model.sliding_window else 0
    full = model.layers - sliding
    kept = min(1.0, model.sliding_window / max(context, 1)) if sliding else 0.0
    return per_layer * (full + sliding * kept)


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    """Bytes per GPU, and the KV capacity in tokens of one data-parallel rank."""

    total_bytes: float
    weights_bytes: float
    activation_bytes: float
    overhead_bytes: float
    kv_budget_bytes: float
    kv_tokens: int
    max_model_len: int

    @property
    def feasible(self) -> bool:
        return self.kv_budget_bytes > 0 and self.kv_tokens >= self.max_model_len


def activation_bytes(cfg: ServingConfig) -> float:
    model = cfg.model
    hidden_states = cfg.max_num_batched_tokens * model.hidden * 2.0
    # Sampling keeps fp32 logits for every running sequence.
    logits = min(cfg.max_num_seqs, cfg.max_num_batched_tokens) * model.vocab * 4.0
    return hidden_states * _ACTIVATION_VECTORS_PER_TOKEN / cfg.tp + logits


def memory_plan(cfg: ServingConfig) -> MemoryPlan:
    """Size weights, activations, runtime overhead and KV blocks on one GPU."""
    total = cfg.gpu.memory_bytes
    weights = weight_bytes_per_gpu(cfg)
    act = activation_bytes(cfg)
    overhead = _RUNTIME_OVERHEAD_BYTES + (_NCCL_OVERHEAD_BYTES if cfg.gpus > 1 else 0.0)
    budget = total * cfg.gpu_memory_utilization - weights - act - overhead
    per_token = kv_bytes_per_token(cfg, cfg.max_model_len)
    tokens = math.floor(budget / per_token) if budget > 0 else 0
    return MemoryPlan(total, weights, act, overhead, budget, tokens, cfg.max_model_len)
