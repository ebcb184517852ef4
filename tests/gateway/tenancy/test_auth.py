"""API keys on the request path: static and dynamic keys, allow-lists, rate limits.

Every check goes through a real gateway on a real socket in front of a zero-latency
simulator, with the official openai SDK where a client is involved. Keys and the server
secret are put in the environment before the settings are built, as in production.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from switchyard.gateway.tenancy.keys import new_key
from tests.support.gateways import Gateway, Simulator, model_entry

PROMPT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello there!"}]
ADMIN_KEY = "admin-" + "x" * 24


def sdk(gw: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=30)


def chat(gw: Gateway, key: str, model: str = "m", **extra: Any) -> Any:
    """One chat completion; the raw response (``.headers``, ``.parse()``)."""
    with sdk(gw, key) as client:
        return client.chat.completions.with_raw_response.create(
            model=model,
            messages=extra.pop("messages", PROMPT),
            max_tokens=extra.pop("max_tokens", 5),
            **extra,
        )


def admin(gw: Gateway) -> httpx.Client:
    return httpx.Client(
        base_url=f"{gw.url}/admin", headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10
    )


@dataclass
class Keys:
    alice: str  # static, may use "m" only
    bob: str  # static, every model


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> Keys:
    """The server secret, two static keys and the admin key, in the environment."""
    found = Keys(alice=new_key(), bob=new_key())
    monkeypatch.setenv("SWITCHYARD_KEY_SECRET", "test-secret-" + "s" * 20)
    monkeypatch.setenv("TEST_KEY_ALICE", found.alice)
    monkeypatch.setenv("TEST_KEY_BOB", found.bob)
    monkeypatch.setenv("SWITCHYARD_ADMIN_KEY", ADMIN_KEY)
    return found


def static(name: str, env: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "key_env": env, **extra}


@pytest.fixture
def start(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway], keys: Keys
) -> Callable[..., Gateway]:
    """``start(auth={...})``: a gateway serving "m" and "n" (both on one simulator)."""
    sim = simulator("m")

    def start_gateway(**auth: Any) -> Gateway:
        auth = {
            "enabled": True,
            "keys": [
                static("alice", "TEST_KEY_ALICE", models=["m"]),
                static("bob", "TEST_KEY_BOB"),
            ],
            **auth,
        }
        models = [
            model_entry("m", sim.base_url),
            model_entry("n", sim.base_url, upstream_model="m"),
        ]
        return gateway(models, auth=auth)

    return start_gateway


def assert_openai_error(response: httpx.Response, status: int, type_: str, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == type_
    assert body["error"]["code"] == code
    message: str = body["error"]["message"]
    return message


# --- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "code", "says"),
    [
        pytest.param({}, "missing_api_key", "missing API key", id="no-header"),
        pytest.param({"authorization": "Basic abc"}, "missing_api_key", "missing", id="basic"),
        pytest.param({"authorization": "Bearer"}, "missing_api_key", "missing", id="empty"),
        pytest.param(
            {"authorization": "Bearer not-a-key"}, "invalid_api_key", "malformed", id="malformed"
        ),
        pytest.param(
            {"authorization": f"Bearer {new_key()}"}, "invalid_api_key", "invalid", id="wrong"
        ),
    ],
)
def test_requests_without_a_valid_key_are_401_in_openai_shape(
    start: Callable[..., Gateway], headers: dict[str, str], code: str, says: str
) -> None:
    gw = start()
    body = {"model": "m", "messages": PROMPT}
    for path in ("/v1/chat/completions", "/v1/completions"):
        response = gw.client.post(path, json=body, headers=headers)
        message = assert_openai_error(response, 401, "authentication_error", code)
        assert says in message
    response = gw.client.get("/v1/models", headers=headers)
    assert_openai_error(response, 401, "authentication_error", code)


@pytest.mark.parametrize("key", ["not-a-key", "sk-sy-wrong"], ids=["malformed", "wrong"])
def test_the_sdk_raises_authentication_error_for_a_bad_key(
    start: Callable[..., Gateway], key: str
) -> None:
    gw = start()
    with pytest.raises(openai.AuthenticationError) as caught:
        chat(gw, key)
    assert caught.value.status_code == 401
    assert caught.value.type == "authentication_error"
    assert key not in caught.value.message


def test_static_keys_authenticate(start: Callable[..., Gateway], keys: Keys) -> None:
    gw = start()
    for key in (keys.alice, keys.bob):
        reply = chat(gw, key).parse()
        assert reply.choices[0].message.content
        assert reply.usage is not None and reply.usage.completion_tokens == 5


def test_a_dynamic_key_authenticates_until_it_is_revoked(start: Callable[..., Gateway]) -> None:
    gw = start()
    with admin(gw) as client:
        created = client.post("/keys", json={"name": "dyn"})
        assert created.status_code == 201, created.text
        key, key_id = created.json()["key"], created.json()["id"]
        assert chat(gw, key).parse().choices
        assert client.delete(f"/keys/{key_id}").json()["revoked"] is True
    with pytest.raises(openai.AuthenticationError) as caught:
        chat(gw, key)
    assert caught.value.code == "revoked_api_key"
    assert "revoked" in caught.value.message


# --- allow-lists ---------------------------------------------------------------------------


def test_a_model_outside_the_keys_allow_list_is_403(
    start: Callable[..., Gateway], keys: Keys
) -> None:
    gw = start()
    with pytest.raises(openai.PermissionDeniedError) as caught:
        chat(gw, keys.alice, model="n")
    assert caught.value.status_code == 403
    assert caught.value.code == "model_not_allowed"
    assert caught.value.param == "model"
    assert "may not use model 'n'" in caught.value.message
    assert chat(gw, keys.bob, model="n").parse().choices  # bob may use every model


def test_a_dynamic_keys_allow_list_is_enforced(start: Callable[..., Gateway]) -> None:
    gw = start()
    with admin(gw) as client:
        key = client.post("/keys", json={"name": "only-n", "models": ["n"]}).json()["key"]
    assert chat(gw, key, model="n").parse().choices
    with pytest.raises(openai.PermissionDeniedError):
        chat(gw, key, model="m")


def test_the_model_list_shows_only_the_models_a_key_may_use(
    start: Callable[..., Gateway], keys: Keys
) -> None:
    gw = start()
    with sdk(gw, keys.alice) as client:
        assert [m.id for m in client.models.list()] == ["m"]
        assert client.models.retrieve("m").id == "m"
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("n")
    with sdk(gw, keys.bob) as client:
        assert sorted(m.id for m in client.models.list()) == ["m", "n"]


def test_health_readiness_and_metrics_need_no_key(start: Callable[..., Gateway]) -> None:
    gw = start()
    for path in ("/healthz", "/readyz", "/metrics"):
        assert gw.client.get(path).status_code == 200, path


def test_with_auth_off_by_default_no_key_is_needed(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    gw = gateway([model_entry("m", simulator("m").base_url)])
    assert gw.settings.auth.enabled is False
    assert chat(gw, "anything at all").parse().choices
    response = gw.client.post("/v1/chat/completions", json={"model": "m", "messages": PROMPT})
    assert response.status_code == 200
    assert [m["id"] for m in gw.client.get("/v1/models").json()["data"]] == ["m"]


# --- rate limits ---------------------------------------------------------------------------


def test_an_rpm_limit_answers_429_with_retry_after_and_ratelimit_headers(
    start: Callable[..., Gateway], keys: Keys
) -> None:
    gw = start(keys=[static("alice", "TEST_KEY_ALICE", limits={"rpm": 2})])
    remaining = []
    for _ in range(2):
        raw = chat(gw, keys.alice)
        assert raw.headers["x-ratelimit-limit-requests"] == "2"
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
        remaining.append(raw.headers["x-ratelimit-remaining-requests"])
    assert remaining == ["1", "0"]
    with pytest.raises(openai.RateLimitError) as caught:
        chat(gw, keys.alice)
    err = caught.value
    assert err.status_code == 429
    assert err.code == "rate_limit_exceeded" and err.type == "rate_limit_error"
    assert "requests per minute" in err.message
    assert err.response.headers["retry-after"] == "30"  # 2 per minute: one every 30 s
    assert err.response.headers["x-ratelimit-limit-requests"] == "2"
    assert err.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert err.response.headers["x-ratelimit-reset-requests"].endswith("s")
    assert gw.metric("switchyard_rate_limited_total", key="alice", limit="rpm") == 1
    assert requests_served(gw) == 2  # the refused request never reached the backend


def requests_served(gw: Gateway) -> float:
    text = gw.client.get("/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("switchyard_requests_total{") and 'status="200"' in line
    )


def test_a_tpm_limit_counts_prompt_tokens_up_front(
    start: Callable[..., Gateway], keys: Keys
) -> None:
    gw = start(keys=[static("alice", "TEST_KEY_ALICE", limits={"tpm": 50})])
    long_prompt: Any = [{"role": "user", "content": "word " * 100}]
    with pytest.raises(openai.RateLimitError) as caught:
        chat(gw, keys.alice, messages=long_prompt)  # ~100 prompt tokens > 50 per minute
    assert "tokens per minute" in caught.value.message
    assert requests_served(gw) == 0  # refused before the backend was asked
    assert chat(gw, keys.alice).headers["x-ratelimit-limit-tokens"] == "50"  # a short one fits


def test_a_tpm_limit_settles_to_the_real_usage(start: Callable[..., Gateway], keys: Keys) -> None:
    """The bucket takes the prompt estimate up front; after the response it is corrected to
    the backend's usage (prompt + completion). The next request's remaining-tokens header
    shows the correction: it fell by the first request's real usage, not its estimate."""
    gw = start(keys=[static("alice", "TEST_KEY_ALICE", limits={"tpm": 1000})])
    started = time.monotonic()  # the bucket refills from the first admission on
    first = chat(gw, keys.alice, max_tokens=40)
    usage = first.parse().usage
    assert usage is not None and usage.completion_tokens == 40
    estimate = 1000 - int(first.headers["x-ratelimit-remaining-tokens"])
    assert 0 < estimate < usage.total_tokens  # the estimate knows nothing of the output
    remaining_before = int(first.headers["x-ratelimit-remaining-tokens"])
    second = chat(gw, keys.alice, max_tokens=40)  # the same prompt: the same estimate
    # Tokens back between the two admissions (at most the whole time), plus rounding.
    refill = (time.monotonic() - started) * 1000 / 60 + 1
    fell_by = remaining_before - int(second.headers["x-ratelimit-remaining-tokens"])
    assert usage.total_tokens - refill <= fell_by <= usage.total_tokens + 1


