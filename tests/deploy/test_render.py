"""A plan's outputs: report, vLLM command lines, Helm values, gateway weights, simulators."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache
from pathlib import Path

import pytest
import yaml

from switchyard.backends.simulator import build_config
from switchyard.deploy.catalog import node_selectors
from switchyard.deploy.perf.specs import ServingConfig
from switchyard.deploy.plan import Catalog, Plan, make_plan
from switchyard.deploy.render import vllm_args, write_plan
from switchyard.deploy.workload import load_workload
from switchyard.gateway.settings import EndpointConfig
from switchyard.resources import data_path

CHAT = data_path("workloads", "chat.yaml")


@cache
def plan() -> Plan:
    return make_plan(replace(load_workload(CHAT), mip_rel_gap=0.0), Catalog.load())


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("plan")
    write_plan(plan(), folder, node_selectors())
    return folder


def test_every_output_file_is_written(out: Path) -> None:
    names = {p.name for p in out.iterdir()}
    assert names == {"plan.json", "plan.md", "vllm-commands.sh", "helm-values.yaml",
                     "gateway-endpoints.yaml", "simulators.yaml"}  # fmt: skip


def test_report_gives_cost_gpus_gap_and_per_config_latency(out: Path) -> None:
    report = json.loads((out / "plan.json").read_text())
    assert report["cost_per_hour"] == pytest.approx(plan().cost_per_hour, abs=1e-3)
    assert report["optimality_gap"] == pytest.approx(0.0, abs=1e-6)
    assert report["gpus_by_type"] == plan().gpus_by_type()
    for config in report["configs"]:
        assert config["utilisation"] <= 0.8 + 1e-6
        for b in config["buckets"]:
            assert b["tpot_s_at_capacity"] <= 0.05 and b["ttft_s_at_capacity"] <= 2.0
            assert b["expected_tpot_s"] <= b["tpot_s_at_capacity"] + 1e-9
    assert f"${plan().cost_per_hour:.2f}/h" in (out / "plan.md").read_text()


def test_vllm_arguments_are_explicit(out: Path) -> None:
    model = Catalog.load().models["Qwen3-235B-A22B"]
    cfg = ServingConfig(model, Catalog.load().gpus["H200"], tp=2, dp=4, expert_parallel=True,
                        quantization="fp8", kv_dtype="fp8", max_model_len=16384)  # fmt: skip
    args = vllm_args(cfg)
    pairs = dict(zip(args[::2], args[1::2], strict=False))
    assert pairs["--tensor-parallel-size"] == "2" and pairs["--data-parallel-size"] == "4"
    assert pairs["--max-model-len"] == "16384" and pairs["--kv-cache-dtype"] == "fp8"
    assert pairs["--gpu-memory-utilization"] == "0.9" and pairs["--max-num-seqs"] == "256"
    assert "--enable-expert-parallel" in args
    assert args[args.index("--quantization") + 1] == "fp8"
    lines = (out / "vllm-commands.sh").read_text().splitlines()
    assert sum(line.startswith("vllm serve ") for line in lines) == len(plan().configs)


def test_helm_pools_match_the_plan(out: Path) -> None:
    pools = yaml.safe_load((out / "helm-values.yaml").read_text())["vllm"]["pools"]
    assert [p["name"] for p in pools] == [c.cfg.name for c in plan().configs]
    for pool, c in zip(pools, plan().configs, strict=True):
        assert pool["replicas"] == c.replicas
        assert pool["resources"]["limits"][c.cfg.gpu.k8s_resource] == c.cfg.gpus
        assert pool["nodeSelector"] == node_selectors()[c.cfg.gpu.name]
        assert pool["args"] == vllm_args(c.cfg)


def test_gateway_weights_are_each_models_traffic_shares(out: Path) -> None:
    doc = yaml.safe_load((out / "gateway-endpoints.yaml").read_text())
    for model in doc["models"]:
        assert sum(e["weight"] for e in model["endpoints"]) == pytest.approx(1.0, abs=1e-5)
        for endpoint in model["endpoints"]:
            EndpointConfig(**endpoint)  # what the gateway's config accepts


def test_simulator_fleet_builds_valid_simulator_configs(out: Path) -> None:
    sims = yaml.safe_load((out / "simulators.yaml").read_text())["simulators"]
    assert [s["config"] for s in sims] == [c.cfg.name for c in plan().configs]
    for sim in sims:
        config = build_config(sim["model"], "zero", **sim["perf"])
        assert config.perf.decode_base_s > 0 and config.perf.kv_cache_tokens > 0
