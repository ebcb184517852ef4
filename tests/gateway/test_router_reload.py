"""The reload plan of the routers: what is kept, loaded again, remade, dropped, or named as
needing a restart, from the running routers and the new settings (the shipped router's
artifact, copied where a test changes its files)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from switchyard.gateway.router_reload import Running, fingerprint, plan, routing_restart
from switchyard.gateway.settings import RoutingConfig, Settings, build_settings
from switchyard.resources import default_router
from tests.support.gateways import model_entry

MODELS = ("gpt-3.5-turbo-1106", "gpt-4-1106-preview")


def settings(*routers: dict[str, Any]) -> Settings:
    models = [model_entry(name, "http://127.0.0.1:9/v1") for name in MODELS]
    return build_settings({"models": models, "routers": list(routers)})


def router(name: str = "smart", artifact: Path = default_router(), **extra: Any) -> dict[str, Any]:
    return {"name": name, "artifact": str(artifact), **extra}


def running(config: Settings) -> dict[str, Running]:
    return {
        r.name: Running(r, fingerprint(r.artifact), MODELS, config.candidates(r))
        for r in config.routers
    }


def test_an_unchanged_artifact_and_bandit_keep_the_router_whatever_else_changes() -> None:
    before = settings(router(cost_weight=1.0))
    after = settings(router(cost_weight=5.0, candidates=[MODELS[0]], latency_weight=0.5))
    todo = plan(running(before), after, has_learner=True, shared=True)
    assert todo.keep == ["smart"] and not (todo.load or todo.bandits or todo.drop)
    assert todo.restart == []


def test_a_retrained_artifact_saved_over_the_old_one_is_loaded_again(tmp_path: Path) -> None:
    artifact = tmp_path / "router"
    shutil.copytree(default_router(), artifact)
    before = settings(router(artifact=artifact, bandit={"enabled": False}))
    now = running(before)
    manifest = artifact / "router.json"
    stat = manifest.stat()
    os.utime(manifest, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    todo = plan(now, before, has_learner=False, shared=False)
    assert todo.load == ["smart"] and todo.keep == [] and todo.restart == []


def test_a_changed_bandit_is_remade_locally_but_needs_a_restart_when_shared() -> None:
    before = settings(router())
    after = settings(router(bandit={"dim": 16}))
    local = plan(running(before), after, has_learner=True, shared=False)
    assert local.load == ["smart"] and local.drop == ["smart"] and local.bandits == ["smart"]
    shared = plan(running(before), after, has_learner=True, shared=True)
    assert shared.held == ["smart"] and not (shared.load or shared.drop or shared.bandits)
    assert shared.restart == ["routers.smart.bandit"]


def test_a_new_bandit_without_a_learner_runs_offline_and_is_named() -> None:
    before = settings(router(bandit={"enabled": False}))
    after = settings(router(bandit={"enabled": False}), router("fresh"))
    todo = plan(running(before), after, has_learner=False, shared=False)
    assert todo.keep == ["smart"] and todo.load == ["fresh"] and todo.bandits == []
    assert todo.restart == ["routers.fresh.bandit"]


def test_a_removed_router_drops_its_bandit() -> None:
    before = settings(router(), router("other"))
    todo = plan(running(before), settings(router()), has_learner=True, shared=True)
    assert todo.keep == ["smart"] and todo.drop == ["other"]


def test_routing_fields_read_at_start_are_named() -> None:
    old = RoutingConfig()
    new = RoutingConfig(embedder_threads=2, refresh_s=0.5, max_batch=8, batch_wait_ms=1.0)
    assert routing_restart(old, new) == ["routing.embedder_threads", "routing.refresh_s"]
