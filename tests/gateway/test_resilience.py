"""Resilience end to end: real sockets, simulated vLLM backends, the openai SDK as the client.

Each test builds its own gateway with millisecond-scale timeouts and cooldowns, breaks a
backend (down, 500s, dropped streams, hangs, kill and restart, a client that walks away)
and checks what the client sees, what the gateway counts, and that it stays healthy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Gateway, Simulator, model_entry
from tests.support.servers import free_port

PROMPT = [{"role": "user", "content": "Say something."}]

# Breakers that open quickly and probe again soon, so every test stays well under a second.
FAST_UPSTREAM: dict[str, Any] = {
    "connect_timeout_s": 0.5,
    "first_byte_timeout_s": 2.0,
    "read_timeout_s": 2.0,
    "breaker_failures": 2,
    "breaker_cooldown_s": 0.3,
}


@pytest.fixture
def sdk() -> Iterator[Callable[[Gateway], openai.OpenAI]]:
    """``sdk(gateway)``: an OpenAI client on the gateway that never retries by itself."""
    clients: list[openai.OpenAI] = []

    def make(gw: Gateway) -> openai.OpenAI:
        client = openai.OpenAI(base_url=gw.base_url, api_key="test", max_retries=0, timeout=10)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def dead_url() -> str:
    """An endpoint URL on a free port where nothing listens."""
    return f"http://127.0.0.1:{free_port()}/v1"


def chat(client: openai.OpenAI, model: str = "m", **extra: Any) -> str:
    reply = client.chat.completions.create(model=model, messages=PROMPT, max_tokens=4, **extra)
    content = reply.choices[0].message.content
    assert content
    return content


def chat_error(client: openai.OpenAI, model: str = "m") -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=model, messages=PROMPT, max_tokens=4)
    return caught.value


def assert_openai_error(err: openai.APIStatusError, status: int, code: str) -> None:
    """The status, and the body in OpenAI's shape with the given code."""
    assert err.status_code == status, err.response.text
    body = err.response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert err.code == code  # what the SDK makes of it


def breaker_state(gw: Gateway, endpoint: str, model: str = "m") -> float:
    return gw.metric("switchyard_circuit_breaker_state", model=model, endpoint=endpoint)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.02)


def test_backend_down_gives_502_then_503_once_the_breaker_opens(
    gateway: Callable[..., Gateway], sdk: Callable[[Gateway], openai.OpenAI]
) -> None:
    url = dead_url()
    gw = gateway([model_entry("m", url)], upstream=FAST_UPSTREAM | {"breaker_cooldown_s": 60})
    client = sdk(gw)
    assert gw.client.get("/readyz").status_code == 200

    for _ in range(2):  # breaker_failures
        assert_openai_error(chat_error(client), 502, "upstream_unavailable")
    assert breaker_state(gw, url) == 2
    assert_openai_error(chat_error(client), 503, "no_healthy_endpoint")

    ready = gw.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {"status": "not_ready", "unhealthy_models": ["m"]}
    assert gw.client.get("/healthz").status_code == 200
    errors = gw.metric(
        "switchyard_upstream_errors_total", model="m", endpoint=url, kind="upstream_unavailable"
    )
    assert errors == 2
    assert gw.metric("switchyard_requests_total", model="m", endpoint="-", status="502") == 2
    assert gw.metric("switchyard_requests_total", model="m", endpoint="-", status="503") == 1
    assert gw.metric("switchyard_in_flight_requests", model="m") == 0


def test_requests_are_retried_on_a_second_endpoint_when_the_first_is_down(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    sdk: Callable[[Gateway], openai.OpenAI],
) -> None:
    dead, healthy = dead_url(), simulator("m").base_url
    # A breaker that never opens here, so every turn of the round robin meets the dead one.
    gw = gateway([model_entry("m", dead, healthy)], upstream={"breaker_failures": 100})
    client = sdk(gw)

    for _ in range(6):
        chat(client)

    retries = gw.metric("switchyard_retries_total", model="m", endpoint=healthy)
    assert retries >= 3  # round robin starts on the dead endpoint every other request
    errors = gw.metric(
        "switchyard_upstream_errors_total", model="m", endpoint=dead, kind="upstream_unavailable"
    )
    assert errors == retries
    assert gw.metric("switchyard_requests_total", model="m", endpoint=healthy, status="200") == 6


