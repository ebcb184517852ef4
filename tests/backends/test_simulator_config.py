"""Presets, ``build_config`` (what the CLI calls) and fault validation."""

from __future__ import annotations

import pytest

from switchyard.backends.simulator import PRESETS, Faults, PerfModel, build_config, perf_preset


def test_presets_get_slower_from_fast_to_slow() -> None:
    fast, medium, slow = perf_preset("fast"), perf_preset("medium"), perf_preset("slow")
    assert 0.005 <= fast.decode_base_s <= 0.012  # an 8B model on an H100: ~8 ms a step
    assert fast.decode_base_s < medium.decode_base_s < slow.decode_base_s
    assert fast.max_num_seqs >= medium.max_num_seqs >= slow.max_num_seqs
    assert PRESETS["zero"].is_zero and not fast.is_zero


def test_unknown_preset_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown preset"):
        perf_preset("warp")


def test_zero_perf_model_has_no_latency() -> None:
    zero = PerfModel.zero()
    assert zero.prefill_s_per_token == zero.decode_base_s == zero.decode_s_per_seq == 0
    assert zero.max_model_len == 8192


def test_build_config_applies_cli_overrides_and_ignores_none() -> None:
    config = build_config(
        "llama", "slow", 9, error_rate=0.25, added_latency_ms=None, drop_rate=0.5,
        hang_rate=0.0, max_num_seqs=3, serves_embeddings=True,
    )  # fmt: skip
    assert (config.model, config.seed, config.serves_embeddings) == ("llama", 9, True)
    assert config.perf.max_num_seqs == 3
    assert config.perf.decode_base_s == perf_preset("slow").decode_base_s
    assert (config.faults.error_rate, config.faults.drop_rate) == (0.25, 0.5)
    assert config.faults.added_latency_ms == 0


@pytest.mark.parametrize(
    "overrides",
    [{"error_rate": 1.5}, {"max_num_seqs": 0}, {"max_num_seqs": "4"}, {"warp_speed": 9}],
)
def test_build_config_rejects_bad_overrides(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        build_config("m", "fast", 0, **overrides)


def test_fault_update_is_all_or_nothing() -> None:
    faults = Faults()
    with pytest.raises(ValueError):
        faults.update({"error_rate": 0.5, "hang_rate": 7})
    assert faults == Faults()
    faults.update({"error_rate": 0.5})
    assert faults.error_rate == 0.5 and faults.any_active
