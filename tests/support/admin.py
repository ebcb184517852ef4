"""A gateway with its admin API on, started from a config file (so a reload re-reads it),
for the admin tests of ``switchyard.gateway.admin`` and ``switchyard.gateway.tenancy.admin``:
the admin key, a static API key, a tenant with a budget, and helpers to call both APIs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from openai.types.chat import ChatCompletionMessageParam
from prometheus_client import CollectorRegistry

from switchyard.gateway.app import create_app
from switchyard.gateway.settings import load_settings
from switchyard.gateway.tenancy.keys import new_key
from tests.support.gateways import Gateway, Simulator, model_entry
from tests.support.servers import ServerThread

PROMPT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi!"}]
ADMIN_KEY = "admin-" + "a" * 24
SECRET = "admin-test-secret-value"
ROUTES = [  # every admin route that needs no routing; each must refuse a bad admin key
    ("POST", "/admin/keys"),
    ("GET", "/admin/keys"),
    ("PATCH", "/admin/keys/key_x"),
    ("DELETE", "/admin/keys/key_x"),
    ("GET", "/admin/spend"),
    ("GET", "/admin/config"),
    ("POST", "/admin/config/reload"),
    ("GET", "/admin/backends"),
]


@dataclass
class Stack:
    """The running gateway, its simulator, the config as written and where, the static key."""

    gateway: Gateway
    sim: Simulator
    config: dict[str, Any]
    path: Path
    static_key: str

    def admin(self, key: str | None = ADMIN_KEY) -> httpx.Client:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=f"{self.gateway.url}/admin", headers=headers, timeout=10)

    def sdk(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.gateway.base_url, api_key=key, max_retries=0)

    def chat(self, key: str, model: str = "m") -> str:
        with self.sdk(key) as client:
            reply = client.chat.completions.create(model=model, messages=PROMPT, max_tokens=3)
        return reply.choices[0].message.content or ""

    def models(self, key: str) -> list[str]:
        with self.sdk(key) as client:
            return sorted(m.id for m in client.models.list())

    def write(self, config: dict[str, Any]) -> None:
        self.path.write_text(yaml.safe_dump(config), encoding="utf-8")


@contextmanager
def admin_stack(
    tmp_path: Path, simulator: Callable[..., Simulator], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    """A gateway started from ``tmp_path/switchyard.yaml``: model "m", auth on, one static
    key ("ops", in env TEST_KEY_OPS), tenant "acme" with a budget, the admin key set."""
    static_key = new_key()
    monkeypatch.setenv("SWITCHYARD_KEY_SECRET", SECRET)
    monkeypatch.setenv("SWITCHYARD_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.setenv("TEST_KEY_OPS", static_key)
    sim = simulator("m")
    config: dict[str, Any] = {
        "models": [model_entry("m", sim.base_url)],
        "auth": {
            "enabled": True,
            "keys": [{"name": "ops", "key_env": "TEST_KEY_OPS"}],
            "tenants": [{"name": "acme", "budget_usd": 5.0}],
        },
    }
    path = tmp_path / "switchyard.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    settings = load_settings(path)
    registry = CollectorRegistry()
    server = ServerThread(create_app(settings, registry, config_path=path)).start()
    gateway = Gateway(server, registry, settings)
    try:
        yield Stack(gateway, sim, config, path, static_key)
    finally:
        gateway.client.close()
        server.stop()


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The error object of ``response``, which must have ``status`` and OpenAI's error shape."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error
