"""The admin API as a whole (``switchyard.gateway.admin``): its own key on every route, errors
in OpenAI's shape, the running config (redacted) and its reload from the file, and the
backends' state. The key and spend routes are tested in tests/gateway/tenancy/test_admin.py.

The gateway is started from a YAML file (as ``switchyard serve`` does) so that a reload
re-reads it; every call travels over a real socket, API calls through the openai SDK.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from switchyard.gateway.app import create_app
from switchyard.gateway.settings import load_settings
from switchyard.gateway.tenancy.keys import hash_key, new_key
from tests.support.admin import ADMIN_KEY, PROMPT, ROUTES, SECRET, Stack, error_of
from tests.support.gateways import Gateway, Simulator, model_entry
from tests.support.servers import ServerThread

# --- access ------------------------------------------------------------------------------


def test_without_an_admin_key_configured_every_route_is_403(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SWITCHYARD_ADMIN_KEY")
    with stack.admin() as client:
        for method, path in ROUTES:
            error = error_of(client.request(method, path.removeprefix("/admin")), 403)
            assert error["message"] == "admin API disabled: set SWITCHYARD_ADMIN_KEY"
            assert error["type"] == "permission_error"


def test_a_missing_or_wrong_admin_key_is_401_on_every_route(stack: Stack) -> None:
    for key, code in [
        (None, "missing_admin_key"),
        ("wrong", "invalid_admin_key"),
        (ADMIN_KEY + "x", "invalid_admin_key"),
        (ADMIN_KEY[:-1], "invalid_admin_key"),
        (stack.static_key, "invalid_admin_key"),  # an API key is not an admin key
    ]:
        with stack.admin(key) as client:
            for method, path in ROUTES:
                error = error_of(client.request(method, path.removeprefix("/admin")), 401)
                assert error["type"] == "authentication_error" and error["code"] == code
            bad_body = client.post(  # the key is checked before the body is read
                "/keys", content=b"{not json", headers={"content-type": "application/json"}
            )
            assert error_of(bad_body, 401)["code"] == code


def test_the_sdk_sees_admin_errors_in_openai_shape(stack: Stack) -> None:
    with openai.OpenAI(base_url=stack.gateway.url, api_key="wrong", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError):
            client.get("/admin/keys", cast_to=object)
        with pytest.raises(openai.ConflictError) as caught:
            client.patch("/admin/keys/static_ops", body={}, cast_to=object,
                         options={"headers": {"authorization": f"Bearer {ADMIN_KEY}"}})  # fmt: skip
    assert caught.value.code == "static_key"


# --- config ------------------------------------------------------------------------------


def test_the_config_is_shown_without_secrets(
    tmp_path: Path, simulator: Callable[..., Simulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_key()
    monkeypatch.setenv("SWITCHYARD_KEY_SECRET", SECRET)
    monkeypatch.setenv("SWITCHYARD_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.setenv("TEST_KEY_ENV", key)
    monkeypatch.setenv("UPSTREAM_TOKEN", "upstream-token-value")
    sim = simulator("m")
    with_password = sim.base_url.replace("http://", "http://user:url-password@")
    digest = "ab" * 32
    config: dict[str, Any] = {
        "models": [model_entry("m", with_password)],
        "auth": {
            "enabled": True,
            "keys": [
                {"name": "by-env", "key_env": "TEST_KEY_ENV"},
                {"name": "by-hash", "key_hash": digest},
            ],
        },
    }
    config["models"][0]["endpoints"][0]["api_key_env"] = "UPSTREAM_TOKEN"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with ServerThread(create_app(load_settings(path), config_path=path)) as server:
        response = httpx.get(
            f"{server.url}/admin/config", headers={"authorization": f"Bearer {ADMIN_KEY}"}
        )
    assert response.status_code == 200
    text = response.text
    for secret in (key, digest, SECRET, ADMIN_KEY, "upstream-token-value", "url-password"):
        assert secret not in text
    shown = response.json()
    keys = shown["auth"]["keys"]
    assert keys[0]["key_env"] == "TEST_KEY_ENV" and keys[1]["key_hash"] == "<redacted>"
    assert shown["auth"]["secret_env"] == "SWITCHYARD_KEY_SECRET"
    assert shown["auth"]["admin_key_env"] == "SWITCHYARD_ADMIN_KEY"
    endpoint = shown["models"][0]["endpoints"][0]
    assert endpoint["api_key_env"] == "UPSTREAM_TOKEN"
    assert endpoint["url"] == sim.base_url.replace("http://", "http://<redacted>@")


def test_reloading_without_a_config_file_is_409(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SWITCHYARD_ADMIN_KEY", ADMIN_KEY)
    gw = gateway([model_entry("m", simulator("m").base_url)])
    response = gw.client.post(
        "/admin/config/reload", headers={"authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert "not started from a config file" in error_of(response, 409)["message"]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("models: [unclosed", "is not valid YAML"),
        ("models: []", "models: Tuple should have at least 1 item"),
        ("models: [{name: m}]", "models.0.price_input_per_mtok: Field required"),
        ("models: [{name: m, price_input_per_mtok: 1, price_output_per_mtok: 1, endpoints: "
         "[{url: 'http://127.0.0.1:9/v1'}]}]\nauth: {keys: [{name: k, key_env: UNSET_VAR}]}",
         "environment variable 'UNSET_VAR' is not set"),
    ],
    ids=["not-yaml", "no-models", "missing-field", "unset-env"],
)  # fmt: skip
def test_a_bad_config_file_is_400_and_the_old_config_keeps_serving(
    stack: Stack, content: str, says: str
) -> None:
    before = stack.path.read_text(encoding="utf-8")
    stack.path.write_text(content, encoding="utf-8")
    with stack.admin() as admin:
        error = error_of(admin.post("/config/reload"), 400)
        assert error["code"] == "invalid_config"
        assert says in error["message"] and "the running config is unchanged" in error["message"]
        shown = admin.get("/config").json()
    assert [m["name"] for m in shown["models"]] == ["m"]
    assert stack.chat(stack.static_key)
    assert stack.models(stack.static_key) == ["m"]
    stack.path.write_text(before, encoding="utf-8")


def test_a_good_config_file_is_served_after_a_reload(stack: Stack) -> None:
    sim_n = stack.sim  # "n" is served by the same simulator under its model name
    stack.config["models"].append(model_entry("n", sim_n.base_url, upstream_model="m"))
    late = new_key()
    digest = hash_key(SECRET.encode(), late)
    stack.config["auth"]["keys"].append({"name": "late", "key_hash": digest})
    stack.config["server"] = {"port": 1}
    stack.write(stack.config)
    with pytest.raises(openai.NotFoundError):
        stack.chat(stack.static_key, "n")
    with stack.admin() as admin:
        response = admin.post("/config/reload")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["models"] == {"added": ["n"], "removed": [], "changed": []}
        assert body["auth_changed"] is True
        assert body["restart_required"] == ["server.port"]
        assert "need a restart" in body["note"]
        assert [m["name"] for m in admin.get("/config").json()["models"]] == ["m", "n"]
    assert stack.models(stack.static_key) == ["m", "n"]
    assert stack.chat(stack.static_key, "n")
    assert stack.chat(late)  # a static key added by the reload

    stack.config["models"] = stack.config["models"][:1]
    stack.write(stack.config)
    with stack.admin() as admin:
        assert admin.post("/config/reload").json()["models"]["removed"] == ["n"]
    with pytest.raises(openai.NotFoundError):
        stack.chat(stack.static_key, "n")


# --- backends ----------------------------------------------------------------------------


def test_backends_show_each_endpoints_breaker_and_load(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SWITCHYARD_ADMIN_KEY", ADMIN_KEY)
    good, bad = simulator("m"), simulator("m", error_rate=1.0)
    gw = gateway(
        [model_entry("m", good.base_url), model_entry("b", bad.base_url, upstream_model="m")],
        upstream={"breaker_failures": 1, "max_attempts": 1},
    )
    with openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0) as client:
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(model="b", messages=PROMPT)
        client.chat.completions.create(model="m", messages=PROMPT)
    response = gw.client.get("/admin/backends", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert response.status_code == 200
    rows = {r["model"]: r for r in response.json()["data"]}
    assert rows["m"] == {
        "model": "m",
        "healthy": True,
        "endpoints": [{"url": good.base_url, "state": "closed", "in_flight": 0}],
    }
    assert rows["b"]["healthy"] is False
    assert rows["b"]["endpoints"] == [{"url": bad.base_url, "state": "open", "in_flight": 0}]