def test_model_limits_apply_across_keys(start: Callable[..., Gateway], keys: Keys) -> None:
    gw = start(model_limits={"m": {"rpm": 2}})
    chat(gw, keys.alice)
    chat(gw, keys.bob)
    with pytest.raises(openai.RateLimitError) as caught:
        chat(gw, keys.alice)
    assert "model" in caught.value.message
    with pytest.raises(openai.RateLimitError):
        chat(gw, keys.bob)
    assert chat(gw, keys.bob, model="n").parse().choices  # other models are not limited


# --- switchyard keys ----------------------------------------------------------------------

SCRIPT = shutil.which("switchyard", path=str(Path(sys.executable).parent))


def run_keys(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    assert SCRIPT is not None
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    return subprocess.run(
        [SCRIPT, "keys", *args],
        input=stdin, capture_output=True, text=True, env=clean | env, timeout=30, check=False,
    )  # fmt: skip


def test_keys_new_and_hash_make_a_static_key_that_authenticates(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = run_keys("new")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("sk-sy-") and len(key) > 40
    assert run_keys("new").stdout.strip() != key
    hashed = run_keys("hash", "--secret-env", "MY_SECRET", stdin=key + "\n", MY_SECRET="s3cret")
    assert hashed.returncode == 0, hashed.stderr
    digest = hashed.stdout.strip()
    assert len(digest) == 64 and key not in hashed.stdout

    monkeypatch.setenv("MY_SECRET", "s3cret")
    auth = {"enabled": True, "secret_env": "MY_SECRET", "keys": [{"name": "h", "key_hash": digest}]}
    gw = gateway([model_entry("m", simulator("m").base_url)], auth=auth)
    assert chat(gw, key).parse().choices
    with pytest.raises(openai.AuthenticationError):
        chat(gw, new_key())


def test_keys_hash_refuses_bad_input_without_echoing_it() -> None:
    no_secret = run_keys("hash", stdin=new_key())
    assert no_secret.returncode == 2
    assert "SWITCHYARD_KEY_SECRET is not set" in no_secret.stderr
    bad = run_keys("hash", stdin="my-password\n", SWITCHYARD_KEY_SECRET="x")
    assert bad.returncode == 2
    assert "expected a key starting with 'sk-sy-'" in bad.stderr
    assert "my-password" not in bad.stdout + bad.stderr


def test_keys_help_explains_the_commands() -> None:
    text = run_keys("--help", COLUMNS="200", NO_COLOR="1").stdout
    assert "new" in text and "Print a fresh random API key" in text
    assert "hash" in text and "print its hash" in text
    text = " ".join(run_keys("hash", "--help", COLUMNS="200", NO_COLOR="1").stdout.split())
    assert "--secret-env" in text and "SWITCHYARD_KEY_SECRET" in text
