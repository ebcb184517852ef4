"""Bad values stop the render with a message that says what to fix: the schema for shapes,
``fail`` in the templates for what a schema cannot express."""

from __future__ import annotations

import copy
from typing import Any

import helm_python as helm
import pytest

from tests.helm.chart import render, scenario


def _minimal(**changes: Any) -> dict[str, Any]:
    values = copy.deepcopy(scenario("minimal"))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = values
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return values


def _error(values: dict[str, Any]) -> str:
    with pytest.raises(helm.HelmError) as caught:
        render(values)
    return str(caught.value)


def test_pool_without_model_fails_naming_the_missing_property() -> None:
    values = _minimal()
    del values["vllm"]["pools"][0]["model"]
    message = _error(values)
    assert "/vllm/pools/0" in message and "missing property 'model'" in message


def test_pool_name_that_is_not_a_dns_label_fails_the_schema() -> None:
    values = _minimal()
    values["vllm"]["pools"][0]["name"] = "Llama_L4"
    message = _error(values)
    assert "/vllm/pools/0/name" in message and "does not match pattern" in message


def test_misspelt_top_level_key_fails_instead_of_being_ignored() -> None:
    values = _minimal()
    values["gatway"] = {"replicas": 3}
    assert "additional properties 'gatway' not allowed" in _error(values)


def test_wrong_type_fails_naming_the_field() -> None:
    message = _error(_minimal(gateway__replicas="three"))
    assert "/gateway/replicas" in message and "want integer" in message


def test_no_models_at_all_fails_saying_where_models_come_from() -> None:
    values = _minimal()
    values["vllm"]["pools"] = []
    values["gateway"]["models"] = []
    assert "no models: set vllm.pools" in _error(values)


def test_several_replicas_with_routers_and_no_redis_fail() -> None:
    values = _minimal(gateway__replicas=3)
    values["gateway"]["config"] = {"routers": [{"name": "auto", "artifact": "/x"}]}
    message = _error(values)
    assert "redis.enabled=true or redis.external.url" in message


def test_autoscaling_counts_as_several_replicas_for_the_redis_check() -> None:
    values = _minimal(gateway__autoscaling={"enabled": True, "maxReplicas": 4})
    values["gateway"]["config"] = {"routers": [{"name": "auto", "artifact": "/x"}]}
    assert "redis" in _error(values)


def test_auth_without_a_secret_fails() -> None:
    values = _minimal(gateway__config={"auth": {"enabled": True}})
    assert "gateway.apiKeys.existingSecret" in _error(values)


def test_pool_setting_its_own_port_fails() -> None:
    values = _minimal()
    values["vllm"]["pools"][0]["args"] += ["--port", "9000"]
    assert "vllm.pools[0].args: --port" in _error(values)


def test_duplicate_pool_names_fail() -> None:
    values = _minimal()
    values["vllm"]["pools"].append(copy.deepcopy(values["vllm"]["pools"][0]))
    assert 'the name "llama-l4" is used twice' in _error(values)


def test_model_without_endpoints_or_pool_fails_naming_it() -> None:
    values = _minimal()
    values["gateway"]["models"].append(
        {"name": "orphan", "price_input_per_mtok": 1, "price_output_per_mtok": 1}
    )
    assert '"orphan" has no endpoints' in _error(values)


def test_object_names_over_63_characters_fail() -> None:
    values = _minimal(fullnameOverride="a-rather-long-release-name-for-the-switchyard-gateway")
    assert "longer than 63 characters" in _error(values)


def test_both_redis_sources_fail() -> None:
    values = _minimal(redis={"enabled": True, "external": {"url": "redis://r:6379/0"}})
    assert "either redis.enabled" in _error(values)
