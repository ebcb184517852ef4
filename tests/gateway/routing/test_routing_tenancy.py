"""Routed requests under auth: a key's model list narrows the candidates; feedback needs a key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import openai
import pytest

from switchyard.gateway.tenancy.keys import new_key
from tests.support.gateways import Gateway, Simulator
from tests.support.routed import CANDIDATES, routed_settings

GPT4 = "gpt-4-1106-preview"


def test_a_keys_models_narrow_the_candidates_and_feedback_needs_the_key(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    embedder_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SWITCHYARD_KEY_SECRET", "s" * 32)
    key = new_key()
    monkeypatch.setenv("NARROW_KEY", key)
    urls = {name: simulator(name).base_url for name, _, _ in CANDIDATES}
    config = routed_settings(urls, embedder_cache)
    keys: list[dict[str, object]] = [{"name": "narrow", "key_env": "NARROW_KEY", "models": [GPT4]}]
    gw = gateway(**config, auth={"enabled": True, "keys": keys})
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)

    assert {m.id for m in client.models.list()} == {GPT4, "auto", "smart"}
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=2,
        extra_body={"switchyard": {"cost_weight": 1e9}},  # would pick the cheapest if allowed
    )
    assert raw.parse().model == raw.headers["x-switchyard-model"] == GPT4
    with pytest.raises(openai.BadRequestError):  # the only model it may use is excluded
        client.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"switchyard": {"models": ["mistralai/mistral-7b-chat"]}},
        )

    body = {"decision_id": raw.headers["x-switchyard-decision-id"], "thumbs": "up"}
    assert gw.client.post("/v1/feedback", json=body).status_code == 401
    answered = gw.client.post("/v1/feedback", json=body, headers={"authorization": f"Bearer {key}"})
    assert answered.status_code == 200 and answered.json()["decision_id"] == body["decision_id"]
