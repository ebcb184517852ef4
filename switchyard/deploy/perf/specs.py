"""The hardware and model facts the performance model reads, and one serving configuration.

These are plain frozen values; ``switchyard.deploy.catalog`` fills them from
``switchyard/data/gpus.yaml`` and ``switchyard/data/models.yaml`` (this package reads no files
itself, so that the performance model stays a set of pure functions).
"""

from __future__ import annotations

from dataclasses import dataclass, field

GIB = 1024**3

# Bytes per stored element. mxfp4 is 4-bit values plus one shared 8-bit scale per 32 values.
DTYPE_BYTES: dict[str, float] = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "mxfp4": 4.25 / 8}


@dataclass(frozen=True, slots=True)
class Efficiency:
    """How much of the datasheet roofline a GPU reaches in practice (fitted on measurements).

    ``compute`` and ``memory`` scale peak FLOP/s and HBM bandwidth; ``kernel_overhead_s`` is
    the fixed cost of one GEMM kernel (launch, tail effects) that dominates tiny matmuls;
    ``sharpness`` is the exponent ``p`` of the smooth maximum ``(c**p + m**p) ** (1/p)`` of
    compute and memory time (a hard roofline is ``p = inf``; real kernels bend near the
    ridge point, where neither unit is saturated).
    """

    compute: float = 0.6
    memory: float = 0.75
    kernel_overhead_s: float = 10e-6
    sharpness: float = 1.5

    def roof(self, compute_s: float, memory_s: float) -> float:
        """The smooth maximum of a kernel's compute and memory times, without overhead."""
        p = self.sharpness
        return float((compute_s**p + memory_s**p) ** (1.0 / p))


@dataclass(frozen=True, slots=True)
class GpuSpec:
    """One GPU type: datasheet numbers, price, interconnect and fitted efficiency."""

    name: str
    memory_gb: float
    hbm_gbs: float
    bf16_tflops: float
    fp8_tflops: float | None
    nvlink: bool
    interconnect_gbs: float
    price_per_hour: float | None
    efficiency: Efficiency = field(default_factory=Efficiency)
    product_label: str = ""
    k8s_resource: str = "nvidia.com/gpu"
    max_per_node: int = 8

    @property
    def memory_bytes(self) -> float:
        # Datasheets give decimal GB for HBM capacity (80 GB = 80e9 bytes, about 74.5 GiB).
        return self.memory_gb * 1e9

    @property
    def supports_fp8(self) -> bool:
        return self.fp8_tflops is not None

    def peak_flops(self, fp8: bool) -> float:
        """Dense tensor FLOP/s: FP8 when asked and supported, BF16 otherwise."""
        tflops = self.fp8_tflops if fp8 and self.fp8_tflops is not None else self.bf16_tflops
        return tflops * 1e12


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A transformer as the performance model sees it (numbers from its config.json).

    For MoE models the expert weights are derived from total and active parameters: the
    ``experts - top_k`` experts a token skips hold ``total - active`` parameters.
    ``attention`` is "gqa" (incl. MHA), "mla" (DeepSeek latent KV: ``kv_lora_rank`` +
    ``rope_head_dim`` values per token and layer) or "hybrid_sliding" (``sliding_layers``
    of the layers keep only the last ``sliding_window`` tokens).
    """

    name: str
    hf_repo: str
    total_params_b: float
    active_params_b: float
    layers: int
    hidden: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    max_context: int
    native_dtype: str = "bf16"
    experts: int = 0
    top_k: int = 0
    moe_layers: int = 0
    attention: str = "gqa"
    sliding_window: int = 0
    sliding_layers: int = 0
    kv_lora_rank: int = 0
    rope_head_dim: int = 0
    vocab: int = 32000

    @property
    def is_moe(self) -> bool:
        return self.experts > 0

    @property
    def expert_params(self) -> float:
        """Parameters in all routed experts of all MoE layers (0 for dense models)."""
        if not self.is_moe:
            return 0.0
        per_expert = (self.total_params_b - self.active_params_b) / (self.experts - self.top_k)
        return per_expert * self.experts * 1e9

    @property
    def dense_params(self) -> float:
        """Parameters every token uses: attention, embeddings, norms, shared experts."""
        return self.total_params_b * 1e9 - self.expert_params


@dataclass(frozen=True, slots=True)
class ServingConfig:
    """One vLLM server: a model on ``tp * dp`` GPUs of one type, with its precision choices.

    ``dp > 1`` is only meaningful with ``expert_parallel`` (experts sharded over all
    ``tp * dp`` GPUs, attention replicated per data-parallel rank); dense models scale by
    adding replicas instead. ``quantization`` is None (native weights) or "fp8".
    """

    model: ModelSpec
    gpu: GpuSpec
    tp: int = 1
    dp: int = 1
    expert_parallel: bool = False
    quantization: str | None = None
    kv_dtype: str = "auto"
    max_model_len: int = 8192
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    gpu_memory_utilization: float = 0.9

    @property
    def gpus(self) -> int:
        return self.tp * self.dp

    @property
    def price_per_hour(self) -> float:
        return (self.gpu.price_per_hour or 0.0) * self.gpus

    @property
    def computes_in_fp8(self) -> bool:
        fp8_weights = self.quantization == "fp8" or self.model.native_dtype == "fp8"
        return fp8_weights and self.gpu.supports_fp8

    @property
    def name(self) -> str:
        """A stable, DNS-safe name: model, GPU, parallelism and precisions."""
        parts = [self.model.name, self.gpu.name, f"tp{self.tp}"]
        if self.dp > 1 or self.expert_parallel:
            parts.append(f"dp{self.dp}{'ep' if self.expert_parallel else ''}")
        if self.quantization:
            parts.append(self.quantization)
        if self.kv_dtype != "auto":
            parts.append(f"kv{self.kv_dtype}")
        return "-".join(parts).lower().replace(".", "-").replace("_", "-")
