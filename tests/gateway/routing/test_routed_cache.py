"""The response cache on a routed request: keyed by the router's name and options (the
model is chosen later), so a repeat skips routing and the engine both."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import openai

from tests.support.gateways import Gateway, Simulator
from tests.support.routed import CANDIDATES, MESSAGES, routed_settings


def test_a_repeated_routed_request_is_answered_from_the_cache_without_routing(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway], embedder_cache: Path
) -> None:
    sims = {name: simulator(name) for name, _, _ in CANDIDATES}
    settings = routed_settings({n: s.base_url for n, s in sims.items()}, embedder_cache)
    gw = gateway(**settings, cache={"enabled": True})
    client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)

    def ask(cost_weight: float) -> openai.APIResponse[object]:
        return client.chat.completions.with_raw_response.create(  # type: ignore[return-value]
            model="auto", messages=MESSAGES, temperature=0, max_tokens=4,
            extra_body={"switchyard": {"cache": True, "cost_weight": cost_weight}},
        )  # fmt: skip

    first = ask(0.5)
    assert first.headers["x-switchyard-cache"] == "miss"
    chosen = first.headers["x-switchyard-model"]
    calls = sum(s.metric("vllm:request_success_total") for s in sims.values())
    second = ask(0.5)
    assert second.headers["x-switchyard-cache"] == "hit"
    assert "x-switchyard-decision-id" not in second.headers  # no routing decision was made
    assert second.parse().model == chosen  # type: ignore[attr-defined]
    assert sum(s.metric("vllm:request_success_total") for s in sims.values()) == calls
    assert ask(2.0).headers["x-switchyard-cache"] == "miss"  # other options: another key
