"""With its default values the chart installs the demo, as ``switchyard demo`` runs it: the
gateway in front of one simulated vLLM pool per demo model (the simulator image), the models
named and priced alike, and "auto" routing over them with the router shipped in the image.
Real pools replace it with ``demo.enabled=false``."""

from __future__ import annotations

import copy
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
from typer.testing import CliRunner

from switchyard.cli import app
from switchyard.cli.demo import DEMO_MODELS
from switchyard.gateway.settings import build_settings
from tests.helm.chart import (
    CHART,
    CUSTOM_KINDS,
    KUBE_VERSIONS,
    RELEASE,
    find,
    gateway_config,
    objects,
    one,
    render,
    scenario,
    with_local_artifacts,
)

GATEWAY = f"{RELEASE}-switchyard"
DEFAULTS: dict[str, Any] = {}


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"]
    return containers[0]


def _simulators(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        d for d in find(objs, "Deployment")
        if d["metadata"]["labels"].get("switchyard.io/simulated") == "true"
    ]  # fmt: skip


def _notes(values: dict[str, Any]) -> str:
    return next(text for path, text in render(values).items() if path.endswith("NOTES.txt"))


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
def test_default_values_lint_clean_in_strict_mode(kube: str) -> None:
    report = helm.lint(CHART, DEFAULTS, strict=True, kube_version=f"v{kube}.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert problems == []


def test_default_render_is_valid_kubernetes_in_strict_mode() -> None:
    objs = objects(DEFAULTS)
    assert {o["kind"] for o in objs} == {"ConfigMap", "Deployment", "Service"}
    for obj in objs:
        assert obj["kind"] not in CUSTOM_KINDS
        for kube in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(obj, kube, strict=True)
            except kubernetes_validate.ValidationError as err:
                where = "/".join(map(str, err.path))
                pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} on {kube}: {where}: {err}")


def test_default_render_runs_the_gateway_and_one_simulator_pool_per_demo_model() -> None:
    objs = objects(DEFAULTS)
    gateway = _container(one(objs, "Deployment", GATEWAY))
    assert gateway["image"].startswith("ghcr.io/switchyard/switchyard:")
    simulators = _simulators(objs)
    assert len(simulators) == len(find(objs, "Deployment")) - 1 == len(DEMO_MODELS)
    for seed, (deployment, model) in enumerate(zip(simulators, DEMO_MODELS, strict=True)):
        container = _container(deployment)
        assert container["image"].startswith("ghcr.io/switchyard/switchyard-simulator:")
        assert container["args"] == [
            "--model", model.name, "--preset", model.preset, "--seed", str(seed)
        ]  # fmt: skip
        assert container["ports"] == [{"name": "http", "containerPort": 8000}]
        assert container["readinessProbe"]["httpGet"]["path"] == "/health"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_simulator_args_are_options_of_switchyard_simulate() -> None:
    """The image's entry point is ``switchyard simulate --host 0.0.0.0 --port 8000``."""
    help_text = CliRunner().invoke(app, ["simulate", "--help"], terminal_width=200).output
    for deployment in _simulators(objects(DEFAULTS)):
        options = [a for a in _container(deployment)["args"] if a.startswith("--")]
        assert options
        assert all(option in help_text for option in options), options


def test_demo_models_are_priced_as_switchyard_demo_with_endpoints_on_the_simulator_services() -> (
    None
):
    objs = objects(DEFAULTS)
    models = {m["name"]: m for m in gateway_config(objs)["models"]}
    assert list(models) == [m.name for m in DEMO_MODELS]
    pods_by_label = {
        _pool_label(d["spec"]["template"]["metadata"]["labels"]): d for d in _simulators(objs)
    }
    for demo in DEMO_MODELS:
        model = models[demo.name]
        prices = (model["price_input_per_mtok"], model["price_output_per_mtok"])
        assert prices == (demo.price_in, demo.price_out)
        [endpoint] = model["endpoints"]
        source = endpoint["discover"]
        assert source["kind"] == "dns" and source["port"] == 8000
        service = one(objs, "Service", source["name"].split(".")[0])
        assert service["spec"]["clusterIP"] == "None"
        simulator = pods_by_label[_pool_label(service["spec"]["selector"])]
        assert _container(simulator)["args"][1] == demo.name
        assert set(service["spec"]["selector"].items()) <= set(
            simulator["spec"]["template"]["metadata"]["labels"].items()
        )


def _pool_label(labels: dict[str, str]) -> str:
    return labels["switchyard.io/pool"]


def test_demo_routes_auto_over_its_models_with_the_router_shipped_in_the_image() -> None:
    config = gateway_config(objects(DEFAULTS))
    assert config["routers"] == [
        {
            "name": "auto",
            "artifact": "/opt/switchyard/data/default-router",
            "candidates": [m.name for m in DEMO_MODELS],
            "default": True,
        }
    ]
    settings = build_settings(with_local_artifacts(config))
    assert [r.name for r in settings.routers] == ["auto"]
    assert settings.server.host == "0.0.0.0"


def test_notes_say_the_demo_was_installed_and_how_to_talk_to_it() -> None:
    notes = _notes(DEFAULTS)
    assert "This is the demo (demo.enabled=true)" in notes
    assert all(m.name in notes for m in DEMO_MODELS)
    assert 'Routed: "auto"' in notes
    assert f"port-forward svc/{GATEWAY} 8080:80" in notes
    assert '"model": "auto"' in notes and "from openai import OpenAI" in notes
    assert "set demo.enabled=false" in notes


def test_the_demo_with_monitoring_scrapes_the_simulators() -> None:
    objs = objects({"monitoring": {"podMonitor": {"enabled": True}}})
    selector = one(objs, "PodMonitor")["spec"]["selector"]["matchLabels"]
    for deployment in _simulators(objs):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert set(selector.items()) <= set(labels.items())


def test_disabling_the_demo_installs_the_real_pools_alone() -> None:
    values = scenario("minimal")
    assert values["demo"] == {"enabled": False}
    objs = objects(values)
    assert _simulators(objs) == []
    pool = _container(one(objs, "Deployment", f"{GATEWAY}-vllm-llama-l4"))
    assert pool["image"].startswith("vllm/vllm-openai:")
    config = gateway_config(objs)
    assert [m["name"] for m in config["models"]] == ["Llama-3.1-8B"]
    assert "routers" not in config or config["routers"] == []
    notes = _notes(values)
    assert "demo" not in notes and "Models: Llama-3.1-8B" in notes
    assert '"model": "Llama-3.1-8B"' in notes


def test_real_pools_with_the_demo_left_on_fail_saying_to_turn_it_off() -> None:
    values = copy.deepcopy(scenario("minimal"))
    del values["demo"]
    with pytest.raises(helm.HelmError) as caught:
        render(values)
    assert "set demo.enabled=false" in str(caught.value)


def test_the_demo_on_several_gateway_replicas_needs_redis_for_its_router() -> None:
    with pytest.raises(helm.HelmError) as caught:
        render({"gateway": {"replicas": 2}})
    assert "redis.enabled=true" in str(caught.value)
    config = gateway_config(objects({"gateway": {"replicas": 2}, "redis": {"enabled": True}}))
    assert config["state"]["redis_url"].startswith("redis://")
