"""Adapter-aware replica choice as a pure function (no network), and reading vLLM's adapter
gauge into the engine snapshot."""

from __future__ import annotations

from switchyard.backends.adapters import AdapterCosts, AdapterRoute, choose_adapter_replica
from switchyard.backends.engine_state import EngineSnapshot, next_snapshot
from switchyard.backends.replica import DEFAULT_POLICY, EndpointView
from switchyard.backends.vllm_metrics import LoraReading, read_page, read_page_prometheus

NOW = 100.0
# A real page keeps older label sets with older timestamps: the latest is the current one.
PAGE = """\
# HELP vllm:lora_requests_info Running stats on lora requests.
# TYPE vllm:lora_requests_info gauge
vllm:lora_requests_info{max_lora="4",running_lora_adapters="old",waiting_lora_adapters=""} 1e9
vllm:lora_requests_info{max_lora="4",running_lora_adapters="sql,qa",waiting_lora_adapters="fr"} 2e9
# HELP vllm:num_requests_running Requests in the running batch.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="base"} 3.0
vllm:num_requests_waiting{model_name="base"} 0.0
"""


def snapshot(running: set[str], slots: int = 4, waiting: int = 0, busy: int = 0) -> EngineSnapshot:
    lora = LoraReading(frozenset(running), frozenset(), slots)
    return EngineSnapshot(waiting=waiting, running=busy, scraped_at=NOW, lora=lora)


def route() -> AdapterRoute:
    return AdapterRoute("sql", "/adapters/sql", AdapterCosts(), clock=lambda: NOW)


def test_the_latest_adapter_gauge_sample_is_read_by_both_parsers() -> None:
    for read in (read_page, read_page_prometheus):
        lora = next_snapshot(read(PAGE), NOW).lora
        assert lora == LoraReading(frozenset({"sql", "qa"}), frozenset({"fr"}), 4)
        assert lora.active == {"sql", "qa", "fr"}


def test_a_page_without_the_gauge_has_no_adapter_reading() -> None:
    assert read_page('vllm:num_requests_running{model_name="b"} 1\n').lora is None


def test_a_replica_where_the_adapter_is_active_wins_over_idle_ones() -> None:
    views = [
        EndpointView("idle", snapshot=snapshot(set())),
        EndpointView("active", snapshot=snapshot({"sql"}, busy=2)),
    ]
    choice = choose_adapter_replica(views, route(), now=NOW)
    assert choice is not None and choice.name == "active"


def test_a_free_slot_beats_a_full_one_and_a_much_busier_active_replica_loses() -> None:
    full = EndpointView("full", snapshot=snapshot({"a", "b", "c", "d"}))
    free = EndpointView("free", snapshot=snapshot({"a"}))
    choice = choose_adapter_replica([full, free], route(), now=NOW)
    assert choice is not None and choice.name == "free"
    swamped = EndpointView("swamped", snapshot=snapshot({"sql"}, waiting=500, busy=256))
    choice = choose_adapter_replica([swamped, free], route(), now=NOW)
    assert choice is not None and choice.name == "free"


def test_a_replica_this_gateway_just_sent_the_adapter_counts_as_active() -> None:
    sticky = route()
    views = [EndpointView(name, snapshot=snapshot(set())) for name in ("a", "b", "c")]
    first = choose_adapter_replica(views, sticky, now=NOW)
    assert first is not None
    sticky.sent(first.name)
    others = [v for v in views if v.name != first.name]
    assert all(sticky.cost(v, NOW, DEFAULT_POLICY) > 0 for v in others)
    again = choose_adapter_replica(views, sticky, now=NOW)
    assert again is not None and again.name == first.name


def test_new_adapters_spread_over_idle_replicas() -> None:
    views = [EndpointView(name, snapshot=snapshot(set())) for name in ("a", "b", "c", "d")]
    homes = set()
    for i in range(40):
        r = AdapterRoute(f"ad{i}", "/x", AdapterCosts(), clock=lambda: NOW)
        choice = choose_adapter_replica(views, r, now=NOW)
        assert choice is not None
        homes.add(choice.name)
    assert homes == {"a", "b", "c", "d"}


def test_no_eligible_replica_means_no_choice() -> None:
    views = [EndpointView("a", allows=False), EndpointView("b", weight=0.0)]
    assert choose_adapter_replica(views, route(), now=NOW) is None
