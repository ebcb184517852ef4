"""Roofline step times: memory-bound decode, compute-bound prefill, MoE experts, TP links."""

from __future__ import annotations

from dataclasses import replace

import pytest

from switchyard.deploy.perf.roofline import (
    comm_time,
    decode_step_time,
    prefill_time,
    touched_experts,
)
from switchyard.deploy.perf.specs import GpuSpec, ModelSpec, ServingConfig


def test_touched_experts_follows_the_uniform_routing_formula() -> None:
    assert touched_experts(128, 8, 1) == pytest.approx(8)
    assert touched_experts(128, 8, 16) == pytest.approx(128 * (1 - (1 - 8 / 128) ** 16))
    assert touched_experts(8, 2, 1000) == pytest.approx(8)
    assert touched_experts(0, 0, 10) == 0


def test_decode_of_one_sequence_is_about_one_read_of_the_weights(
    gpus: dict[str, GpuSpec], models: dict[str, ModelSpec]
) -> None:
    gpu = gpus["H100-80GB"]
    cfg = ServingConfig(models["Llama-3.1-8B"], gpu)
    read = 8.03e9 * 2 / (gpu.hbm_gbs * 1e9 * gpu.efficiency.memory)
    # Plus fixed per-kernel costs (about 2 ms over 32 layers), as vLLM measures ~6-8 ms.
    assert read < decode_step_time(cfg, 1, 512) < read * 1.5


def test_moe_decode_reads_more_experts_as_the_batch_grows(
    gpus: dict[str, GpuSpec], models: dict[str, ModelSpec]
) -> None:
    moe = ServingConfig(models["Qwen3-30B-A3B"], gpus["H100-80GB"])
    one, many = decode_step_time(moe, 1, 512), decode_step_time(moe, 64, 512)
    # One token reads ~8 of 128 experts per layer, 64 tokens nearly all of them.
    assert many > 3 * one
    dense = ServingConfig(models["Llama-3.1-8B"], gpus["H100-80GB"])
    assert decode_step_time(dense, 64, 512) < 2 * decode_step_time(dense, 1, 512)


def test_prefill_grows_with_the_prompt_and_is_compute_bound_when_long(
    gpus: dict[str, GpuSpec], models: dict[str, ModelSpec]
) -> None:
    gpu = gpus["H100-80GB"]
    cfg = ServingConfig(models["Llama-3.1-8B"], gpu)
    long = prefill_time(cfg, 8192)
    flops = 2 * 8.03e9 * 8192
    assert long > flops / (gpu.bf16_tflops * 1e12)
    assert long > 7 * prefill_time(cfg, 1024)


def test_tensor_parallel_communication_is_slower_without_nvlink(
    gpus: dict[str, GpuSpec], models: dict[str, ModelSpec]
) -> None:
    gpu = gpus["H100-80GB"]
    model = models["Llama-3.1-70B"]
    nvlink = ServingConfig(model, gpu, tp=4)
    pcie = ServingConfig(model, replace(gpu, nvlink=False, interconnect_gbs=32), tp=4)
    assert comm_time(pcie, 2048) > 5 * comm_time(nvlink, 2048)
    assert comm_time(ServingConfig(model, gpu, tp=1), 2048) == 0


def test_fp8_compute_makes_long_prefill_faster_on_hopper(
    gpus: dict[str, GpuSpec], models: dict[str, ModelSpec]
) -> None:
    model = models["Llama-3.1-8B"]
    bf16 = ServingConfig(model, gpus["H100-80GB"])
    fp8 = ServingConfig(model, gpus["H100-80GB"], quantization="fp8")
    assert prefill_time(fp8, 8192) < 0.8 * prefill_time(bf16, 8192)
