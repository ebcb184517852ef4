"""How the chart points the gateway at the vLLM pods: a headless Service per pool (next to
the ClusterIP one), DNS discovery of its pods by default with weight and max_num_seqs per pod,
EndpointSlices with the RBAC they need, or the old one-Service-per-pool endpoint."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.helm.chart import RELEASE, find, gateway_config, objects, one, render, scenario

GATEWAY = f"{RELEASE}-switchyard"


def with_discovery(name: str, mode: str) -> dict[str, Any]:
    values = copy.deepcopy(scenario(name))
    values.setdefault("gateway", {})["discovery"] = {
        "mode": mode, "intervalSeconds": 2, "clusterDomain": "cluster.local"
    }  # fmt: skip
    return values


def test_each_pool_has_a_headless_service_of_ready_pods_beside_its_cluster_ip_one() -> None:
    objs = objects(scenario("minimal"))
    pool = f"{GATEWAY}-vllm-llama-l4"
    assert one(objs, "Service", pool)["spec"].get("clusterIP") != "None"
    headless = one(objs, "Service", f"{pool}-pods")["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["publishNotReadyAddresses"] is False
    assert headless["selector"] == one(objs, "Service", pool)["spec"]["selector"]


def test_dns_discovery_is_the_default_and_resolves_the_headless_service() -> None:
    endpoint = gateway_config(objects(scenario("minimal")))["models"][0]["endpoints"][0]
    assert endpoint == {
        "discover": {
            "kind": "dns",
            "name": f"{GATEWAY}-vllm-llama-l4-pods.llm.svc.cluster.local.",
            "port": 8000,
            "interval_s": 5,
        },
        "weight": 1.0,
        "max_num_seqs": 128,
    }
    assert not find(objects(scenario("minimal")), "Role")


def test_a_planned_pool_weight_is_split_over_its_pods() -> None:
    config = gateway_config(objects(scenario("kubernetes-discovery")))
    weights = [ep["weight"] for ep in config["models"][0]["endpoints"]]
    assert weights == pytest.approx([0.7 / 2, 0.3 / 3])  # the pools keep their 70/30 split


def test_kubernetes_discovery_watches_endpointslices_with_a_role_allowing_only_that() -> None:
    objs = objects(scenario("kubernetes-discovery"))
    source = gateway_config(objs)["models"][0]["endpoints"][0]["discover"]
    assert source == {
        "kind": "kubernetes", "name": f"{GATEWAY}-vllm-llama-h100-pods", "namespace": "llm",
        "port": 8000, "interval_s": 5,
    }  # fmt: skip
    rules = one(objs, "Role")["rules"]
    assert rules == [
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
         "verbs": ["get", "list", "watch"]}
    ]  # fmt: skip
    binding = one(objs, "RoleBinding")
    assert binding["subjects"][0]["name"] == GATEWAY
    pod = one(objs, "Deployment", GATEWAY)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == one(objs, "ServiceAccount")["metadata"]["name"]


def test_service_mode_keeps_one_cluster_ip_endpoint_per_pool() -> None:
    values = with_discovery("ha", "service")
    config = gateway_config(objects(values))
    mixtral = next(m for m in config["models"] if m["name"] == "mistralai/mixtral-8x7b-chat")
    endpoint = mixtral["endpoints"][0]
    assert endpoint["url"].endswith(".llm.svc:8000/v1") and "-pods" not in endpoint["url"]
    assert (endpoint["weight"], endpoint["max_num_seqs"]) == (2, 2 * 128)


def test_an_unknown_discovery_mode_is_refused_by_the_schema() -> None:
    with pytest.raises(Exception, match="mode"):
        render(with_discovery("minimal", "consul"))
