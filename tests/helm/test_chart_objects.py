"""What the rendered objects do: pods hardened and probed, pools on their GPUs, the gateway
config pointing at the Services the chart creates, Redis wiring, monitoring objects."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

from switchyard.deploy import rules
from tests.helm.chart import (
    CHART,
    RELEASE,
    find,
    gateway_config,
    objects,
    one,
    scenario,
)

GATEWAY = f"{RELEASE}-switchyard"


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"]
    return containers[0]


def test_gateway_pod_runs_non_root_on_a_read_only_root_filesystem() -> None:
    deployment = one(objects(scenario("minimal")), "Deployment", GATEWAY)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = _container(deployment)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/tmp", "/etc/switchyard"} <= mounts
    assert container["args"] == ["serve", "--config", "/etc/switchyard/gateway.yaml"]


def test_gateway_probes_ready_on_readyz_and_alive_on_healthz() -> None:
    container = _container(one(objects(scenario("minimal")), "Deployment", GATEWAY))
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]["cpu"]


def test_config_change_rolls_the_gateway_pods() -> None:
    def checksum(values: dict[str, Any]) -> str:
        deployment = one(objects(values), "Deployment", GATEWAY)
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    changed = copy.deepcopy(scenario("minimal"))
    changed["gateway"]["models"][0]["price_output_per_mtok"] = 0.1
    assert checksum(scenario("minimal")) != checksum(changed)


def test_every_endpoint_of_a_pool_served_model_discovers_a_rendered_headless_service() -> None:
    objs = objects(scenario("moe-fleet"))
    headless = {
        s["metadata"]["name"] for s in find(objs, "Service") if s["spec"].get("clusterIP") == "None"
    }
    sources = [ep["discover"] for m in gateway_config(objs)["models"] for ep in m["endpoints"]]
    assert len(sources) == len(scenario("moe-fleet")["vllm"]["pools"])
    for source in sources:
        assert source["kind"] == "dns" and source["port"] == 8000
        host = source["name"].split(".")[0]
        assert host in headless and source["name"].endswith(".llm.svc.cluster.local.")


def test_vllm_pool_gets_its_gpus_node_shm_cache_and_health_probe() -> None:
    values = scenario("ha")
    objs = objects(values)
    pool = values["vllm"]["pools"][1]
    deployment = one(objs, "Deployment", f"{GATEWAY}-vllm-{pool['name']}")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    assert deployment["spec"]["replicas"] == pool["replicas"]
    assert container["image"].startswith("vllm/vllm-openai:")
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert pod["nodeSelector"] == pool["nodeSelector"]
    assert pod["tolerations"] == pool["tolerations"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["ports"][0]["containerPort"] == 8000
    assert container["args"][:3] == [pool["model"], "--served-model-name", pool["servedModelName"]]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["shm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Gi"}
    assert volumes["model-cache"]["persistentVolumeClaim"]["claimName"] == "hf-models"


def test_amd_pools_get_the_rocm_image_and_nvidia_pools_the_cuda_one() -> None:
    objs = objects(scenario("moe-fleet"))
    pools = [d for d in find(objs, "Deployment") if d["metadata"]["name"] != GATEWAY]
    limits = {d["metadata"]["name"]: _container(d)["resources"]["limits"] for d in pools}
    amd = [d for d in pools if "amd.com/gpu" in limits[d["metadata"]["name"]]]
    nvidia = [d for d in pools if "nvidia.com/gpu" in limits[d["metadata"]["name"]]]
    assert amd and nvidia  # the scenario has pools of both vendors
    assert len(amd) + len(nvidia) == len(pools)  # and each pool is on one vendor's GPUs
    assert all(_container(d)["image"].startswith("rocm/vllm:") for d in amd)
    assert all(_container(d)["image"].startswith("vllm/vllm-openai:") for d in nvidia)


def test_pool_endpoints_carry_the_weight_and_capacity_of_each_pod() -> None:
    config = gateway_config(objects(scenario("ha")))
    mixtral = next(m for m in config["models"] if m["name"] == "mistralai/mixtral-8x7b-chat")
    assert mixtral["endpoints"][0]["weight"] == 1  # the pool's weight 2 over its 2 pods
    assert mixtral["endpoints"][0]["max_num_seqs"] == 128  # one pod's batch
    mistral = next(m for m in config["models"] if m["name"] == "mistralai/mistral-7b-chat")
    assert mistral["endpoints"][0]["weight"] == 1  # default: one per pod


def test_in_chart_redis_is_the_gateway_state_store() -> None:
    objs = objects(scenario("ha"))
    one(objs, "StatefulSet", f"{GATEWAY}-redis")
    one(objs, "Service", f"{GATEWAY}-redis")
    url = gateway_config(objs)["state"]["redis_url"]
    assert url == f"redis://{GATEWAY}-redis.llm.svc:6379/0"


def test_external_redis_url_from_a_secret_reaches_the_gateway_environment() -> None:
    objs = objects(scenario("external-redis"))
    assert find(objs, "StatefulSet") == []
    assert "state" not in gateway_config(objs)
    env = {e["name"]: e for e in _container(one(objs, "Deployment", GATEWAY))["env"]}
    ref = env["SWITCHYARD_STATE__REDIS_URL"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "switchyard-redis", "key": "url"}


def test_api_keys_come_from_the_existing_secret() -> None:
    container = _container(one(objects(scenario("external-redis")), "Deployment", GATEWAY))
    assert container["envFrom"] == [{"secretRef": {"name": "switchyard-keys"}}]
    mapped = _container(one(objects(scenario("ha")), "Deployment", GATEWAY))
    env = {e["name"]: e.get("valueFrom") for e in mapped["env"]}
    assert env["OPENAI_API_KEY"] == {"secretKeyRef": {"name": "switchyard-keys", "key": "openai"}}


def test_autoscaling_replaces_the_fixed_replica_count_and_pdb_guards_the_pods() -> None:
    objs = objects(scenario("ha"))
    assert "replicas" not in one(objs, "Deployment", GATEWAY)["spec"]
    hpa = one(objs, "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    assert one(objs, "PodDisruptionBudget")["spec"]["minAvailable"] == 2
    spread = one(objs, "Deployment", GATEWAY)["spec"]["template"]["spec"]
    keys = [c["topologyKey"] for c in spread["topologySpreadConstraints"]]
    assert keys == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]


def test_minimal_scenario_renders_no_optional_objects() -> None:
    kinds = sorted(o["kind"] for o in objects(scenario("minimal")))
    # the gateway's Service, the pool's ClusterIP Service and its headless one
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "Service", "Service", "Service"]


def test_prometheus_rule_holds_the_generated_groups_with_the_values_budget() -> None:
    rule = one(objects(scenario("ha")), "PrometheusRule")
    groups = {g["name"]: g for g in rule["spec"]["groups"]}
    assert list(groups) == [g["name"] for g in rules.rule_groups()]
    budget = groups[rules.BUDGET_GROUP]["rules"][0]
    assert budget["record"] == rules.BUDGET_RECORD
    assert budget["expr"] == f"vector(25000 / {rules.HOURS_PER_MONTH})"
    alert = next(r for r in groups["switchyard.alerts.traffic"]["rules"] if "alert" in r)
    assert "{{ $labels.model }}" in alert["annotations"]["summary"]  # left for Prometheus


def test_dashboards_render_nothing_without_files_and_one_config_map_per_file(
    tmp_path: Path,
) -> None:
    values = {**scenario("minimal"), "monitoring": {"dashboards": {"enabled": True}}}
    chart_copy = tmp_path / "switchyard"
    shutil.copytree(CHART, chart_copy)
    for generated in (chart_copy / "dashboards").glob("*.json"):
        generated.unlink()
    plain = find(objects(scenario("minimal"), chart_copy), "ConfigMap")
    assert find(objects(values, chart_copy), "ConfigMap") == plain
    board = {"title": "Switchyard overview", "panels": [{"expr": "{{ not a template }}"}]}
    (chart_copy / "dashboards" / "overview.json").write_text(json.dumps(board))
    dashboards = [
        c for c in find(objects(values, chart_copy), "ConfigMap")
        if c["metadata"]["labels"].get("grafana_dashboard") == "1"
    ]  # fmt: skip
    assert len(dashboards) == 1
    assert json.loads(dashboards[0]["data"]["overview.json"]) == board


def test_vllm_flags_given_with_equals_signs_still_size_the_endpoint() -> None:
    values = copy.deepcopy(scenario("minimal"))
    values["vllm"]["pools"][0]["args"] = ["--max-num-seqs=64"]
    values["vllm"]["pools"][0]["replicas"] = 3
    endpoint = gateway_config(objects(values))["models"][0]["endpoints"][0]
    assert (endpoint["max_num_seqs"], endpoint["weight"]) == (64, 1)


def test_an_external_redis_cluster_or_sentinel_url_reaches_the_gateway_config() -> None:
    for url in ("redis+cluster://10.0.0.1:6379,10.0.0.2:6379",
                "rediss+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster"):  # fmt: skip
        values = copy.deepcopy(scenario("minimal")) | {"redis": {"external": {"url": url}}}
        assert gateway_config(objects(values))["state"]["redis_url"] == url
