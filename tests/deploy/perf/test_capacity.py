"""The highest sustainable rate of a server for a request size under latency targets."""

from __future__ import annotations

from switchyard.deploy.perf.capacity import (
    LatencyTargets,
    max_rate,
    operating_point,
    point_at_rate,
)
from switchyard.deploy.perf.specs import GpuSpec, ModelSpec, ServingConfig

TARGETS = LatencyTargets(ttft_s=2.0, tpot_s=0.05)


def test_the_chosen_operating_point_meets_both_targets(
    gpus: dict[str, GpuSpec], models: dict[str, ModelSpec]
) -> None:
    cfg = ServingConfig(models["Llama-3.1-8B"], gpus["A100-80GB"])
    point = max_rate(cfg, 1024, 256, TARGETS)
    assert point.rate > 1
    assert point.ttft_s <= TARGETS.ttft_s and point.tpot_s <= TARGETS.tpot_s
    # One more sequence would break a target or not fit (the point is the largest batch).
    if point.batch < cfg.max_num_seqs:
        bigger = operating_point(cfg, 1024, 256, point.batch + 1)
        assert bigger.tpot_s > TARGETS.tpot_s or bigger.ttft_s > TARGETS.ttft_s


def test_a_tighter_target_never_raises_the_rate(
    gpus: dict[str, GpuSpec], models: dict[str, ModelSpec]
) -> None:
    cfg = ServingConfig(models["Qwen3-30B-A3B"], gpus["H100-80GB"])
    rates = [max_rate(cfg, 2048, 512, LatencyTargets(2.0, tpot)).rate
             for tpot in (0.1, 0.05, 0.03, 0.01, 0.004)]  # fmt: skip
    assert rates == sorted(rates, reverse=True)
    assert rates[-2] > 0 and rates[-1] == 0  # 4 ms per token is out of reach here


def test_a_request_longer_than_max_model_len_cannot_be_served(
    gpus: dict[str, GpuSpec], models: dict[str, ModelSpec]
) -> None:
    cfg = ServingConfig(models["Llama-3.1-8B"], gpus["H100-80GB"], max_model_len=4096)
    assert max_rate(cfg, 4000, 512, TARGETS).rate == 0


def test_expert_parallel_ranks_multiply_the_server_rate(
    gpus: dict[str, GpuSpec], models: dict[str, ModelSpec]
) -> None:
    model = models["Qwen3-235B-A22B"]
    one = max_rate(ServingConfig(model, gpus["H200"], tp=4, max_model_len=8192), 1024, 256, TARGETS)
    ep = max_rate(
        ServingConfig(model, gpus["H200"], tp=2, dp=4, expert_parallel=True, max_model_len=8192),
        1024, 256, TARGETS,
    )  # fmt: skip
    assert one.rate > 0 and ep.rate > one.rate


def test_a_lightly_loaded_server_runs_smaller_batches_with_lower_latency(
    gpus: dict[str, GpuSpec], models: dict[str, ModelSpec]
) -> None:
    cfg = ServingConfig(models["Llama-3.1-8B"], gpus["H100-80GB"])
    full = max_rate(cfg, 1024, 256, TARGETS)
    half = point_at_rate(cfg, 1024, 256, full.rate / 2)
    assert half.rate >= full.rate / 2
    assert half.batch < full.batch and half.tpot_s < full.tpot_s
    if half.batch > 1:
        smaller = operating_point(cfg, 1024, 256, half.batch - 1)
        assert smaller.rate < full.rate / 2
