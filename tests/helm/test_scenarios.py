"""Every ``ci/*-values.yaml`` scenario renders, lints clean in strict mode, validates against
the Kubernetes schemas of two versions, and gives the gateway a config its Settings accept."""

from __future__ import annotations

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
    CUSTOM_KINDS,
    KUBE_VERSIONS,
    ROOT,
    SCENARIOS,
    gateway_config,
    manifests,
    objects,
    render,
    scenario,
    with_local_artifacts,
)

REQUIRED_SPEC = {
    "ServiceMonitor": ("selector", "endpoints"),
    "PodMonitor": ("selector", "podMetricsEndpoints"),
    "PrometheusRule": ("groups",),
}


def test_the_four_scenarios_of_the_issue_exist() -> None:
    assert set(SCENARIOS) == {
        "minimal",
        "external-redis",
        "ha",
        "moe-fleet",
        "kubernetes-discovery",
        "lora-adapters",
    }


@pytest.mark.parametrize("name", SCENARIOS)
@pytest.mark.parametrize("kube", KUBE_VERSIONS)
def test_scenario_lints_clean_in_strict_mode(name: str, kube: str) -> None:
    report = helm.lint(CHART, scenario(name), strict=True, kube_version=f"v{kube}.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert problems == []


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_rendered_object_is_valid_kubernetes_in_strict_mode(name: str) -> None:
    objs = objects(scenario(name))
    assert objs
    for obj in objs:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        for kube in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(obj, kube, strict=True)
            except kubernetes_validate.ValidationError as err:
                where = "/".join(map(str, err.path))
                pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} on {kube}: {where}: {err}")


@pytest.mark.parametrize("name", SCENARIOS)
def test_custom_resources_carry_their_required_fields(name: str) -> None:
    for obj in objects(scenario(name)):
        if obj["kind"] not in CUSTOM_KINDS:
            continue
        assert obj["apiVersion"] == "monitoring.coreos.com/v1"
        assert obj["metadata"]["name"] and obj["metadata"]["labels"]
        missing = [f for f in REQUIRED_SPEC[obj["kind"]] if not obj["spec"].get(f)]
        assert missing == [], f"{obj['kind']} lacks {missing}"
        if obj["kind"] == "PrometheusRule":
            for group in obj["spec"]["groups"]:
                assert group["name"] and group["rules"]
                assert all(("record" in r) != ("alert" in r) and r["expr"] for r in group["rules"])
        else:
            endpoints = obj["spec"].get("endpoints") or obj["spec"]["podMetricsEndpoints"]
            assert all(e["port"] == "http" and e["path"] == "/metrics" for e in endpoints)


def _env_it_needs(config: dict[str, Any]) -> set[str]:
    """The environment variables the config names (from the Secret in a cluster)."""
    auth = config.get("auth", {})
    names = {
        ep["api_key_env"]
        for m in config["models"]
        for ep in m.get("endpoints", [])
        if "api_key_env" in ep
    }
    names |= {k["key_env"] for k in auth.get("keys", []) if "key_env" in k}
    if auth.get("enabled"):
        names.add(auth.get("secret_env", "SWITCHYARD_KEY_SECRET"))
    return names


@pytest.mark.parametrize("name", SCENARIOS)
def test_gateway_settings_accept_the_rendered_config(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = gateway_config(objects(scenario(name)))
    for var in _env_it_needs(config):
        monkeypatch.setenv(var, "test-value")
    settings = build_settings(with_local_artifacts(config))
    assert settings.server.host == "0.0.0.0"
    assert all(m.endpoints or m.adapter for m in settings.models)


def test_minimal_scenario_renders_under_400_lines() -> None:
    text = manifests(render(scenario("minimal")))
    assert len(text.splitlines()) < 400


def test_moe_fleet_scenario_is_what_switchyard_plan_writes(tmp_path: Path) -> None:
    workload = ROOT / "switchyard" / "data" / "workloads" / "chat.yaml"
    result = CliRunner().invoke(app, ["plan", "--workload", str(workload), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    planned = yaml.safe_load((tmp_path / "helm-values.yaml").read_text(encoding="utf-8"))
    assert scenario("moe-fleet") == planned, (
        "ci/moe-fleet-values.yaml is stale: re-run the command in its header"
    )
    header = (CHART / "ci" / "moe-fleet-values.yaml").read_text(encoding="utf-8")
    assert "switchyard plan --workload switchyard/data/workloads/chat.yaml" in header


def test_moe_fleet_spans_gpu_vendors_and_serves_a_moe_model() -> None:
    pools = scenario("moe-fleet")["vllm"]["pools"]
    resources = {r for p in pools for r in p["resources"]["limits"]}
    assert len(resources) >= 2 or len({tuple(p["nodeSelector"].items()) for p in pools}) >= 2
    assert any("A3B" in p["model"] for p in pools)  # Qwen3-30B-A3B: 3B of 30B active
