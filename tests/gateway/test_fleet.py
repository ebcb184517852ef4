"""Fleet-wide config reload over a real redis-server: a reload through one replica reaches the
other within ``routing.refresh_s``; an invalid file reaches none; a replica whose own file
lags behind waits for it; a Redis outage leaves the reload local. The same on a Redis Cluster
and behind Sentinel.

The routers' part (candidates, prices in decisions) is in tests/gateway/routing/test_reload.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.config_files import (
    ADMIN_KEY,
    FileGateways,
    eventually,
    price_out,
    reload,
    running,
    write,
)
from tests.support.gateways import Gateway, Simulator, model_entry
from tests.support.redis import RedisServer, command
from tests.support.redis_topologies import RedisClusterSet, RedisSentinelSet

REFRESH_S = 0.2
WITHIN = REFRESH_S * 10  # polling slack on a loaded CI machine


@pytest.fixture
def replicas(monkeypatch: pytest.MonkeyPatch) -> Iterator[FileGateways]:
    monkeypatch.setenv("SWITCHYARD_ADMIN_KEY", ADMIN_KEY)
    gateways = FileGateways()
    yield gateways
    gateways.stop()


def fleet_config(sim: Simulator, redis_server: RedisServer | None, prefix: str) -> dict[str, Any]:
    url = None if redis_server is None else redis_server.url
    return {
        "models": [model_entry("m", sim.base_url, price_out=2.0)],
        "state": {"redis_url": url, "key_prefix": prefix},
        "routing": {"refresh_s": REFRESH_S},
    }


def test_a_reload_through_one_replica_reaches_the_other_within_refresh_s(
    tmp_path: Path,
    simulator: Callable[..., Simulator],
    redis_server: RedisServer,
    replicas: FileGateways,
) -> None:
    sim, path = simulator("m"), tmp_path / "switchyard.yaml"
    config = fleet_config(sim, redis_server, "fleet1")
    write(path, config)
    a, b = replicas.start(path), replicas.start(path)

    config["models"] = [
        model_entry("m", sim.base_url, price_out=7.0),
        model_entry("n", sim.base_url, upstream_model="m"),
    ]
    write(path, config)
    response = reload(a)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["fleet"] is True and body["config_version"] == 1
    assert body["models"] == {"added": ["n"], "removed": [], "changed": ["m"]}
    assert price_out(a, "m") == 7.0
    assert eventually(lambda: price_out(b, "m") == 7.0, WITHIN)
    assert [m["name"] for m in running(b)["models"]] == ["m", "n"]
    assert b.client.post("/v1/chat/completions", json={"model": "n", "messages": [
        {"role": "user", "content": "hi"}]}).status_code == 200  # fmt: skip
    assert a.metric("switchyard_config_version") == 1
    assert eventually(lambda: b.metric("switchyard_config_version") == 1, WITHIN)


def test_a_reload_reaches_the_other_replica_through_a_redis_cluster(
    tmp_path: Path,
    simulator: Callable[..., Simulator],
    redis_cluster: RedisClusterSet,
    replicas: FileGateways,
) -> None:
    reaches_the_other_replica(tmp_path, simulator("m"), redis_cluster.url, replicas)


def test_a_reload_reaches_the_other_replica_through_redis_sentinel(
    tmp_path: Path,
    simulator: Callable[..., Simulator],
    redis_sentinels: RedisSentinelSet,
    replicas: FileGateways,
) -> None:
    reaches_the_other_replica(tmp_path, simulator("m"), redis_sentinels.url, replicas)


def reaches_the_other_replica(
    tmp_path: Path, sim: Simulator, url: str, replicas: FileGateways
) -> None:
    path = tmp_path / "switchyard.yaml"
    config = fleet_config(sim, redis_server=None, prefix="fleet-topology")
    config["state"]["redis_url"] = url
    write(path, config)
    a, b = replicas.start(path), replicas.start(path)
    config["models"] = [model_entry("m", sim.base_url, price_out=5.0)]
    write(path, config)
    body = reload(a).json()
    assert body["fleet"] is True and body["config_version"] >= 1
    assert eventually(lambda: price_out(b, "m") == 5.0, WITHIN)


def test_an_invalid_file_changes_nothing_on_any_replica(
    tmp_path: Path,
    simulator: Callable[..., Simulator],
    redis_server: RedisServer,
    replicas: FileGateways,
) -> None:
    sim, path = simulator("m"), tmp_path / "switchyard.yaml"
    write(path, fleet_config(sim, redis_server, "fleet2"))
    a, b = replicas.start(path), replicas.start(path)
    path.write_text("models: [{name: m}]", encoding="utf-8")
    response = reload(b)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_config"
    assert command(redis_server.port, "EXISTS", "{fleet2}:config") == b":0\r\n"  # unpublished
    for replica in (a, b):
        assert price_out(replica, "m") == 2.0
        assert replica.metric("switchyard_config_version") == 0


def test_a_replica_whose_file_lags_applies_it_once_it_matches(
    tmp_path: Path,
    simulator: Callable[..., Simulator],
    redis_server: RedisServer,
    replicas: FileGateways,
) -> None:
    sim = simulator("m")
    config = fleet_config(sim, redis_server, "fleet3")
    path_a, path_b = tmp_path / "a.yaml", tmp_path / "b.yaml"  # two pods' copies of a ConfigMap
    write(path_a, config)
    write(path_b, config)
    a, b = replicas.start(path_a), replicas.start(path_b)
    config["models"] = [model_entry("m", sim.base_url, price_out=9.0)]
    write(path_a, config)
    assert reload(a).json()["fleet"] is True
    assert not eventually(lambda: price_out(b, "m") != 2.0, REFRESH_S * 3)  # b's file: old
    write(path_b, config)  # the ConfigMap reaches b's pod
    assert eventually(lambda: price_out(b, "m") == 9.0, WITHIN)
    assert eventually(lambda: b.metric("switchyard_config_version") == 1, WITHIN)


def test_a_reload_during_a_redis_outage_applies_here_and_is_published_once_it_is_back(
    tmp_path: Path,
    simulator: Callable[..., Simulator],
    redis_server: RedisServer,
    replicas: FileGateways,
) -> None:
    sim, path = simulator("m"), tmp_path / "switchyard.yaml"
    config = fleet_config(sim, redis_server, "fleet4")
    write(path, config)
    a, b = replicas.start(path), replicas.start(path)
    redis_server.stop()
    config["models"] = [model_entry("m", sim.base_url, price_out=3.0)]
    write(path, config)
    response = reload(a)
    assert response.status_code == 200, response.text
    assert response.json()["fleet"] is False
    assert "redis unavailable" in response.json()["fleet_note"]
    assert price_out(a, "m") == 3.0 and price_out(b, "m") == 2.0

    redis_server.start()  # empty: the reload made meanwhile is published then
    assert eventually(lambda: price_out(b, "m") == 3.0, WITHIN)
    config["models"] = [model_entry("m", sim.base_url, price_out=4.0)]
    write(path, config)
    assert reload(a).json()["fleet"] is True
    assert eventually(lambda: price_out(b, "m") == 4.0, WITHIN)


def test_without_a_state_store_a_reload_says_it_stayed_local(
    tmp_path: Path, simulator: Callable[..., Simulator], replicas: FileGateways
) -> None:
    path = tmp_path / "switchyard.yaml"
    config: dict[str, Any] = {"models": [model_entry("m", simulator("m").base_url)]}
    write(path, config)
    gateway = replicas.start(path)
    body = reload(gateway).json()
    assert body["fleet"] is False and "no state.redis_url" in body["fleet_note"]


def test_adding_routers_to_a_gateway_started_without_any_needs_a_restart(
    tmp_path: Path, simulator: Callable[..., Simulator], replicas: FileGateways
) -> None:
    from switchyard.resources import default_router

    path = tmp_path / "switchyard.yaml"
    name = "gpt-3.5-turbo-1106"  # a model the shipped router knows
    config: dict[str, Any] = {"models": [model_entry(name, simulator(name).base_url)]}
    write(path, config)
    gateway: Gateway = replicas.start(path)
    config["routers"] = [{"name": "smart", "artifact": str(default_router())}]
    write(path, config)
    body = reload(gateway).json()
    assert body["routers"]["added"] == ["smart"]
    assert body["restart_required"] == ["routers"]
