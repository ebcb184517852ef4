"""Rendering the chart offline with Helm's own library (helm-python-sdk), for the tests."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

from switchyard.resources import data_path

ROOT = Path(__file__).parents[2]
CHART = ROOT / "helm" / "switchyard"
SCENARIOS = sorted(p.stem.removesuffix("-values") for p in (CHART / "ci").glob("*-values.yaml"))
RELEASE = "sy"
NAMESPACE = "llm"
KUBE_VERSIONS = ("1.29", "1.31")
CUSTOM_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}


@cache
def chart() -> helm.Chart:
    return helm.Chart.load(CHART)


def scenario(name: str) -> dict[str, Any]:
    values = yaml.safe_load((CHART / "ci" / f"{name}-values.yaml").read_text(encoding="utf-8"))
    return dict(values or {})


def render(values: dict[str, Any], chart_dir: Path | None = None) -> dict[str, str]:
    """Template path -> rendered text, as ``helm template`` would print it (NOTES.txt too)."""
    if chart_dir is None:
        return chart().render(values, name=RELEASE, namespace=NAMESPACE)
    with helm.Chart.load(chart_dir) as other:
        return other.render(values, name=RELEASE, namespace=NAMESPACE)


def manifests(rendered: dict[str, str]) -> str:
    """The Kubernetes objects' YAML stream (what ``helm template`` prints, without NOTES)."""
    return "\n---\n".join(
        text.strip() for path, text in sorted(rendered.items())
        if path.endswith(".yaml") and text.strip()
    )  # fmt: skip


def objects(values: dict[str, Any], chart_dir: Path | None = None) -> list[dict[str, Any]]:
    docs = yaml.safe_load_all(manifests(render(values, chart_dir)))
    return [doc for doc in docs if doc]


def find(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        o for o in objs
        if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]  # fmt: skip


def one(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(objs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def gateway_config(objs: list[dict[str, Any]]) -> dict[str, Any]:
    """The gateway config file the chart renders into its ConfigMap."""
    config_map = one(objs, "ConfigMap", f"{RELEASE}-switchyard")
    return dict(yaml.safe_load(config_map["data"]["gateway.yaml"]))


def with_local_artifacts(config: dict[str, Any]) -> dict[str, Any]:
    """The config with its routers' artifacts under the image's /opt/switchyard/data (where the
    Dockerfile copies the package data) pointed at the package data here, for Settings."""
    for router in config.get("routers", []):
        router["artifact"] = router["artifact"].replace("/opt/switchyard/data", str(data_path()))
    return config
