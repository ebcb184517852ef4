"""A configuration as the simulator's PerfModel: the simulator runs at the modelled speed."""

from __future__ import annotations

import pytest

from switchyard.backends.simulator import build_config
from switchyard.deploy.perf.memory import memory_plan
from switchyard.deploy.perf.roofline import decode_step_time
from switchyard.deploy.perf.simulator import to_perf_model
from switchyard.deploy.perf.specs import GpuSpec, ModelSpec, ServingConfig


def test_perf_model_reproduces_the_roofline_step_time_and_kv_capacity(
    gpus: dict[str, GpuSpec], models: dict[str, ModelSpec]
) -> None:
    cfg = ServingConfig(models["Llama-3.1-8B"], gpus["L40S"], max_num_seqs=128)
    perf = to_perf_model(cfg, 1024, 256)
    assert perf.decode_base_s == pytest.approx(decode_step_time(cfg, 1, 1152))
    line = perf.decode_base_s + perf.decode_s_per_seq * 63
    assert line == pytest.approx(decode_step_time(cfg, 64, 1152), rel=1e-6)
    assert perf.kv_cache_tokens == memory_plan(cfg).kv_tokens
    assert (perf.max_num_seqs, perf.max_model_len) == (128, cfg.max_model_len)


def test_a_faster_gpu_gives_a_faster_simulator(
    gpus: dict[str, GpuSpec], models: dict[str, ModelSpec]
) -> None:
    slow = to_perf_model(ServingConfig(models["Llama-3.1-8B"], gpus["L4"], quantization="fp8"))
    fast = to_perf_model(ServingConfig(models["Llama-3.1-8B"], gpus["H100-80GB"]))
    assert fast.decode_base_s < slow.decode_base_s / 3
    assert fast.prefill_s_per_token < slow.prefill_s_per_token


def test_the_simulator_accepts_the_mapped_fields_as_overrides(
    gpus: dict[str, GpuSpec], models: dict[str, ModelSpec]
) -> None:
    perf = to_perf_model(ServingConfig(models["Qwen3-30B-A3B"], gpus["H200"]))
    fields = {k: getattr(perf, k) for k in perf.__dataclass_fields__}
    assert build_config("qwen", "zero", **fields).perf == perf


def test_one_simulator_standing_for_several_servers_has_their_joint_capacity(
    gpus: dict[str, GpuSpec], models: dict[str, ModelSpec]
) -> None:
    cfg = ServingConfig(models["Llama-3.1-8B"], gpus["L40S"], max_num_seqs=64)
    one, three = to_perf_model(cfg), to_perf_model(cfg, servers=3)
    assert three.max_num_seqs == 3 * one.max_num_seqs
    assert three.kv_cache_tokens == 3 * one.kv_cache_tokens
    assert three.decode_s_per_seq == pytest.approx(one.decode_s_per_seq / 3)
    assert three.decode_base_s == one.decode_base_s  # a step still takes one weight read
