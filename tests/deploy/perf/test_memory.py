"""vLLM-style memory sizing: weights per GPU, KV bytes per token, feasibility."""

from __future__ import annotations

import pytest

from switchyard.deploy.perf.memory import kv_bytes_per_token, memory_plan, weight_bytes_per_gpu
from switchyard.deploy.perf.specs import GIB, GpuSpec, ModelSpec, ServingConfig


def test_llama_8b_kv_bytes_per_token_is_layers_times_kv_heads_times_head_dim_times_two(
    gpus: dict[str, GpuSpec], models: dict[str, ModelSpec]
) -> None:
    cfg = ServingConfig(models["Llama-3.1-8B"], gpus["H100-80GB"])
    # 32 layers x (K and V) x 8 KV heads x 128 dims x 2 bytes = 128 KiB
    assert kv_bytes_per_token(cfg, 4096) == 32 * 2 * 8 * 128 * 2
    fp8 = ServingConfig(models["Llama-3.1-8B"], gpus["H100-80GB"], kv_dtype="fp8")
    assert kv_bytes_per_token(fp8, 4096) == kv_bytes_per_token(cfg, 4096) / 2


def test_tensor_parallel_splits_kv_heads_but_never_below_one_head_per_gpu(
    gpus: dict[str, GpuSpec], models: dict[str, ModelSpec]
) -> None:
    qwen = models["Qwen3-30B-A3B"]  # 4 KV heads
    per_tp = {tp: kv_bytes_per_token(ServingConfig(qwen, gpus["H100-80GB"], tp=tp), 1024)
              for tp in (1, 2, 4, 8)}  # fmt: skip
    assert per_tp[2] == per_tp[1] / 2
    assert per_tp[4] == per_tp[1] / 4
    assert per_tp[8] == per_tp[4]  # replicated: 8 ranks, 4 heads


def test_mla_caches_the_latent_vector_not_per_head_keys_and_values(
    gpus: dict[str, GpuSpec], models: dict[str, ModelSpec]
) -> None:
    cfg = ServingConfig(models["DeepSeek-V3"], gpus["H200"], tp=8)
    assert kv_bytes_per_token(cfg, 4096) == 61 * (512 + 64) * 2


def test_sliding_window_layers_stop_growing_past_the_window(
    gpus: dict[str, GpuSpec], models: dict[str, ModelSpec]
) -> None:
    cfg = ServingConfig(models["gpt-oss-20b"], gpus["H100-80GB"])
    per_layer = 2 * 8 * 64 * 2
    assert kv_bytes_per_token(cfg, 128) == 24 * per_layer
    # Past the window only the 12 full-attention layers keep every token.
    assert kv_bytes_per_token(cfg, 128_000) == pytest.approx(12 * per_layer, rel=0.02)


def test_expert_parallel_shards_experts_over_all_gpus_and_dense_weights_over_tp(
    gpus: dict[str, GpuSpec], models: dict[str, ModelSpec]
) -> None:
    model = models["Qwen3-235B-A22B"]
    tp_only = ServingConfig(model, gpus["H200"], tp=2)
    ep = ServingConfig(model, gpus["H200"], tp=2, dp=4, expert_parallel=True)
    assert weight_bytes_per_gpu(ep) < weight_bytes_per_gpu(tp_only) / 3
    assert weight_bytes_per_gpu(tp_only) == pytest.approx(235e9 * 2 / 2, rel=1e-9)


def test_a_model_larger_than_the_gpu_is_infeasible_and_fits_once_sharded(
    gpus: dict[str, GpuSpec], models: dict[str, ModelSpec]
) -> None:
    llama70 = models["Llama-3.1-70B"]
    assert not memory_plan(ServingConfig(llama70, gpus["H100-80GB"], tp=1)).feasible
    plan = memory_plan(ServingConfig(llama70, gpus["H100-80GB"], tp=4))
    assert plan.feasible
    assert plan.weights_bytes == pytest.approx(70.6e9 * 2 / 4)
    usable = 80e9 * 0.9 - plan.weights_bytes - plan.activation_bytes - plan.overhead_bytes
    assert plan.kv_budget_bytes == pytest.approx(usable)
    assert plan.overhead_bytes >= 1.5 * GIB


def test_kv_cache_must_hold_one_max_model_len_sequence(
    gpus: dict[str, GpuSpec], models: dict[str, ModelSpec]
) -> None:
    model = models["Llama-3.1-8B"]
    short = memory_plan(ServingConfig(model, gpus["L4"], max_model_len=8192))
    long = memory_plan(ServingConfig(model, gpus["L4"], max_model_len=131072))
    assert short.feasible and not long.feasible


def test_fp8_weights_halve_a_bf16_models_weights(
    gpus: dict[str, GpuSpec], models: dict[str, ModelSpec]
) -> None:
    model = models["Mixtral-8x7B"]
    bf16 = weight_bytes_per_gpu(ServingConfig(model, gpus["H100-80GB"]))
    fp8 = weight_bytes_per_gpu(ServingConfig(model, gpus["H100-80GB"], quantization="fp8"))
    assert fp8 == pytest.approx(bf16 / 2)
