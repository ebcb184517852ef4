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
from openai.types.chat import ChatCompletionMessageParam

from tests.support.gateways import Gateway, Simulator, model_entry
from tests.support.servers import free_port

PROMPT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say something."}]

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


def chat(client: openai.OpenAI, model: str = "m") -> str:
    reply = client.chat.completions.create(model=model, messages=PROMPT, max_tokens=4)
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


def breaker_state(gw: Gateway, endpoint: str) -> float:
    return gw.metric("switchyard_circuit_breaker_state", model="m", endpoint=endpoint)


def finished(gw: Gateway, endpoint: str, status: str) -> float:
    """Requests of model "m" finished with ``status`` (``endpoint`` "-" when none answered)."""
    return gw.metric("switchyard_requests_total", model="m", endpoint=endpoint, status=status)


def upstream_errors(gw: Gateway, endpoint: str, kind: str) -> float:
    return gw.metric("switchyard_upstream_errors_total", model="m", endpoint=endpoint, kind=kind)


def retries(gw: Gateway, endpoint: str) -> float:
    """Attempts of model "m" moved onto ``endpoint``."""
    return gw.metric("switchyard_retries_total", model="m", endpoint=endpoint)


def in_flight(gw: Gateway) -> float:
    return gw.metric("switchyard_in_flight_requests", model="m")


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
    assert upstream_errors(gw, url, "upstream_unavailable") == 2
    assert finished(gw, "-", "502") == 2
    assert finished(gw, "-", "503") == 1
    assert in_flight(gw) == 0


def test_requests_are_retried_on_a_second_endpoint_when_the_first_is_down(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    sdk: Callable[[Gateway], openai.OpenAI],
) -> None:
    dead, healthy = dead_url(), simulator("m").base_url
    # A breaker that never opens here, so every turn of the round robin meets the dead one.
    gw = gateway(
        [model_entry("m", dead, healthy)],
        upstream={"breaker_failures": 100, "balancer": "round_robin"},
    )
    client = sdk(gw)

    for _ in range(6):
        chat(client)

    moved = retries(gw, healthy)
    assert moved >= 3  # round robin starts on the dead endpoint every other request
    assert upstream_errors(gw, dead, "upstream_unavailable") == moved
    assert finished(gw, healthy, "200") == 6


def test_requests_are_retried_on_a_second_endpoint_when_the_first_answers_500(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    sdk: Callable[[Gateway], openai.OpenAI],
) -> None:
    failing = simulator("m", error_rate=1.0).base_url
    healthy = simulator("m").base_url
    gw = gateway(
        [model_entry("m", failing, healthy)],
        upstream={"breaker_failures": 100, "balancer": "round_robin"},
    )
    client = sdk(gw)

    for _ in range(6):
        chat(client)

    moved = retries(gw, healthy)
    assert moved >= 3
    assert upstream_errors(gw, failing, "upstream_error") == moved
    assert finished(gw, healthy, "200") == 6


