"""Gateways started from a YAML file, as ``switchyard serve`` does, so that a reload re-reads
it; and the admin calls a reload test makes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client import CollectorRegistry

from switchyard.gateway.app import create_app
from switchyard.gateway.connections import protocol
from switchyard.gateway.settings import load_settings
from tests.support.gateways import Gateway
from tests.support.servers import ServerThread

ADMIN_KEY = "admin-" + "r" * 24  # set as SWITCHYARD_ADMIN_KEY by the tests that use it


def write(path: Path, config: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(config), encoding="utf-8")


class FileGateways:
    """Starts gateways from config files; ``stop()`` stops them all."""

    def __init__(self) -> None:
        self.started: list[Gateway] = []

    def start(self, path: Path) -> Gateway:
        settings = load_settings(path)
        registry = CollectorRegistry()
        app = create_app(settings, registry, config_path=path)
        server = ServerThread(app, http=protocol(settings.server)).start()
        gateway = Gateway(server, registry, settings)
        self.started.append(gateway)
        return gateway

    def stop(self) -> None:
        for gateway in self.started:
            gateway.client.close()
            gateway.server.stop()


def admin(gateway: Gateway, method: str, path: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    return gateway.client.request(method, f"/admin{path}", headers=headers)


def reload(gateway: Gateway) -> httpx.Response:
    return admin(gateway, "POST", "/config/reload")


def running(gateway: Gateway) -> dict[str, Any]:
    """The config the gateway serves now (GET /admin/config)."""
    response = admin(gateway, "GET", "/config")
    assert response.status_code == 200, response.text
    config: dict[str, Any] = response.json()
    return config


def price_out(gateway: Gateway, model: str) -> float:
    return float(
        next(m for m in running(gateway)["models"] if m["name"] == model)["price_output_per_mtok"]
    )


def eventually(check: Callable[[], bool], timeout: float) -> bool:
    """Whether ``check()`` holds within ``timeout`` seconds (polled every 20 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()
