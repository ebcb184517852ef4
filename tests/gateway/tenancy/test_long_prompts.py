"""Prompts far beyond what the tokenizer accepts in one piece (over 200,000 tokens, or
1,000,000 characters) still get an estimate: a key with a token limit or a budget is
answered by its limit, in OpenAI's shape with a request id, never by a 500."""

from __future__ import annotations

import time
from collections.abc import Callable

import openai
import pytest

from switchyard.gateway.tenancy.keys import new_key
from switchyard.gateway.tenancy.tokens import count_text, estimate_prompt_tokens
from tests.support.gateways import Gateway, Simulator, model_entry

LONG_PROMPTS = {
    "210k_tokens": "hi " * 210_000,
    "1m_chars": "a" * 1_000_000,
}


@pytest.fixture
def limited(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Gateway, str, str]:
    """A gateway with auth on; returns it, a key with a tpm limit and a key with a budget."""
    tpm_key, budget_key = new_key(), new_key()
    monkeypatch.setenv("SWITCHYARD_KEY_SECRET", "long-prompt-secret")
    monkeypatch.setenv("TEST_KEY_TPM", tpm_key)
    monkeypatch.setenv("TEST_KEY_BUDGET", budget_key)
    auth = {
        "enabled": True,
        "keys": [
            {"name": "tpm", "key_env": "TEST_KEY_TPM", "limits": {"tpm": 10_000}},
            {"name": "budget", "key_env": "TEST_KEY_BUDGET", "limits": {"budget_usd": 0.01}},
        ],
    }
    sim = simulator("m")
    return gateway([model_entry("m", sim.base_url)], auth=auth), tpm_key, budget_key


@pytest.mark.parametrize("prompt", list(LONG_PROMPTS.values()), ids=list(LONG_PROMPTS))
def test_a_prompt_too_long_for_the_tokenizer_meets_the_limit_not_a_500(
    limited: tuple[Gateway, str, str], prompt: str
) -> None:
    gw, tpm_key, budget_key = limited
    for key, code in ((tpm_key, "rate_limit_exceeded"), (budget_key, "budget_exceeded")):
        client = openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)
        with client, pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": prompt}], max_tokens=5
            )
        err = caught.value
        assert err.status_code == 429
        assert err.code == code
        assert set(err.response.json()["error"]) == {"message", "type", "param", "code"}
        assert err.response.headers.get("x-request-id")
    assert gw.metric("switchyard_requests_total", model="m", endpoint="-", status="429") == 2


def test_the_estimate_of_a_huge_text_is_close_and_fast() -> None:
    count_text("warm up")
    for text, exact in (("hi " * 210_000, 210_000), ("a" * 1_000_000, 125_000)):
        started = time.perf_counter()
        estimate = estimate_prompt_tokens({"messages": [{"role": "user", "content": text}]})
        assert time.perf_counter() - started < 0.05
        assert abs(estimate - exact) / exact < 0.01
    assert estimate_prompt_tokens({"prompt": "x" * 8_000_000}) > 0
