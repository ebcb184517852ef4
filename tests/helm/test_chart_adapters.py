"""LoRA adapters in the chart: pools mount adapter sources, the gateway config lists adapter
models on their base model's pools, and bad adapter values fail with what to fix."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from switchyard.cli import app
from switchyard.gateway.settings import build_settings
from tests.helm.chart import (
    CHART,
    KUBE_VERSIONS,
    ROOT,
    find,
    gateway_config,
    objects,
    render,
    scenario,
)

SCENARIO = "lora-adapters"


def _values(**adapters: Any) -> dict[str, Any]:
    values = copy.deepcopy(scenario(SCENARIO))
    values["vllm"]["adapters"] = adapters
    return values


def _pool_specs(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    pools = [d for d in find(objs, "Deployment") if "-vllm-" in d["metadata"]["name"]]
    assert pools
    return [d["spec"]["template"]["spec"] for d in pools]


def _volume(spec: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((v for v in spec["volumes"] if v["name"] == name), None)


def test_lora_scenario_is_what_switchyard_plan_writes_plus_the_adapter_source(
    tmp_path: Path,
) -> None:
    workload = ROOT / "switchyard" / "data" / "workloads" / "adapters.yaml"
    result = CliRunner().invoke(app, ["plan", "--workload", str(workload), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    planned = yaml.safe_load((tmp_path / "helm-values.yaml").read_text(encoding="utf-8"))
    values = scenario(SCENARIO)
    assert values["vllm"].pop("adapters") == {"existingClaim": "lora-adapters"}
    assert values == planned, f"ci/{SCENARIO}-values.yaml is stale: re-run its header's command"


def test_pools_serving_adapters_mount_the_claim_read_only_where_lora_modules_point() -> None:
    for spec in _pool_specs(objects(scenario(SCENARIO))):
        assert _volume(spec, "adapters") == {
            "name": "adapters",
            "persistentVolumeClaim": {"claimName": "lora-adapters", "readOnly": True},
        }
        container = spec["containers"][0]
        assert {"name": "adapters", "mountPath": "/adapters", "readOnly": True} in container[
            "volumeMounts"
        ]
        modules = container["args"][container["args"].index("--lora-modules") + 1 :]
        paths = [m.split("=", 1)[1] for m in modules if "=" in m]
        assert paths and all(p.startswith("/adapters/") for p in paths)


def test_a_host_path_source_mounts_the_node_directory() -> None:
    for spec in _pool_specs(objects(_values(hostPath="/mnt/lora", mountPath="/lora"))):
        assert _volume(spec, "adapters") == {
            "name": "adapters",
            "hostPath": {"path": "/mnt/lora", "type": "Directory"},
        }
        assert {"name": "adapters", "mountPath": "/lora", "readOnly": True} in spec["containers"][
            0
        ]["volumeMounts"]


def test_an_init_container_fills_an_empty_dir_before_vllm_starts() -> None:
    init = {"image": "python:3.12-slim", "command": ["sh", "-c", "cp -r /src/. /adapters/"]}
    for spec in _pool_specs(objects(_values(init=init, sizeLimit="2Gi"))):
        assert _volume(spec, "adapters") == {"name": "adapters", "emptyDir": {"sizeLimit": "2Gi"}}
        (fetch,) = spec["initContainers"]
        assert fetch["image"] == init["image"] and fetch["command"] == init["command"]
        assert fetch["volumeMounts"] == [{"name": "adapters", "mountPath": "/adapters"}]


def test_a_pool_without_enable_lora_or_without_a_source_mounts_nothing() -> None:
    values = _values()
    for pool in values["vllm"]["pools"]:  # adapters from a hub: no volume needed
        start = pool["args"].index("--lora-modules") + 1
        pool["args"][start:] = ["sql-lora=org/sql-lora"]
    for spec in _pool_specs(objects(values)):
        assert _volume(spec, "adapters") is None and "initContainers" not in spec
    no_lora = scenario("moe-fleet")
    no_lora["vllm"]["adapters"] = {"existingClaim": "lora-adapters"}
    for spec in _pool_specs(objects(no_lora)):  # no --enable-lora: the claim is not mounted
        assert _volume(spec, "adapters") is None


def test_a_pools_own_adapter_source_replaces_the_default() -> None:
    values = scenario(SCENARIO)
    values["vllm"]["pools"][1]["adapters"] = {"hostPath": "/mnt/lora"}
    first, second = _pool_specs(objects(values))
    assert _volume(first, "adapters")["persistentVolumeClaim"]["claimName"] == "lora-adapters"  # type: ignore[index]
    assert _volume(second, "adapters")["hostPath"]["path"] == "/mnt/lora"  # type: ignore[index]


@pytest.mark.parametrize(
    "adapters",
    [{"hostPath": "/mnt/lora"}, {"init": {"image": "busybox", "command": ["true"]}}],
    ids=["hostPath", "init"],
)
def test_adapter_volumes_are_valid_kubernetes_in_strict_mode(adapters: dict[str, Any]) -> None:
    for obj in objects(_values(**adapters)) + objects(scenario(SCENARIO)):
        if obj["kind"] != "Deployment":
            continue
        for kube in KUBE_VERSIONS:
            kubernetes_validate.validate(obj, kube, strict=True)


def test_the_gateway_config_has_the_adapters_on_the_base_models_pools() -> None:
    config = gateway_config(objects(scenario(SCENARIO)))
    settings = build_settings(config)
    by_name = {m.name: m for m in settings.models}
    base = by_name["Llama-3.1-8B"]
    assert len(base.endpoints) == 2  # the two planned pools
    sql = by_name["sql-expert"]
    assert sql.adapter is not None and not sql.endpoints
    assert (sql.adapter.base, sql.adapter.name) == ("Llama-3.1-8B", "sql-lora")
    assert sql.price_input_per_mtok > 0


def test_lora_scenario_lints_clean_in_strict_mode() -> None:
    report = helm.lint(CHART, scenario(SCENARIO), strict=True, kube_version="v1.31.0")
    assert [m for m in report["messages"] if m["severity"] >= 2] + report["errors"] == []


def _error(values: dict[str, Any]) -> str:
    with pytest.raises(helm.HelmError) as caught:
        render(values)
    return str(caught.value)


def test_two_adapter_sources_fail_naming_the_choice() -> None:
    message = _error(_values(existingClaim="lora", hostPath="/mnt/lora"))
    assert "vllm.adapters: set one of existingClaim, hostPath or init" in message


def test_an_init_container_without_an_image_fails_the_schema() -> None:
    assert "image" in _error(_values(init={"command": ["true"]}))


def test_an_adapter_of_an_unserved_base_model_fails() -> None:
    values = scenario(SCENARIO)
    values["gateway"]["models"][0]["adapter"]["base"] = "Llama-3.1-70B"
    message = _error(values)
    assert "gateway.models[0].adapter.base" in message and "Llama-3.1-70B" in message


def test_lora_modules_under_the_mount_path_without_a_source_fail() -> None:
    message = _error(_values())
    assert "vllm.pools[0].args: --lora-modules sql-lora=/adapters/sql-lora is under" in message
    assert "no adapter source is mounted" in message
