"""The response cache over real sockets, with the official openai SDK as the client: a hit
makes no upstream call (the simulator's own vllm:request_success_total does not move)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.support.gateways import Gateway, Simulator, model_entry
from tests.support.redis import RedisServer

MESSAGES: list[Any] = [{"role": "user", "content": "What is a switchyard?"}]
ON = {"x-switchyard-cache": "on"}
SUCCESS = "vllm:request_success_total"


def _client(gw: Gateway, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


def _ask(client: openai.OpenAI, headers: dict[str, str] | None = None, **extra: Any) -> Any:
    """A non-streamed chat request (greedy unless ``extra`` says otherwise): the raw
    response, for its headers."""
    args: dict[str, Any] = {"temperature": 0, "max_tokens": 8, **extra}
    return client.chat.completions.with_raw_response.create(
        model="m", messages=MESSAGES, extra_headers=headers or ON, **args
    )


def _cached_gateway(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway], **cache: Any
) -> tuple[Simulator, Gateway]:
    sim = simulator("m")
    sections = {k: cache.pop(k) for k in ("state", "auth") if k in cache}
    gw = gateway([model_entry("m", sim.base_url)], cache={"enabled": True, **cache}, **sections)
    return sim, gw


def _miss_then_hit(sim: Simulator, gw: Gateway) -> None:
    client = _client(gw)
    first = _ask(client)
    assert first.headers["x-switchyard-cache"] == "miss"
    calls = sim.metric(SUCCESS)
    second = _ask(client)
    assert second.headers["x-switchyard-cache"] == "hit"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert sim.metric(SUCCESS) == calls  # no upstream call
    assert gw.metric("switchyard_cache_hits_total", kind="exact") == 1
    assert gw.metric("switchyard_cache_stores_total") == 1


def test_a_repeated_opted_in_request_is_answered_from_the_cache(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    _miss_then_hit(*_cached_gateway(simulator, gateway))


def test_the_body_option_opts_in_and_is_not_sent_upstream(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sim, gw = _cached_gateway(simulator, gateway)
    client = _client(gw)
    body = {"switchyard": {"cache": True}}
    assert _ask(client, {}, extra_body=body).headers["x-switchyard-cache"] == "miss"
    assert _ask(client, {}, extra_body=body).headers["x-switchyard-cache"] == "hit"
    assert sim.metric(SUCCESS) == 1


def test_a_request_that_does_not_opt_in_is_not_cached(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sim, gw = _cached_gateway(simulator, gateway)
    client = _client(gw)
    for _ in range(2):
        assert "x-switchyard-cache" not in _ask(client, {"x-other": "1"}).headers
    assert sim.metric(SUCCESS) == 2


def test_a_streamed_hit_is_replayed_as_sse(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sim, gw = _cached_gateway(simulator, gateway)
    client = _client(gw)

    def streamed() -> tuple[str, str]:
        raw = client.chat.completions.with_raw_response.create(
            model="m", messages=MESSAGES, temperature=0, max_tokens=8, stream=True,
            extra_headers=ON,
        )  # fmt: skip
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        return raw.headers["x-switchyard-cache"], text

    state, text = streamed()
    assert state == "miss" and text
    calls = sim.metric(SUCCESS)
    assert streamed() == ("hit", text)  # the stored stream, byte for byte
    assert sim.metric(SUCCESS) == calls


def test_a_streamed_request_replays_a_stored_json_answer_as_chunks(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sim, gw = _cached_gateway(simulator, gateway)
    client = _client(gw)
    answer = _ask(client).parse().choices[0].message.content
    raw = client.chat.completions.with_raw_response.create(
        model="m", messages=MESSAGES, temperature=0, max_tokens=8, stream=True,
        stream_options={"include_usage": True}, extra_headers=ON,
    )  # fmt: skip
    chunks = list(raw.parse())
    assert raw.headers["x-switchyard-cache"] == "hit"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == answer
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert sim.metric(SUCCESS) == 1


def test_another_tenant_never_gets_your_answer(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SWITCHYARD_KEY_SECRET", "cache-test-secret")
    keys = {"a": "sk-sy-cache-tenant-a-0123456789abcdef", "b": "sk-sy-cache-tenant-b-0123456789ab"}
    for name, secret in keys.items():
        monkeypatch.setenv(f"CACHE_KEY_{name.upper()}", secret)
    auth = {
        "enabled": True,
        "keys": [{"name": n, "key_env": f"CACHE_KEY_{n.upper()}", "tenant": f"t-{n}"}
                 for n in keys],
    }  # fmt: skip
    sim, gw = _cached_gateway(simulator, gateway, auth=auth)
    a, b = _client(gw, keys["a"]), _client(gw, keys["b"])
    assert _ask(a).headers["x-switchyard-cache"] == "miss"
    assert _ask(b).headers["x-switchyard-cache"] == "miss"
    assert _ask(a).headers["x-switchyard-cache"] == "hit"
    assert _ask(b).headers["x-switchyard-cache"] == "hit"
    assert sim.metric(SUCCESS) == 2


def test_a_key_never_gets_a_cached_answer_of_a_model_it_may_not_use(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Same tenant, other permissions: the answer "open" cached for "m" is not a hit for
    "narrow", whose key may use only "other" (it gets the 403 it would get uncached)."""
    monkeypatch.setenv("SWITCHYARD_KEY_SECRET", "cache-test-secret")
    keys = {"open": "sk-sy-cache-open-0123456789abcdef", "narrow": "sk-sy-cache-narrow-012345678"}
    for name, secret in keys.items():
        monkeypatch.setenv(f"CACHE_KEY_{name.upper()}", secret)
    auth = {"enabled": True, "keys": [
        {"name": "open", "key_env": "CACHE_KEY_OPEN", "tenant": "t"},
        {"name": "narrow", "key_env": "CACHE_KEY_NARROW", "tenant": "t", "models": ["other"]},
    ]}  # fmt: skip
    sim = simulator("m")
    models = [model_entry("m", sim.base_url), model_entry("other", sim.base_url)]
    gw = gateway(models, cache={"enabled": True}, auth=auth)
    assert _ask(_client(gw, keys["open"])).headers["x-switchyard-cache"] == "miss"
    with pytest.raises(openai.PermissionDeniedError):
        _ask(_client(gw, keys["narrow"]))
    assert gw.metric("switchyard_cache_hits_total", kind="exact") == 0


