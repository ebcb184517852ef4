"""Reading vLLM /metrics pages (v0.10 with data parallelism, v0.6) into engine snapshots."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import generate_latest

from switchyard.backends.engine_state import EngineSnapshot, fresh, next_snapshot
from switchyard.backends.simulator import build_config, create_simulator_app
from switchyard.backends.vllm_metrics import PageReading, read_page, read_page_prometheus

FIXTURES = Path(__file__).parent / "fixtures"
PAGES = ["vllm_v0.10_dp2.txt", "vllm_v0.10_dp2_later.txt", "vllm_v0.6.txt"]


def page(name: str) -> str:
    return (FIXTURES / name).read_text()


@pytest.mark.parametrize("name", PAGES)
def test_fast_reader_agrees_with_prometheus_client_parser(name: str) -> None:
    assert read_page(page(name)) == read_page_prometheus(page(name))


def test_v0_10_data_parallel_page_sums_counts_and_averages_usage_over_engines() -> None:
    reading = read_page(page("vllm_v0.10_dp2.txt"))
    assert reading.engines == 2
    assert reading.running == 118 + 97
    assert reading.waiting == 3 + 0
    assert reading.kv_cache_usage == pytest.approx((0.6188 + 0.4212) / 2)
    assert reading.preemptions == 14 + 2
    assert reading.prefix_cache_queries == 8_412_160 + 7_990_784
    assert reading.prefix_cache_hits == 5_105_968 + 4_611_216
    assert reading.prefix_cache_hit_rate is None  # V1 exports counters only
    assert reading.kv_capacity_tokens == 2 * 29127 * 16
    assert reading.max_num_seqs is None  # vLLM does not export it


def test_v0_6_page_reads_the_old_cache_usage_and_hit_rate_gauges() -> None:
    reading = read_page(page("vllm_v0.6.txt"))
    assert reading.engines == 1
    assert (reading.running, reading.waiting) == (41, 7)
    assert reading.kv_cache_usage == pytest.approx(0.9731)
    assert reading.prefix_cache_hit_rate == pytest.approx(0.3125)
    assert reading.prefix_cache_queries is None
    assert reading.preemptions == 37
    assert reading.kv_capacity_tokens == 7281 * 16


def test_new_metric_names_win_over_deprecated_ones_on_the_same_page() -> None:
    text = (
        'vllm:num_requests_running{engine="0",model_name="m"} 1.0\n'
        'vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.9\n'
        'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25\n'
        'vllm:gpu_prefix_cache_queries_total{engine="0",model_name="m"} 999.0\n'
        'vllm:prefix_cache_queries_total{engine="0",model_name="m"} 100.0\n'
        'vllm:gpu_prefix_cache_hits_total{engine="0",model_name="m"} 999.0\n'
    )
    reading = read_page(text)
    assert reading.kv_cache_usage == 0.25
    assert reading.prefix_cache_queries == 100.0
    assert reading.prefix_cache_hits == 999.0  # only the old name is there: it is used


def test_vllm_0_8_gpu_prefix_cache_counters_are_read() -> None:
    text = (
        'vllm:num_requests_running{engine="0",model_name="m"} 0.0\n'
        'vllm:gpu_prefix_cache_queries_total{engine="0",model_name="m"} 400.0\n'
        'vllm:gpu_prefix_cache_hits_total{engine="0",model_name="m"} 100.0\n'
    )
    snap = next_snapshot(read_page(text), scraped_at=0.0)
    assert snap.prefix_cache_hit_rate == pytest.approx(0.25)


def test_max_num_seqs_is_read_from_a_scheduler_config_info_label() -> None:
    text = (
        'vllm:num_requests_running{engine="0"} 3\n'
        'vllm:num_requests_running{engine="1"} 4\n'
        'vllm:scheduler_config_info{engine="0",max_num_seqs="128",policy="fcfs"} 1\n'
        'vllm:scheduler_config_info{engine="1",max_num_seqs="128",policy="fcfs"} 1\n'
    )
    assert read_page(text).max_num_seqs == 256


def test_timestamps_tabs_and_braces_inside_label_values_do_not_confuse_the_reader() -> None:
    text = (
        'vllm:num_requests_waiting{model_name="a}b c"} 5 1751400000000\n'
        "vllm:num_requests_running 2.0\n"
        "vllm:num_requests_running_extra 100\n"
        'vllm:num_requests_running_other{x="y"} not-a-number\n'
    )
    reading = read_page(text)
    assert (reading.waiting, reading.running) == (5, 2)


def test_non_finite_usage_is_ignored() -> None:
    reading = read_page("vllm:num_requests_running 0\nvllm:kv_cache_usage_perc NaN\n")
    assert reading.kv_cache_usage is None


def test_a_malformed_vllm_sample_raises_value_error() -> None:
    with pytest.raises(ValueError, match="not a number"):
        read_page('vllm:num_requests_running{model_name="m"} many\n')
    with pytest.raises(ValueError):
        read_page("vllm:num_requests_running\n")


def test_a_page_without_vllm_gauges_is_not_a_snapshot() -> None:
    reading = read_page("# HELP up x\nprocess_open_fds 12\n")
    assert reading == PageReading()
    assert not reading.is_vllm
    with pytest.raises(ValueError, match="num_requests"):
        next_snapshot(reading, scraped_at=0.0)


def test_snapshot_takes_prefix_hit_rate_from_counter_deltas_between_scrapes() -> None:
    first = next_snapshot(read_page(page("vllm_v0.10_dp2.txt")), scraped_at=10.0)
    # First scrape: the lifetime ratio is the only estimate there is.
    assert first.prefix_cache_hit_rate == pytest.approx((5_105_968 + 4_611_216) / 16_402_944)
    second = next_snapshot(read_page(page("vllm_v0.10_dp2_later.txt")), 11.0, first)
    # Later page: +100k queried tokens, +60k hit tokens over both engines.
    assert second.prefix_cache_hit_rate == pytest.approx(60_000 / 100_000)
    assert second.preemptions == 17
    assert second.new_preemptions == 1
    assert (second.running, second.waiting, second.engines) == (225, 2, 2)
    assert second.scraped_at == 11.0


def test_hit_rate_is_carried_over_when_no_prompt_arrived_between_scrapes() -> None:
    first = next_snapshot(read_page(page("vllm_v0.10_dp2.txt")), scraped_at=1.0)
    again = next_snapshot(read_page(page("vllm_v0.10_dp2.txt")), scraped_at=2.0, previous=first)
    assert again.prefix_cache_hit_rate == first.prefix_cache_hit_rate
    assert again.new_preemptions == 0


def test_counters_that_went_down_are_a_restart_not_a_negative_rate() -> None:
    before = next_snapshot(read_page(page("vllm_v0.10_dp2_later.txt")), scraped_at=1.0)
    restarted = read_page(
        "vllm:num_requests_running 0\nvllm:num_preemptions_total 3\n"
        "vllm:prefix_cache_queries_total 200\nvllm:prefix_cache_hits_total 50\n"
    )
    after = next_snapshot(restarted, scraped_at=2.0, previous=before)
    assert after.new_preemptions == 3
    assert after.prefix_cache_hit_rate == pytest.approx(0.25)


def test_v0_6_snapshot_uses_vllm_own_hit_rate_gauge() -> None:
    snap = next_snapshot(read_page(page("vllm_v0.6.txt")), scraped_at=0.0)
    assert snap.prefix_cache_hit_rate == pytest.approx(0.3125)
    assert snap.kv_cache_usage == pytest.approx(0.9731)


def test_snapshot_older_than_max_age_is_unknown() -> None:
    snap = EngineSnapshot(waiting=0, running=1, scraped_at=100.0)
    assert fresh(snap, now=102.9, max_age_s=3.0) is snap
    assert fresh(snap, now=103.1, max_age_s=3.0) is None
    assert fresh(None, now=100.0, max_age_s=3.0) is None
    assert snap.age(101.5) == pytest.approx(1.5)


def test_simulator_page_exposes_kv_capacity_through_cache_config_info() -> None:
    app = create_simulator_app(build_config("m", "slow", 0))
    reading = read_page(generate_latest(app.registry).decode())
    assert reading.kv_capacity_tokens == app.config.perf.kv_cache_tokens
    assert (reading.running, reading.waiting, reading.preemptions) == (0, 0, 0)


def test_inter_token_latency_counters_are_read_new_name_first_and_summed_over_engines() -> None:
    v10 = read_page(page("vllm_v0.10_dp2.txt"))  # only the deprecated name is on this page
    assert v10.itl_count == 14010 + 11760
    assert v10.itl_sum_s == pytest.approx(89389.335 + 31712.205)
    both = read_page(
        "vllm:num_requests_running 1\n"
        "vllm:time_per_output_token_seconds_sum 999\nvllm:time_per_output_token_seconds_count 9\n"
        "vllm:inter_token_latency_seconds_sum 2.5\nvllm:inter_token_latency_seconds_count 100\n"
        'vllm:inter_token_latency_seconds_bucket{le="0.05"} 90\n'
    )
    assert (both.itl_sum_s, both.itl_count) == (2.5, 100)
    assert both == read_page_prometheus(
        "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 1\n"
        "# TYPE vllm:inter_token_latency_seconds histogram\n"
        'vllm:inter_token_latency_seconds_bucket{le="0.05"} 90\n'
        'vllm:inter_token_latency_seconds_bucket{le="+Inf"} 100\n'
        "vllm:inter_token_latency_seconds_sum 2.5\nvllm:inter_token_latency_seconds_count 100\n"
        "# TYPE vllm:time_per_output_token_seconds histogram\n"
        'vllm:time_per_output_token_seconds_bucket{le="+Inf"} 9\n'
        "vllm:time_per_output_token_seconds_sum 999\nvllm:time_per_output_token_seconds_count 9\n"
    )


def _itl_page(total_s: float, gaps: int) -> PageReading:
    return read_page(
        "vllm:num_requests_running 4\n"
        f"vllm:inter_token_latency_seconds_sum {total_s}\n"
        f"vllm:inter_token_latency_seconds_count {gaps}\n"
    )


def test_snapshot_mean_inter_token_latency_is_the_delta_since_the_previous_scrape() -> None:
    first = next_snapshot(_itl_page(10.0, 1000), scraped_at=1.0)
    assert first.itl_s == pytest.approx(0.01)  # lifetime mean: nothing earlier to subtract
    slower = next_snapshot(_itl_page(16.0, 1100), scraped_at=2.0, previous=first)
    assert slower.itl_s == pytest.approx(0.06)  # 6 s over the last 100 gaps
    idle = next_snapshot(_itl_page(16.0, 1100), scraped_at=3.0, previous=slower)
    assert idle.itl_s == pytest.approx(0.06)  # no token since: carried over
    restarted = next_snapshot(_itl_page(0.4, 20), scraped_at=4.0, previous=idle)
    assert restarted.itl_s == pytest.approx(0.02)
    silent = next_snapshot(read_page("vllm:num_requests_running 0\n"), 5.0, restarted)
    assert silent.itl_s is None
