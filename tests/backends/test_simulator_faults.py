"""Injected faults: errors, dropped streams, hangs, added latency, and changing them live."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from switchyard.backends.simulator import SimulatorApp, build_config, create_simulator_app
from tests.support.servers import ServerThread

MODEL = "sim-faulty"
MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]
Start = Callable[..., tuple[SimulatorApp, ServerThread]]


@pytest.fixture
def serve() -> Iterator[Start]:
    servers: list[ServerThread] = []

    def start(preset: str = "zero", **overrides: Any) -> tuple[SimulatorApp, ServerThread]:
        app = create_simulator_app(build_config(MODEL, preset, 3, **overrides))
        servers.append(ServerThread(app).start())
        return app, servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[SimulatorApp, ServerThread]]:
    """One server for the tests that leave its faults unchanged."""
    app = create_simulator_app(build_config(MODEL, "zero", 3))
    with ServerThread(app) as server:
        yield app, server


def sdk(server: ServerThread, timeout: float = 10.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=timeout)


def test_error_rate_one_answers_500_in_openai_shape(serve: Start) -> None:
    _, server = serve(error_rate=1.0)
    reply = httpx.post(f"{server.url}/v1/chat/completions", json={"messages": MESSAGES})
    assert reply.status_code == 500
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    with sdk(server) as client, pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)


@pytest.mark.parametrize(("status", "retry_after"), [(429, "1"), (503, "1"), (502, None)])
def test_error_status_picks_the_injected_status(
    serve: Start, status: int, retry_after: str | None
) -> None:
    _, server = serve(error_rate=1.0, error_status=status)
    reply = httpx.post(f"{server.url}/v1/completions", json={"prompt": "x"})
    assert reply.status_code == status
    assert reply.headers.get("retry-after") == retry_after
    assert set(reply.json()["error"]) == {"message", "type", "param", "code"}


def test_dropped_stream_raises_in_the_openai_sdk(serve: Start) -> None:
    _, server = serve(drop_rate=1.0, drop_after_chunks=2)
    received: list[str | None] = []
    with sdk(server) as client, pytest.raises(openai.APIConnectionError):
        stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert len(received) == 2  # the role chunk and one token, then the connection died


def _raw_stream(port: int, body: bytes) -> bytes:
    """Everything the server sends on one connection until it closes it."""
    request = (
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_dropped_stream_leaves_the_chunked_body_unterminated(serve: Start) -> None:
    _, server = serve(drop_rate=1.0, drop_after_chunks=3)
    data = _raw_stream(server.port, b'{"prompt": "hi", "max_tokens": 10, "stream": true}')
    assert data.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding: chunked" in data.lower()
    assert data.count(b"data: ") == 3
    assert not data.endswith(b"0\r\n\r\n")  # no terminating chunk: the body is incomplete
    assert b"[DONE]" not in data


def test_a_stream_shorter_than_drop_after_chunks_is_still_dropped(serve: Start) -> None:
    _, server = serve(drop_rate=1.0, drop_after_chunks=50)
    data = _raw_stream(server.port, b'{"prompt": "hi", "max_tokens": 2, "stream": true}')
    assert data.count(b"data: ") == 2
    assert not data.endswith(b"0\r\n\r\n")


def test_drop_with_the_engine_also_frees_the_slot(serve: Start) -> None:
    app, server = serve("fast", drop_rate=1.0, drop_after_chunks=1)
    data = _raw_stream(server.port, b'{"prompt": "hi", "max_tokens": 10, "stream": true}')
    assert b"[DONE]" not in data
    deadline = time.monotonic() + 3
    while app.engine.num_running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert app.engine.num_running == 0


def test_hang_makes_the_client_time_out_and_others_still_work(serve: Start) -> None:
    app, server = serve(hang_rate=1.0)
    with sdk(server, timeout=0.3) as client:
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model=MODEL, messages=MESSAGES)
        app.faults.update({"hang_rate": 0.0})
        assert client.chat.completions.create(model=MODEL, messages=MESSAGES).choices


def test_added_latency_delays_the_answer(serve: Start) -> None:
    _, server = serve(added_latency_ms=150)
    started = time.perf_counter()
    httpx.post(f"{server.url}/v1/completions", json={"prompt": "x", "max_tokens": 1})
    assert time.perf_counter() - started >= 0.15


def test_faults_change_at_run_time_via_sim_faults(serve: Start) -> None:
    app, server = serve()
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/sim/faults").json()["error_rate"] == 0.0
        updated = client.post("/sim/faults", json={"error_rate": 1.0, "added_latency_ms": 5})
        assert updated.status_code == 200
        assert updated.json()["error_rate"] == 1.0
        assert app.faults.added_latency_ms == 5
        assert client.post("/v1/completions", json={"prompt": "x"}).status_code == 500
        client.post("/sim/faults", json={"error_rate": 0})
        assert client.post("/v1/completions", json={"prompt": "x"}).status_code == 200
        assert client.get("/sim/faults").json() == app.faults.to_dict()


@pytest.mark.parametrize(
    "body",
    [
        b'{"error_rate": 2}',
        b'{"drop_rate": -0.1}',
        b'{"hang_rate": "often"}',
        b'{"added_latency_ms": true}',
        b'{"drop_after_chunks": 1.5}',
        b'{"error_status": 404}',
        b'{"teleport_rate": 0.5}',
        b"[1]",
        b"{not json",
    ],
)
def test_bad_fault_updates_are_400_and_change_nothing(
    shared: tuple[SimulatorApp, ServerThread], body: bytes
) -> None:
    app, server = shared
    before = app.faults.to_dict()
    reply = httpx.post(f"{server.url}/sim/faults", content=body)
    assert reply.status_code == 400
    assert "message" in reply.json()["error"]
    assert app.faults.to_dict() == before
