"""Stream keep-alive: SSE comments while a stream waits for its first token (real sockets,
simulated vLLM backends, the openai SDK and raw httpx as clients)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from typing import Any

import httpx
import openai
import pytest

from switchyard.gateway.disconnect import DisconnectWatch
from switchyard.gateway.streaming import KeepAlive
from tests.support.gateways import Gateway, Simulator, model_entry

CHAT: dict[str, Any] = {
    "model": "m", "messages": [{"role": "user", "content": "Say something."}],
    "max_tokens": 4, "stream": True,
}  # fmt: skip
KEEPALIVE = ": keep-alive"


def raw_stream(gw: Gateway, read_timeout: float = 10.0) -> tuple[int, list[str]]:
    """The status and every SSE line of a streamed chat completion, comments included."""
    timeout = httpx.Timeout(10.0, read=read_timeout)
    with httpx.stream("POST", f"{gw.base_url}/chat/completions", json=CHAT, timeout=timeout) as r:
        return r.status_code, [line for line in r.iter_lines() if line]


@pytest.mark.slow
def test_a_stream_whose_first_token_takes_10s_reaches_a_client_with_a_5s_read_timeout(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sim = simulator("m", added_latency_ms=10_000)
    gw = gateway([model_entry("m", sim.base_url)], upstream={"stream_keepalive_s": 2.0})
    # A float timeout bounds each read (and connect), not the whole request.
    client = openai.OpenAI(base_url=gw.base_url, api_key="k", max_retries=0, timeout=5.0)
    with client:
        stream = client.chat.completions.create(
            model="m", messages=CHAT["messages"], max_tokens=4, stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text
    assert gw.metric("switchyard_requests_total", model="m", endpoint=sim.base_url,
                     status="200") == 1  # fmt: skip


def test_no_comment_is_sent_when_the_first_token_comes_in_time(
    sim_gateway: tuple[Simulator, Gateway],
) -> None:
    _, gw = sim_gateway
    status, lines = raw_stream(gw)
    assert status == 200 and lines[-1] == "data: [DONE]"
    assert KEEPALIVE not in lines


def test_no_comment_is_sent_when_the_first_token_comes_after_the_watch_began_but_in_time(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    # The keep-alive's timer is armed when the request has waited 50 ms (the disconnect
    # watch's moment); a first token at 200 ms must still cancel it before 600 ms.
    sim = simulator("m", added_latency_ms=200)
    gw = gateway([model_entry("m", sim.base_url)], upstream={"stream_keepalive_s": 0.6})
    status, lines = raw_stream(gw, read_timeout=5.0)
    assert status == 200 and lines[-1] == "data: [DONE]"
    assert KEEPALIVE not in lines


def test_a_keepalive_stopped_before_the_watch_starts_never_arms_itself() -> None:
    # A stream whose first token came at once lasts on; when the request's disconnect watch
    # starts mid-stream, the stopped keep-alive must not arm its timer then.
    async def main() -> list[MutableMapping[str, Any]]:
        sent: list[MutableMapping[str, Any]] = []

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            await asyncio.Event().wait()
            return {"type": "http.disconnect"}

        watch = DisconnectWatch(receive, after_s=0.01)
        keepalive = KeepAlive(send, 0.03, list, watch)
        assert keepalive.stop() is None  # the first token came before anything was armed
        await asyncio.sleep(0.15)  # the watch starts at 10 ms; a timer would fire at 40 ms
        watch.stop()
        return sent

    assert asyncio.run(main()) == []


def test_keepalives_cover_a_retry_on_another_replica_before_the_first_token(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    # The first replica answers 500 (a refusal: retried), the second one streams after
    # 0.6 s; round robin tries them in that order.
    failing = simulator("m", error_rate=1.0, added_latency_ms=600)
    good = simulator("m", added_latency_ms=600)
    upstream = {"stream_keepalive_s": 0.2, "balancer": "round_robin"}
    gw = gateway([model_entry("m", failing.base_url, good.base_url)], upstream=upstream)
    status, lines = raw_stream(gw, read_timeout=0.5)
    assert status == 200
    assert lines.count(KEEPALIVE) >= 2
    assert lines[-1] == "data: [DONE]" and any(line.startswith("data: {") for line in lines)
    assert gw.metric("switchyard_retries_total", model="m", endpoint=good.base_url) == 1


def test_a_stream_that_fails_after_keepalives_began_ends_with_an_error_event(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    hung = simulator("m", hang_rate=1.0)
    upstream = {"stream_keepalive_s": 0.2, "first_byte_timeout_s": 0.8, "max_attempts": 1}
    gw = gateway([model_entry("m", hung.base_url)], upstream=upstream)
    status, lines = raw_stream(gw)
    assert status == 200 and lines[0] == KEEPALIVE
    assert lines[-1].startswith('data: {"error"') and "upstream_timeout" in lines[-1]
    client = openai.OpenAI(base_url=gw.base_url, api_key="k", max_retries=0, timeout=10)
    with client, pytest.raises(openai.APIError, match="no answer"):
        for _ in client.chat.completions.create(
            model="m", messages=CHAT["messages"], max_tokens=4, stream=True
        ):
            pass
