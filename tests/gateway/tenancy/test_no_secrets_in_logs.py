"""No API key, admin key or server secret ever appears in a log line, a metric or an error.

``LeakCheck`` is the mechanism: every secret a test makes is registered with it (keys, their
hashes, the admin key, the hashing secret, a malformed token), and it also looks for
anything shaped like a Switchyard key (``sk-sy-`` and 16+ key characters) whether registered
or not. It reads every log record of the gateway's process at DEBUG and below (the
``switchyard`` loggers and uvicorn's, which do not propagate to the root logger, at TRACE),
including the records' extra attributes, the live ``/metrics`` text, every error body the
clients received, and the admin API's answers (except the one that creates a key).

``test_the_check_catches_a_planted_key`` proves each channel is really read, so a clean
result is not a vacuous one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from switchyard.gateway.tenancy.keys import hash_key, new_key
from tests.support.gateways import Gateway, Simulator, model_entry
from tests.support.servers import free_port

PROMPT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello!"}]
KEY_SHAPE = re.compile(r"sk-sy-[A-Za-z0-9_-]{16,}")
TRACE = 5  # uvicorn's level below DEBUG (connection made/lost)
CLIENT_LOGGERS = ("openai", "httpx", "httpcore")  # the tests' clients (httpcore2 too)
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


class LeakCheck:
    """Registered secrets, and where they must never show up."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.secrets: list[str] = []
        self.answers: list[str] = []  # error bodies and admin answers the clients got

    def secret(self, value: str) -> str:
        self.secrets.append(value)
        return value

    def answer(self, text: str) -> None:
        self.answers.append(text)

    def capture_uvicorn(self) -> None:
        """uvicorn's loggers keep their own handlers and do not propagate: hook them (after
        every server has started, since each uvicorn.Config reconfigures them)."""
        for name in UVICORN_LOGGERS:
            self.caplog.set_level(TRACE, logger=name)  # restored after the test
            logging.getLogger(name).addHandler(self.caplog.handler)

    def release(self) -> None:
        for name in UVICORN_LOGGERS:
            logging.getLogger(name).removeHandler(self.caplog.handler)

    def log_text(self) -> str:
        """Every record of the gateway's side: formatted, with its traceback, and all its
        attributes (``extra=``). The tests' own HTTP clients log too; they hold keys by design
        and are not what is under test."""
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        return "\n".join(
            f"{formatter.format(record)} {vars(record)!r}"
            for record in self.caplog.records
            if not record.name.startswith(CLIENT_LOGGERS)
        )

    def leaks(self, gateway: Gateway) -> dict[str, list[str]]:
        """{channel: secrets found in it} for the channels where something was found."""
        channels = {
            "logs": self.log_text(),
            "metrics": gateway.client.get("/metrics").text,
            "answers": "\n".join(self.answers),
        }
        found = {}
        for channel, text in channels.items():
            hits = [s for s in self.secrets if s in text] + KEY_SHAPE.findall(text)
            if hits:
                found[channel] = hits
        return found


@pytest.fixture
def leak_check(caplog: pytest.LogCaptureFixture) -> Iterator[LeakCheck]:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="switchyard")
    check = LeakCheck(caplog)
    yield check
    check.release()


@pytest.fixture
def stack(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    monkeypatch: pytest.MonkeyPatch,
    leak_check: LeakCheck,
) -> tuple[Gateway, dict[str, str]]:
    """A gateway with auth on: static keys "ops" (every model) and "slow" (rpm 1, model "m"),
    model "m" on a good simulator, "broken" on one that always answers 500 and "gone" on a
    port nobody listens on. Returns it and the secrets by name (all registered)."""
    secret = leak_check.secret("hashing-secret-" + "q" * 16)
    admin_key = leak_check.secret("admin-key-" + "z" * 20)
    ops, slow = leak_check.secret(new_key()), leak_check.secret(new_key())
    for key in (ops, slow):
        leak_check.secret(hash_key(secret.encode(), key))
    monkeypatch.setenv("SWITCHYARD_KEY_SECRET", secret)
    monkeypatch.setenv("SWITCHYARD_ADMIN_KEY", admin_key)
    monkeypatch.setenv("TEST_KEY_OPS", ops)
    monkeypatch.setenv("TEST_KEY_SLOW", slow)
    good, broken = simulator("m"), simulator("m", error_rate=1.0)
    auth = {
        "enabled": True,
        "keys": [
            {"name": "ops", "key_env": "TEST_KEY_OPS"},
            {"name": "slow", "key_env": "TEST_KEY_SLOW", "models": ["m"], "limits": {"rpm": 1}},
        ],
    }
    models = [
        model_entry("m", good.base_url),
        model_entry("broken", broken.base_url, upstream_model="m"),
        model_entry("gone", f"http://127.0.0.1:{free_port()}/v1", upstream_model="m"),
    ]
    gw = gateway(models, auth=auth, upstream={"max_attempts": 2, "breaker_failures": 2})
    leak_check.capture_uvicorn()
    return gw, {"secret": secret, "admin": admin_key, "ops": ops, "slow": slow}


