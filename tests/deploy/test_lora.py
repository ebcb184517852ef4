"""LoRA adapters in workloads and plans: parsing and its errors, vLLM's slot counts and
flags, adapters placed on their base model's pools, and the gateway's adapter models."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from switchyard.backends.simulator import build_config
from switchyard.deploy.catalog import node_selectors
from switchyard.deploy.lora import Adapter, LoraSettings, lora_args, lora_slots, max_lora_rank
from switchyard.deploy.plan import Catalog, Plan, check_plan, make_plan
from switchyard.deploy.render import write_plan
from switchyard.deploy.workload import WorkloadError, load_workload, parse_workload
from switchyard.gateway.settings import build_settings
from switchyard.resources import data_path

ADAPTERS = data_path("workloads", "adapters.yaml")
BUCKETS = [{"input": 512, "output": 128}]


def _doc(adapters: Any, **top: Any) -> dict[str, Any]:
    model = {"name": "Llama-3.1-8B", "rate": 10, "buckets": BUCKETS, "adapters": adapters}
    return {"targets": {"ttft_s": 2, "tpot_s": 0.05}, "models": [model], **top}


def _adapters(*shares: float, rank: int = 16) -> tuple[Adapter, ...]:
    return tuple(
        Adapter(f"a{i}", s, f"a{i}", f"/adapters/a{i}", rank) for i, s in enumerate(shares)
    )


@cache
def plan() -> Plan:
    return make_plan(replace(load_workload(ADAPTERS), mip_rel_gap=0.0), Catalog.load())


def test_the_example_adapter_workload_loads_with_defaults_filled_in() -> None:
    (llama,) = load_workload(ADAPTERS).models
    assert len(llama.adapters) == 8
    sql = llama.adapters[0]
    assert (sql.name, sql.lora_name, sql.source) == ("sql-expert", "sql-lora", "/adapters/sql-lora")
    support = llama.adapters[1]
    assert (support.lora_name, support.source) == ("support-bot", "/adapters/support-bot")


@pytest.mark.parametrize(
    ("adapters", "top", "message"),
    [
        ([{"share": 0.1}], {}, "models[0].adapters[0]: an adapter needs a name"),
        ([{"name": "a", "share": 1.5}], {}, "models[0].adapters[0].share"),
        ([{"name": "a"}], {}, "models[0].adapters[0].share"),
        ([{"name": "a", "share": 0.1, "rank": 1024}], {}, "adapters[0].rank"),
        ([{"name": "a", "share": 0.1, "colour": 1}], {}, "unknown fields ['colour']"),
        ([{"name": "a", "share": 0.6}, {"name": "b", "share": 0.6}], {}, "shares sum to 1.2"),
        ([{"name": "a", "share": 0.1}, {"name": "a", "share": 0.1}], {}, "adapter name may"),
        ([{"name": "Llama-3.1-8B", "share": 0.1}], {}, "differ from models"),
        ({"name": "a"}, {}, "models[0].adapters: a list"),
        ([], {"lora": {"slot_coverage": 0}}, "lora.slot_coverage"),
        ([], {"lora": {"max_slots": 0}}, "lora.max_slots"),
        ([], {"lora": {"on_demand": True}}, "lora: unknown fields"),
    ],
)
def test_bad_adapter_entries_fail_naming_the_field(
    adapters: Any, top: dict[str, Any], message: str
) -> None:
    with pytest.raises(WorkloadError, match=None) as caught:
        parse_workload(_doc(adapters, **top))
    assert message in str(caught.value)


def test_slots_cover_the_most_popular_adapters_up_to_the_coverage() -> None:
    zipf = _adapters(*(1 / k for k in range(1, 51)))  # 50 adapters, Zipf popularity
    total = sum(a.share for a in zipf)
    zipf = tuple(replace(a, share=a.share / total) for a in zipf)
    slots = lora_slots(zipf, LoraSettings(slot_coverage=0.5, max_slots=64))
    assert sum(a.share for a in zipf[:slots]) >= 0.5 > sum(a.share for a in zipf[: slots - 1])
    assert lora_slots(zipf, LoraSettings()) == 16  # 90 % needs more: capped at max_slots
    assert lora_slots(_adapters(0.3, 0.3, 0.3), LoraSettings()) == 3
    assert lora_slots(_adapters(0.0), LoraSettings()) == 1  # at least one slot


def test_max_lora_rank_rounds_up_to_a_rank_vllm_accepts() -> None:
    assert max_lora_rank(_adapters(0.1, rank=16)) == 16
    assert max_lora_rank(_adapters(0.1, rank=24) + _adapters(0.1, rank=8)) == 32
    assert max_lora_rank(_adapters(0.1, rank=300)) == 320


def test_static_loading_registers_every_adapter_and_on_demand_none() -> None:
    adapters = _adapters(0.5, 0.3, 0.1)
    static = lora_args(adapters, LoraSettings(slot_coverage=0.8))
    assert static == [
        "--enable-lora", "--max-loras", "2", "--max-lora-rank", "16", "--max-cpu-loras", "3",
        "--lora-modules", "a0=/adapters/a0", "a1=/adapters/a1", "a2=/adapters/a2",
    ]  # fmt: skip
    on_demand = lora_args(adapters, LoraSettings(on_demand_loading=True, slot_coverage=0.8))
    assert on_demand == static[:7]
    assert lora_args((), LoraSettings()) == []


def test_adapters_ride_on_their_base_models_pools_with_no_pools_of_their_own() -> None:
    assert plan().feasible and check_plan(plan()) == []
    assert {c.cfg.model.name for c in plan().configs} == {"Llama-3.1-8B"}
    # The same plan as without adapters: their requests are in the model's rate already.
    bare = replace(load_workload(ADAPTERS), mip_rel_gap=0.0)
    bare = replace(bare, models=tuple(replace(d, adapters=()) for d in bare.models))
    assert make_plan(bare, Catalog.load()).cost_per_hour == pytest.approx(plan().cost_per_hour)


def _with_base_prices(config: dict[str, Any]) -> dict[str, Any]:
    """gateway-endpoints.yaml is a fragment: the base models' prices are the operator's."""
    for model in config["models"]:
        model.setdefault("price_input_per_mtok", 0.1)
        model.setdefault("price_output_per_mtok", 0.1)
    return config


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lora-plan")
    write_plan(plan(), folder, node_selectors())
    return folder


def test_every_pool_of_the_base_model_gets_the_lora_flags(out: Path) -> None:
    values = yaml.safe_load((out / "helm-values.yaml").read_text())
    for pool in values["vllm"]["pools"]:
        args = pool["args"]
        assert "--enable-lora" in args and "env" not in pool
        assert args[args.index("--max-loras") + 1] == "6"  # 6 adapters carry >= 90 %
        assert args[args.index("--max-lora-rank") + 1] == "32"
        assert "sql-lora=/adapters/sql-lora" in args
    report = json.loads((out / "plan.json").read_text())
    assert all("--enable-lora" in c["vllm_command"] for c in report["configs"])
    assert report["adapters"]["Llama-3.1-8B"]["sql-expert"] == 0.25
    assert "--enable-lora" in (out / "vllm-commands.sh").read_text()


def test_gateway_config_gets_priced_adapter_models_it_accepts(out: Path) -> None:
    config = yaml.safe_load((out / "gateway-endpoints.yaml").read_text())
    settings = build_settings(_with_base_prices(config))
    by_name = {m.name: m for m in settings.models}
    assert len(by_name) == 9
    sql = by_name["sql-expert"]
    assert sql.adapter is not None and sql.adapter.source == "/adapters/sql-lora"
    assert sql.upstream_model == "sql-lora" and sql.price_input_per_mtok > 0


def test_on_demand_loading_sets_the_runtime_env_and_the_gateway_switch(tmp_path: Path) -> None:
    workload = replace(load_workload(ADAPTERS), lora=LoraSettings(on_demand_loading=True))
    write_plan(make_plan(workload, Catalog.load()), tmp_path, node_selectors())
    values = yaml.safe_load((tmp_path / "helm-values.yaml").read_text())
    for pool in values["vllm"]["pools"]:
        assert pool["env"] == [{"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "True"}]
        assert "--lora-modules" not in pool["args"]
    assert values["gateway"]["config"] == {"adapters": {"on_demand_loading": True}}
    gateway = yaml.safe_load((tmp_path / "gateway-endpoints.yaml").read_text())
    assert build_settings(_with_base_prices(gateway)).adapters.on_demand_loading


def test_planned_simulators_build_with_the_pools_lora_settings(out: Path) -> None:
    fleet = yaml.safe_load((out / "simulators.yaml").read_text())
    for sim in fleet["simulators"]:
        config = build_config(sim["model"], "zero", **sim["perf"], **sim["lora"])
        assert config.lora is not None and "sql-lora" in config.lora.modules