def test_a_stream_is_not_retried_after_the_first_byte_and_ends_with_an_error_event(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    sdk: Callable[[Gateway], openai.OpenAI],
) -> None:
    dropping = simulator("m", drop_rate=1.0, drop_after_chunks=2)
    healthy = simulator("m")
    gw = gateway(
        [model_entry("m", dropping.base_url, healthy.base_url)],
        upstream=FAST_UPSTREAM | {"balancer": "round_robin"},
    )
    client = sdk(gw)

    # A fresh pool's round robin starts on its first endpoint: the one that drops.
    stream = client.chat.completions.create(model="m", messages=PROMPT, max_tokens=50, stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert not isinstance(caught.value, openai.APIStatusError)  # the head said 200
    assert caught.value.code == "upstream_unavailable"
    assert received  # the client saw the first chunks before the break

    # Nothing went to the healthy endpoint: no retry once bytes reached the client.
    assert retries(gw, healthy.base_url) == 0
    assert healthy.metric("vllm:request_success_total") == 0
    assert finished(gw, dropping.base_url, "upstream_error") == 1
    assert in_flight(gw) == 0

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
            client.chat.completions.create(model="m", messages=PROMPT, max_tokens=4, stream=stream)
        elapsed = time.monotonic() - started
        assert_openai_error(caught.value, 504, "upstream_timeout")
        assert 0.3 <= elapsed < 1.5, elapsed
    assert upstream_errors(gw, sim.base_url, "upstream_timeout") == 2
    assert in_flight(gw) == 0


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
    assert in_flight(gw) == 1
    stream.close()

    wait_until(lambda: sim.metric("vllm:num_requests_running") == 0, timeout=3)
    wait_until(lambda: in_flight(gw) == 0, timeout=3)
    assert finished(gw, sim.base_url, "client_closed") == 1
    # A client walking away is not the backend's fault.
    assert breaker_state(gw, sim.base_url) == 0
    assert sim.metric("vllm:request_success_total") == 0
    chat(client)


def endpoint_in_flight(gw: Gateway) -> int:
    """The pool's own count of requests on the (only) endpoint of model "m"."""
    count: int = gw.server.app.state.upstreams.pools["m"].endpoints[0].in_flight
    return count


def test_a_client_disconnect_before_the_first_byte_cancels_the_upstream_request(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sim = simulator("m", preset="slow")  # 2000 tokens: over a minute of generation
    gw = gateway([model_entry("m", sim.base_url)], upstream={"first_byte_timeout_s": 30})
    body = {"model": "m", "messages": PROMPT, "max_tokens": 2000}
    with pytest.raises(httpx.ReadTimeout):  # httpx closes the connection on the way out
        httpx.post(f"{gw.base_url}/chat/completions", json=body, timeout=0.3)

    wait_until(lambda: sim.metric("vllm:num_requests_running") == 0, timeout=1)
    wait_until(lambda: in_flight(gw) == 0, timeout=1)
    assert finished(gw, "-", "client_closed") == 1
    assert endpoint_in_flight(gw) == 0
    assert breaker_state(gw, sim.base_url) == 0  # the client leaving is not a failure


def test_a_half_open_probe_abandoned_by_its_client_does_not_wedge_the_breaker(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    sdk: Callable[[Gateway], openai.OpenAI],
) -> None:
    sim = simulator("m", error_rate=1.0)
    gw = gateway(
        [model_entry("m", sim.base_url)], upstream=FAST_UPSTREAM | {"first_byte_timeout_s": 30}
    )
    client = sdk(gw)
    for _ in range(2):
        chat_error(client)
    wait_until(lambda: breaker_state(gw, sim.base_url) == 1, timeout=2)

    # The probe hangs and its client gives up before any answer.
    sim.app.faults.update({"error_rate": 0.0, "hang_rate": 1.0})
    body = {"model": "m", "messages": PROMPT, "max_tokens": 4}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gw.base_url}/chat/completions", json=body, timeout=0.3)
    wait_until(lambda: in_flight(gw) == 0, timeout=1)
    assert endpoint_in_flight(gw) == 0

    # The backend recovers: the next request may probe again and gets through.
    sim.app.faults.update({"hang_rate": 0.0})
    time.sleep(0.35)  # at most one more cooldown
    chat(client)
    assert breaker_state(gw, sim.base_url) == 0


def test_an_upstream_429_reaches_the_client_and_its_retry_after_pauses_the_endpoint(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    sdk: Callable[[Gateway], openai.OpenAI],
) -> None:
    sim = simulator("m", error_rate=1.0, error_status=429)  # answers Retry-After: 1
    gw = gateway([model_entry("m", sim.base_url)], upstream=FAST_UPSTREAM)
    client = sdk(gw)

    err = chat_error(client)
    assert isinstance(err, openai.RateLimitError)
    assert_openai_error(err, 429, "upstream_rate_limited")
    assert err.response.json()["error"]["type"] == "rate_limit_error"
    assert err.response.headers["retry-after"] == "1"  # the backend's, passed on
    # Within that second the endpoint is not asked again: the gateway answers for it.
    for _ in range(FAST_UPSTREAM["breaker_failures"]):
        err = chat_error(client)
        assert_openai_error(err, 429, "model_overloaded")
        assert err.response.headers["retry-after"] == "1"
    assert breaker_state(gw, sim.base_url) == 0  # a busy backend is not a broken one
    assert upstream_errors(gw, sim.base_url, "upstream_rate_limited") == 1
    assert finished(gw, "-", "429") == 3
    time.sleep(1.05)  # the pause is over: the endpoint is asked again
    assert_openai_error(chat_error(client), 429, "upstream_rate_limited")
    assert upstream_errors(gw, sim.base_url, "upstream_rate_limited") == 2


def test_an_upstream_429_is_retried_on_another_endpoint_which_then_takes_the_traffic(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    sdk: Callable[[Gateway], openai.OpenAI],
) -> None:
    limited = simulator("m", error_rate=1.0, error_status=429).base_url
    healthy = simulator("m").base_url
    gw = gateway(
        [model_entry("m", limited, healthy)],
        upstream={"breaker_failures": 100, "balancer": "round_robin"},
    )
    client = sdk(gw)

    for _ in range(4):
        chat(client)
    # Round robin starts on the limited endpoint; its Retry-After keeps it out afterwards.
    assert retries(gw, healthy) == 1
    assert upstream_errors(gw, limited, "upstream_rate_limited") == 1
    assert finished(gw, healthy, "200") == 4