def call(gw: Gateway, check: LeakCheck, key: str, model: str = "m", **extra: Any) -> int:
    """A chat completion through the SDK; its status (errors' bodies go to ``check``)."""
    try:
        with openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as client:
            reply = client.chat.completions.create(model=model, messages=PROMPT, **extra)
            if extra.get("stream"):
                list(reply)
        return 200
    except openai.APIStatusError as err:
        check.answer(err.response.text)
        return err.status_code


def admin_call(
    gw: Gateway, check: LeakCheck, key: str, method: str, path: str, **kw: Any
) -> httpx.Response:
    response = gw.client.request(
        method, f"/admin{path}", headers={"authorization": f"Bearer {key}"}, **kw
    )
    check.answer(response.text)
    return response


def test_keys_never_reach_logs_metrics_or_error_bodies(
    stack: tuple[Gateway, dict[str, str]], leak_check: LeakCheck
) -> None:
    gw, secrets = stack
    check = leak_check
    # A dynamic key, created (the only answer that may show it), used and then revoked.
    created = gw.client.post(
        "/admin/keys",
        json={"name": "dyn", "models": ["m"]},
        headers={"authorization": f"Bearer {secrets['admin']}"},
    ).json()
    dynamic = check.secret(created["key"])
    check.secret(hash_key(secrets["secret"].encode(), dynamic))
    assert call(gw, check, dynamic) == 200
    assert call(gw, check, secrets["ops"], stream=True) == 200
    assert call(gw, check, dynamic, model="broken") == 403  # not in its allow-list
    admin_call(gw, check, secrets["admin"], "DELETE", f"/keys/{created['id']}")

    statuses = {
        "revoked": call(gw, check, dynamic),
        "wrong": call(gw, check, check.secret(new_key())),
        "malformed": call(gw, check, check.secret("malformed-secret-token-1234567")),
        "near miss": call(gw, check, check.secret(secrets["ops"][:-1])),
        "upstream 500": call(gw, check, secrets["ops"], model="broken"),
        "upstream gone": call(gw, check, secrets["ops"], model="gone"),
        "rate limited": [call(gw, check, secrets["slow"]) for _ in range(2)][-1],
    }
    assert statuses == {
        "revoked": 401, "wrong": 401, "malformed": 401, "near miss": 401,
        "upstream 500": 502, "upstream gone": 502, "rate limited": 429,
    }  # fmt: skip
    headerless = gw.client.post("/v1/chat/completions", json={"model": "m", "messages": PROMPT})
    check.answer(headerless.text)

    for key in (secrets["ops"], check.secret("admin-guess-" + "y" * 20)):  # not admin keys
        assert admin_call(gw, check, key, "GET", "/keys").status_code == 401
    for path in ("/keys", "/config", "/spend", "/backends"):
        assert admin_call(gw, check, secrets["admin"], "GET", path).status_code == 200
    assert (
        admin_call(gw, check, secrets["admin"], "PATCH", "/keys/static_ops", json={}).status_code
        == 409
    )

    assert check.leaks(gw) == {}
    # The check read real traffic: the gateway's and uvicorn's records are in the capture.
    loggers = {r.name for r in check.caplog.records}
    assert "switchyard.backends" in loggers  # the failed upstream attempts
    assert "uvicorn.error" in loggers  # TRACE: connections made and lost


def test_the_check_catches_a_planted_key(
    stack: tuple[Gateway, dict[str, str]], leak_check: LeakCheck
) -> None:
    """Each channel, fed an unregistered key-shaped string, is reported."""
    gw, _ = stack
    assert leak_check.leaks(gw) == {}
    planted = new_key()
    logging.getLogger("uvicorn.error").log(TRACE, "connection from %s", planted)
    assert set(leak_check.leaks(gw)) == {"logs"}
    leak_check.caplog.clear()
    logging.getLogger("switchyard.tenancy").debug("ok", extra={"token": planted})
    assert set(leak_check.leaks(gw)) == {"logs"}
    leak_check.caplog.clear()
    gw.server.app.state.metrics.spend.add(planted, "t", 1.0)
    leak_check.answer(f'{{"error": {{"message": "invalid API key {planted}"}}}}')
    assert set(leak_check.leaks(gw)) == {"metrics", "answers"}
