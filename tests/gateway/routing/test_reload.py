"""A config reload covers the routers: candidates, prices and cost weights apply at once (on
every replica sharing a Redis), bandits of unchanged routers are kept, and what needs a restart
is named. Real embedder, shipped router, simulators, redis-server; gateways started from a
YAML file as ``switchyard serve`` does."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from switchyard.resources import default_router
from tests.support.config_files import ADMIN_KEY, FileGateways, admin, eventually, reload, write
from tests.support.gateways import Gateway, Simulator
from tests.support.redis import RedisServer
from tests.support.routed import CANDIDATES, routed_settings

REFRESH_S = 0.2
WITHIN = REFRESH_S * 10
GPT35 = "gpt-3.5-turbo-1106"
MESSAGES = [{"role": "user", "content": "Write a haiku about rivers."}]


@pytest.fixture
def files(monkeypatch: pytest.MonkeyPatch) -> Iterator[FileGateways]:
    monkeypatch.setenv("SWITCHYARD_ADMIN_KEY", ADMIN_KEY)
    gateways = FileGateways()
    yield gateways
    gateways.stop()


@pytest.fixture
def config(simulator: Callable[..., Simulator], embedder_cache: Path) -> dict[str, Any]:
    """Router "smart" over CANDIDATES (each a zero-latency simulator), shared state read
    every REFRESH_S."""
    urls = {name: simulator(name).base_url for name, _, _ in CANDIDATES}
    settings = routed_settings(urls, embedder_cache, refresh_s=REFRESH_S)
    settings["routers"][0]["bandit"] = {"noise": 0.0}
    return settings


def route(gateway: Gateway, **headers: str) -> httpx.Response:
    body = {"model": "smart", "messages": MESSAGES, "max_tokens": 4}
    return gateway.client.post("/v1/chat/completions", json=body, headers=headers)


def candidates(gateway: Gateway) -> list[str]:
    card = gateway.client.get("/v1/models/smart").json()
    return list(card["candidates"])


def shows(gateway: Gateway, expected: list[str]) -> bool:
    return candidates(gateway) == expected


def bandit_step(gateway: Gateway) -> int:
    return int(admin(gateway, "GET", "/routing").json()["routers"]["smart"]["step"])


def set_price_out(config: dict[str, Any], model: str, price: float) -> None:
    entry = next(m for m in config["models"] if m["name"] == model)
    entry["price_output_per_mtok"] = price


def test_prices_and_candidates_reloaded_through_one_replica_apply_on_both(
    tmp_path: Path, config: dict[str, Any], redis_server: RedisServer, files: FileGateways
) -> None:
    path = tmp_path / "switchyard.yaml"
    config["state"] = {"redis_url": redis_server.url, "key_prefix": "reload1"}
    write(path, config)
    a, b = files.start(path), files.start(path)
    capped = {"x-switchyard-max-price": "5"}
    assert route(b, **capped).status_code == 200

    config["routers"][0]["candidates"] = [GPT35]
    set_price_out(config, GPT35, 40.0)
    write(path, config)
    response = reload(a)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["routers"]["changed"] == ["smart"] and body["models"]["changed"] == [GPT35]
    assert body["restart_required"] == [] and body["fleet"] is True

    for replica in (a, b):
        assert eventually(partial(shows, replica, [GPT35]), WITHIN)
        for _ in range(3):
            routed = route(replica)
            assert routed.status_code == 200 and routed.headers["x-switchyard-model"] == GPT35
        refused = route(replica, **capped)  # its one candidate now costs 40 per 1M out
        assert refused.status_code == 400, refused.text
        assert "no candidate model is left" in refused.json()["error"]["message"]


def test_a_router_keeps_its_bandit_unless_its_bandit_settings_change(
    tmp_path: Path, config: dict[str, Any], files: FileGateways
) -> None:
    path = tmp_path / "switchyard.yaml"
    write(path, config)
    gateway = files.start(path)
    decision = route(gateway).headers["x-switchyard-decision-id"]
    feedback = {"decision_id": decision, "score": 1.0}
    assert gateway.client.post("/v1/feedback", json=feedback).status_code == 200
    assert eventually(lambda: bandit_step(gateway) == 1, 5)

    config["routers"][0]["cost_weight"] = 3.0
    write(path, config)
    assert reload(gateway).json()["restart_required"] == []
    assert bandit_step(gateway) == 1  # same artifact, same bandit: kept

    config["routers"][0]["bandit"] = {"noise": 0.01}
    write(path, config)
    assert reload(gateway).json()["restart_required"] == []  # no shared state: remade here
    assert bandit_step(gateway) == 0
    assert route(gateway).status_code == 200


def test_a_changed_bandit_with_shared_statistics_is_named_and_keeps_running(
    tmp_path: Path, config: dict[str, Any], redis_server: RedisServer, files: FileGateways
) -> None:
    path = tmp_path / "switchyard.yaml"
    config["state"] = {"redis_url": redis_server.url, "key_prefix": "reload2"}
    write(path, config)
    gateway = files.start(path)
    config["routers"][0]["bandit"] = {"noise": 0.0, "dim": 16}
    config["routing"]["embedder_threads"] = 2
    write(path, config)
    body = reload(gateway).json()
    assert body["restart_required"] == ["routing.embedder_threads", "routers.smart.bandit"]
    assert route(gateway).status_code == 200


def test_an_artifact_that_cannot_be_loaded_changes_nothing(
    tmp_path: Path, config: dict[str, Any], files: FileGateways
) -> None:
    path = tmp_path / "switchyard.yaml"
    write(path, config)
    gateway = files.start(path)
    broken = tmp_path / "broken-router"
    shutil.copytree(default_router(), broken)
    manifest = (broken / "router.json").read_text(encoding="utf-8")
    (broken / "router.json").write_text(
        manifest.replace('"all-MiniLM-L6-v2', '"another-embedder'), encoding="utf-8"
    )
    config["routers"][0]["artifact"] = str(broken)
    config["routers"][0]["candidates"] = [GPT35]
    write(path, config)
    response = reload(gateway)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_config"
    assert len(candidates(gateway)) == len(CANDIDATES)
    shown = admin(gateway, "GET", "/config").json()["routers"][0]
    assert shown["artifact"] == str(default_router()) and shown["candidates"] is None
    assert route(gateway).status_code == 200


def test_routed_requests_in_flight_during_reloads_all_succeed(
    tmp_path: Path, config: dict[str, Any], files: FileGateways
) -> None:
    path = tmp_path / "switchyard.yaml"
    write(path, config)
    gateway = files.start(path)
    everyone = [name for name, _, _ in CANDIDATES]

    def send(_: int) -> int:
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            body = {"model": "smart", "messages": MESSAGES, "max_tokens": 4}
            return client.post("/v1/chat/completions", json=body).status_code

    with ThreadPoolExecutor(6) as pool:
        sent = pool.map(send, range(48))
        for i in range(6):
            config["routers"][0]["candidates"] = everyone[: 2 + i % 3]
            config["routers"][0]["bandit"] = {"noise": 0.0, "prior_strength": 100.0 + i}
            write(path, config)
            assert reload(gateway).status_code == 200
        assert set(sent) == {200}
