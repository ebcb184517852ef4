"""The semantic response cache over real sockets: a paraphrase of an answered prompt gets
that answer, for the same model and scope only, embedded with int8 MiniLM (exported once per
run, ``embedder_cache``) although the shipped router embeds with the static table, and the
simulators named after the default router's candidates; a hit makes no engine call."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support.gateways import Gateway, Simulator, model_entry, wait_for
from tests.support.redis import RedisServer
from tests.support.routed import CANDIDATES, routed_settings

QUESTION = "What is the capital of France?"
PARAPHRASE = "Which city is the capital of France?"
UNRELATED = "How many legs does a spider have?"
CHEAP, OTHER = CANDIDATES[0][0], CANDIDATES[1][0]
SEMANTIC = {"x-switchyard-cache": "semantic"}
SUCCESS = "vllm:request_success_total"


def _semantic_gateway(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    embedder_cache: Path,
    **sections: Any,
) -> tuple[dict[str, Simulator], Gateway]:
    sims = {name: simulator(name) for name, _, _ in CANDIDATES}
    settings = routed_settings({n: s.base_url for n, s in sims.items()}, embedder_cache)
    cache = {"enabled": True, "semantic_threshold": 0.85, **sections.pop("cache", {})}
    return sims, gateway(**settings, cache=cache, **sections)


def _client(gw: Gateway, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


def _ask(client: openai.OpenAI, prompt: str, model: str = CHEAP, **extra: Any) -> Any:
    """A greedy chat request opted in to semantic caching: the raw response."""
    args: dict[str, Any] = {"temperature": 0, "max_tokens": 8, "extra_headers": SEMANTIC}
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": prompt}], **(args | extra)
    )


def _calls(sims: dict[str, Simulator]) -> float:
    return sum(s.metric(SUCCESS) for s in sims.values())


def test_a_paraphrase_is_answered_from_the_cache_for_the_same_model(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway], embedder_cache: Path
) -> None:
    sims, gw = _semantic_gateway(simulator, gateway, embedder_cache)
    client = _client(gw)
    first = _ask(client, QUESTION)
    assert first.headers["x-switchyard-cache"] == "miss"
    calls = _calls(sims)
    second = _ask(client, PARAPHRASE)
    assert second.headers["x-switchyard-cache"] == "hit"
    assert 0.85 <= float(second.headers["x-switchyard-cache-similarity"]) < 1.0
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert _calls(sims) == calls  # no engine call
    assert gw.metric("switchyard_cache_hits_total", kind="semantic") == 1
    assert gw.metric("switchyard_cache_misses_total", kind="semantic") == 1
    assert gw.metric("switchyard_cache_semantic_similarity_count") == 1


def test_another_model_or_an_unrelated_prompt_misses(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway], embedder_cache: Path
) -> None:
    sims, gw = _semantic_gateway(simulator, gateway, embedder_cache)
    client = _client(gw)
    _ask(client, QUESTION)
    assert _ask(client, PARAPHRASE, model=OTHER).headers["x-switchyard-cache"] == "miss"
    assert _ask(client, UNRELATED).headers["x-switchyard-cache"] == "miss"
    assert _ask(client, PARAPHRASE, max_tokens=9).headers["x-switchyard-cache"] == "miss"
    assert _calls(sims) == 4
    assert gw.metric("switchyard_cache_hits_total", kind="semantic") == 0


def test_a_paraphrase_below_the_threshold_misses(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway], embedder_cache: Path
) -> None:
    sims, gw = _semantic_gateway(
        simulator, gateway, embedder_cache, cache={"semantic_threshold": 0.999}
    )
    client = _client(gw)
    _ask(client, QUESTION)
    assert _ask(client, PARAPHRASE).headers["x-switchyard-cache"] == "miss"
    assert _ask(client, QUESTION).headers["x-switchyard-cache"] == "hit"  # exact still hits
    assert gw.metric("switchyard_cache_hits_total", kind="exact") == 1
    assert _calls(sims) == 2


def test_another_tenant_never_gets_your_answer_to_a_similar_prompt(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    embedder_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SWITCHYARD_KEY_SECRET", "semantic-cache-secret")
    keys = {"a": "sk-sy-semantic-tenant-a-0123456789", "b": "sk-sy-semantic-tenant-b-0123456789"}
    for name, secret in keys.items():
        monkeypatch.setenv(f"SEMANTIC_KEY_{name.upper()}", secret)
    auth = {
        "enabled": True,
        "keys": [{"name": n, "key_env": f"SEMANTIC_KEY_{n.upper()}", "tenant": f"t-{n}"}
                 for n in keys],
    }  # fmt: skip
    sims, gw = _semantic_gateway(simulator, gateway, embedder_cache, auth=auth)
    a, b = _client(gw, keys["a"]), _client(gw, keys["b"])
    assert _ask(a, QUESTION).headers["x-switchyard-cache"] == "miss"
    assert _ask(b, PARAPHRASE).headers["x-switchyard-cache"] == "miss"
    assert _ask(a, PARAPHRASE).headers["x-switchyard-cache"] == "hit"
    assert _calls(sims) == 2


def test_a_routed_paraphrase_hits_the_chosen_models_answer_and_records_the_decision(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway], embedder_cache: Path
) -> None:
    sims, gw = _semantic_gateway(simulator, gateway, embedder_cache)
    client = _client(gw)
    options = {"switchyard": {"cache": "semantic", "models": [OTHER]}}
    first = _ask(client, QUESTION, model="auto", extra_body=options, extra_headers={})
    assert first.headers["x-switchyard-cache"] == "miss"
    assert first.headers["x-switchyard-model"] == OTHER
    second = _ask(client, PARAPHRASE, model="auto", extra_body=options, extra_headers={})
    assert second.headers["x-switchyard-cache"] == "hit"
    assert second.headers["x-switchyard-model"] == OTHER
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert _calls(sims) == 1
    routing = gw.server.app.state.routing
    decision = second.headers["x-switchyard-decision-id"]
    record = routing.outcomes.record(decision)
    assert record is not None and record.status == "cached"
    # the concrete model's request finds the routed answer too: same model, same scope
    assert _ask(client, PARAPHRASE, model=OTHER).headers["x-switchyard-cache"] == "hit"


def test_a_streamed_paraphrase_gets_the_stored_stream_replayed(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway], embedder_cache: Path
) -> None:
    sims, gw = _semantic_gateway(simulator, gateway, embedder_cache)
    client = _client(gw)

    def streamed(prompt: str) -> tuple[str, str]:
        raw = _ask(client, prompt, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        return raw.headers["x-switchyard-cache"], text

    state, text = streamed(QUESTION)
    assert state == "miss" and text
    assert streamed(PARAPHRASE) == ("hit", text)
    assert _calls(sims) == 1


def test_two_gateways_share_the_semantic_index_through_redis(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    embedder_cache: Path,
    redis_server: RedisServer,
) -> None:
    state = {"redis_url": redis_server.url}
    cache = {"semantic_refresh_s": 0.05}
    sims, one = _semantic_gateway(simulator, gateway, embedder_cache, state=state, cache=cache)
    settings = routed_settings({n: s.base_url for n, s in sims.items()}, embedder_cache)
    two = gateway(**settings, state=state, cache={"enabled": True, "semantic_threshold": 0.85,
                                                  **cache})  # fmt: skip
    assert _ask(_client(one), QUESTION).headers["x-switchyard-cache"] == "miss"
    # the first gateway finds it once its writes (answer, then index entry) are done
    wait_for(lambda: _ask(_client(one), PARAPHRASE).headers["x-switchyard-cache"] == "hit")
    calls = _calls(sims)
    assert _ask(_client(two), PARAPHRASE).headers["x-switchyard-cache"] == "hit"
    assert _calls(sims) == calls
    assert two.metric("switchyard_cache_hits_total", kind="semantic") == 1


def test_a_semantic_opt_in_without_an_embedder_is_a_400(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sim = simulator("m")
    gw = gateway([model_entry("m", sim.base_url)], cache={"enabled": True})
    with pytest.raises(openai.BadRequestError) as caught:
        _ask(_client(gw), QUESTION, model="m")
    error = caught.value.response.json()["error"]
    assert error["type"] == "invalid_request_error" and "embedder" in error["message"]
    assert sim.metric(SUCCESS) == 0
    exact = {"x-switchyard-cache": "on"}
    answered = _ask(_client(gw), QUESTION, model="m", extra_headers=exact)
    assert answered.headers["x-switchyard-cache"] == "miss"


@pytest.mark.parametrize("model", [CHEAP, "auto"])
def test_questions_that_differ_in_a_number_do_not_share_an_answer(
    model: str,
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    embedder_cache: Path,
) -> None:
    """At the default threshold (0.95): the static table puts these two at cosine 0.954 (a
    wrong answer served), MiniLM at 0.843. The routed request is embedded for the cache even
    though its decision already embedded the prompt with the router's static table."""
    sims, gw = _semantic_gateway(
        simulator, gateway, embedder_cache, cache={"semantic_threshold": 0.95}
    )
    client = _client(gw)
    assert _ask(client, "Is 91 a prime number?", model).headers["x-switchyard-cache"] == "miss"
    calls = _calls(sims)
    again = _ask(client, "Is 97 a prime number?", model)
    assert again.headers["x-switchyard-cache"] == "miss"
    assert _calls(sims) == calls + 1
    assert _ask(client, "Is 91 a prime number ?", model).headers["x-switchyard-cache"] == "hit"


def test_when_the_cache_embedder_fails_the_request_is_answered_uncached(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    embedder_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from switchyard.gateway.cache.vectors import SemanticEmbedder

    async def broken(self: SemanticEmbedder, text: str) -> Any:
        raise RuntimeError("no exported embedder")

    monkeypatch.setattr(SemanticEmbedder, "vector", broken)
    sims, gw = _semantic_gateway(simulator, gateway, embedder_cache)
    client = _client(gw)
    for model in (CHEAP, "auto"):
        first = _ask(client, QUESTION, model)
        assert first.http_response.status_code == 200
        assert first.parse().choices[0].message.content
    assert gw.metric("switchyard_cache_errors_total", op="embed") == 2
    assert _calls(sims) == 2  # both reached an engine