def test_requests_are_retried_on_a_second_endpoint_when_the_first_answers_500(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    sdk: Callable[[Gateway], openai.OpenAI],
) -> None:
    failing = simulator("m", error_rate=1.0).base_url
    healthy = simulator("m").base_url
    gw = gateway([model_entry("m", failing, healthy)], upstream={"breaker_failures": 100})
    client = sdk(gw)

    for _ in range(6):
        chat(client)

    retries = gw.metric("switchyard_retries_total", model="m", endpoint=healthy)
    assert retries >= 3
    errors = gw.metric(
        "switchyard_upstream_errors_total", model="m", endpoint=failing, kind="upstream_error"
    )
    assert errors == retries
    assert gw.metric("switchyard_requests_total", model="m", endpoint=healthy, status="200") == 6


def test_a_stream_is_not_retried_after_the_first_byte_and_ends_with_an_error_event(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    sdk: Callable[[Gateway], openai.OpenAI],
) -> None:
    dropping = simulator("m", drop_rate=1.0, drop_after_chunks=2)
    healthy = simulator("m")
    gw = gateway([model_entry("m", dropping.base_url, healthy.base_url)], upstream=FAST_UPSTREAM)
    client = sdk(gw)

    # A fresh pool's round robin starts on its first endpoint: the one that drops.
    stream = client.chat.completions.create(
        model="m", messages=PROMPT, max_tokens=50, stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert not isinstance(caught.value, openai.APIStatusError)  # the head said 200
    assert caught.value.code == "upstream_unavailable"
    assert "mid-stream" in caught.value.message
    assert received  # the client saw the first chunks before the break

    # Nothing went to the healthy endpoint: no retry once bytes reached the client.
    assert gw.metric("switchyard_retries_total", model="m", endpoint=healthy.base_url) == 0
    assert healthy.metric("vllm:request_success_total") == 0
    assert gw.metric(
        "switchyard_requests_total", model="m", endpoint=dropping.base_url, status="upstream_error"
    ) == 1
    assert gw.metric("switchyard_in_flight_requests", model="m") == 0

    # The gateway is fine: alive, and the next request is answered.
    assert gw.client.get("/healthz").status_code == 200
    chat(client)
    assert gw.client.get("/readyz").status_code == 200


def test_breaker_opens_on_errors_and_closes_after_a_successful_half_open_probe(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    sdk: Callable[[Gateway], openai.OpenAI],
) -> None:
    sim = simulator("m", error_rate=1.0)
    gw = gateway([model_entry("m", sim.base_url)], upstream=FAST_UPSTREAM)
    client = sdk(gw)
    assert breaker_state(gw, sim.base_url) == 0

    for _ in range(2):  # breaker_failures
        assert_openai_error(chat_error(client), 502, "upstream_error")
    assert breaker_state(gw, sim.base_url) == 2
    assert_openai_error(chat_error(client), 503, "no_healthy_endpoint")

    sim.app.faults.update({"error_rate": 0.0})
    opened = time.monotonic()
    wait_until(lambda: breaker_state(gw, sim.base_url) == 1, timeout=2)
    assert time.monotonic() - opened < 1.0  # cooldown 0.3 s
    chat(client)  # the half-open probe succeeds
    assert breaker_state(gw, sim.base_url) == 0
    assert gw.client.get("/readyz").status_code == 200
    chat(client)


def test_breaker_opens_again_when_the_half_open_probe_fails(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    sdk: Callable[[Gateway], openai.OpenAI],
) -> None:
    sim = simulator("m", error_rate=1.0)
    gw = gateway([model_entry("m", sim.base_url)], upstream=FAST_UPSTREAM)
    client = sdk(gw)
    for _ in range(2):
        chat_error(client)
    wait_until(lambda: breaker_state(gw, sim.base_url) == 1, timeout=2)

    assert_openai_error(chat_error(client), 502, "upstream_error")  # the probe fails
    assert breaker_state(gw, sim.base_url) == 2
    assert_openai_error(chat_error(client), 503, "no_healthy_endpoint")


def test_a_killed_backend_fails_requests_and_is_used_again_after_it_restarts(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    sdk: Callable[[Gateway], openai.OpenAI],
) -> None:
    sim = simulator("m")
    gw = gateway([model_entry("m", sim.base_url)], upstream=FAST_UPSTREAM)
    client = sdk(gw)
    chat(client)  # a keep-alive connection to the backend now sits in the gateway's pool

    sim.server.stop()
    statuses = [chat_error(client).status_code for _ in range(4)]
    assert statuses[:2] == [502, 502]
    assert statuses[2:] == [503, 503]  # the breaker opened after breaker_failures
    assert gw.client.get("/readyz").status_code == 503

    sim.server.start()  # same port
    wait_until(lambda: breaker_state(gw, sim.base_url) == 1, timeout=2)
    for _ in range(3):
        chat(client)
    assert breaker_state(gw, sim.base_url) == 0
    assert gw.client.get("/readyz").status_code == 200


def test_a_backend_that_never_answers_gives_504_after_the_first_byte_timeout(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    sdk: Callable[[Gateway], openai.OpenAI],
) -> None:
    sim = simulator("m", hang_rate=1.0)
    gw = gateway(
        [model_entry("m", sim.base_url)], upstream=FAST_UPSTREAM | {"first_byte_timeout_s": 0.3}
    )
    client = sdk(gw)

    for stream in (False, True):
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(
                model="m", messages=PROMPT, max_tokens=4, stream=stream
            )
        elapsed = time.monotonic() - started
        assert_openai_error(caught.value, 504, "upstream_timeout")
        assert 0.3 <= elapsed < 1.5, elapsed
    kind = "upstream_timeout"
    assert gw.metric(
        "switchyard_upstream_errors_total", model="m", endpoint=sim.base_url, kind=kind
    ) == 2
    assert gw.metric("switchyard_in_flight_requests", model="m") == 0
    # The hung requests were abandoned, so the backend holds none of them any more.
    wait_until(lambda: sim.metric("vllm:num_requests_running") == 0, timeout=3)


def test_a_client_disconnect_mid_stream_cancels_the_upstream_request(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    sdk: Callable[[Gateway], openai.OpenAI],
) -> None:
    sim = simulator("m", preset="slow")  # ~35 ms a token: 2000 tokens would take over a minute
    gw = gateway([model_entry("m", sim.base_url)], upstream=FAST_UPSTREAM)
    client = sdk(gw)

    stream = client.chat.completions.create(
        model="m", messages=PROMPT, max_tokens=2000, stream=True
    )
    chunks = iter(stream)
    next(chunks)
    next(chunks)
    assert sim.metric("vllm:num_requests_running") == 1
    assert gw.metric("switchyard_in_flight_requests", model="m") == 1
    stream.close()

    wait_until(lambda: sim.metric("vllm:num_requests_running") == 0, timeout=3)
    wait_until(lambda: gw.metric("switchyard_in_flight_requests", model="m") == 0, timeout=3)
    assert gw.metric(
        "switchyard_requests_total", model="m", endpoint=sim.base_url, status="client_closed"
    ) == 1
    # A client walking away is not the backend's fault.
    assert breaker_state(gw, sim.base_url) == 0
    assert sim.metric("vllm:request_success_total") == 0
    chat(client)


def test_a_client_disconnect_while_waiting_for_the_first_byte_cancels_the_upstream_request(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sim = simulator("m", hang_rate=1.0)
    gw = gateway([model_entry("m", sim.base_url)], upstream=FAST_UPSTREAM)
    body = {"model": "m", "messages": PROMPT, "max_tokens": 4}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gw.base_url}/chat/completions", json=body, timeout=0.3)

    wait_until(lambda: gw.metric("switchyard_in_flight_requests", model="m") == 0, timeout=3)
    assert gw.metric("switchyard_upstream_errors_total", model="m", endpoint=sim.base_url,
                     kind="upstream_timeout") == 0  # fmt: skip


@pytest.mark.skip(
    reason="the simulator has no fault that answers 429 (only error_rate's 500), so "
    "429 and Retry-After pass-through cannot be tested against it"
)
def test_an_upstream_429_reaches_the_client_with_its_retry_after() -> None:
    """Left for when the simulator can answer 429; not faked with a hand-made backend."""