@pytest.mark.parametrize(
    "extra", [{"temperature": 0.7}, {"temperature": None}, {"n": 2}, {"logprobs": True}]
)
def test_sampled_requests_are_not_cached(
    extra: dict[str, Any],
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
) -> None:
    sim, gw = _cached_gateway(simulator, gateway)
    client = _client(gw)
    args = {k: v for k, v in extra.items() if v is not None}
    if "temperature" in extra and extra["temperature"] is None:  # absent: the engine samples
        raw = client.chat.completions.with_raw_response.create(
            model="m", messages=MESSAGES, max_tokens=8, extra_headers=ON
        )
        raw = client.chat.completions.with_raw_response.create(
            model="m", messages=MESSAGES, max_tokens=8, extra_headers=ON
        )
    else:
        _ask(client, **args)
        raw = _ask(client, **args)
    assert "x-switchyard-cache" not in raw.headers
    assert sim.metric(SUCCESS) == 2
    assert gw.metric("switchyard_cache_hits_total", kind="exact") == 0


def test_allow_sampled_caches_a_sampled_request(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sim, gw = _cached_gateway(simulator, gateway)
    client = _client(gw)
    allow = {"x-switchyard-cache": "allow-sampled"}
    assert _ask(client, allow, temperature=0.9).headers["x-switchyard-cache"] == "miss"
    assert _ask(client, allow, temperature=0.9).headers["x-switchyard-cache"] == "hit"
    assert sim.metric(SUCCESS) == 1


def test_an_entry_expires_after_its_ttl(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sim, gw = _cached_gateway(simulator, gateway, ttl_s=0.3)
    client = _client(gw)
    _ask(client)
    assert _ask(client).headers["x-switchyard-cache"] == "hit"
    time.sleep(0.4)
    assert _ask(client).headers["x-switchyard-cache"] == "miss"
    assert sim.metric(SUCCESS) == 2


def test_an_unknown_cache_option_is_a_400(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    _, gw = _cached_gateway(simulator, gateway)
    with pytest.raises(openai.BadRequestError):
        _ask(_client(gw), {"x-switchyard-cache": "maybe"})


def test_the_cache_option_is_accepted_when_the_cache_is_off(
    sim_gateway: tuple[Simulator, Gateway],
) -> None:
    _, gw = sim_gateway
    raw = _ask(_client(gw), {}, extra_body={"switchyard": {"cache": True}})
    assert raw.http_response.status_code == 200
    assert "x-switchyard-cache" not in raw.headers


def test_redis_backed_cache_answers_hits(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    redis_server: RedisServer,
) -> None:
    sim, gw = _cached_gateway(simulator, gateway, state={"redis_url": redis_server.url})
    _miss_then_hit(sim, gw)


def test_redis_down_still_answers_uncached(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    redis_server: RedisServer,
) -> None:
    sim, gw = _cached_gateway(simulator, gateway, state={"redis_url": redis_server.url})
    redis_server.stop()
    client = _client(gw)
    for _ in range(2):
        raw = _ask(client)
        assert raw.http_response.status_code == 200
        assert "x-switchyard-cache" not in raw.headers
    assert sim.metric(SUCCESS) == 2
    assert gw.metric("switchyard_cache_errors_total", op="get") == 2


def test_an_answer_over_max_body_bytes_is_not_stored(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sim, gw = _cached_gateway(simulator, gateway, max_body_bytes=64)
    client = _client(gw)
    for _ in range(2):
        assert _ask(client).headers["x-switchyard-cache"] == "miss"
    assert sim.metric(SUCCESS) == 2
    assert gw.metric("switchyard_cache_stores_total") == 0


def test_a_redis_entry_expires_after_its_ttl(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    redis_server: RedisServer,
) -> None:
    state = {"redis_url": redis_server.url}
    sim, gw = _cached_gateway(simulator, gateway, ttl_s=0.3, state=state)
    client = _client(gw)
    _ask(client)
    assert _ask(client).headers["x-switchyard-cache"] == "hit"
    time.sleep(0.4)
    assert _ask(client).headers["x-switchyard-cache"] == "miss"
    assert sim.metric(SUCCESS) == 2
