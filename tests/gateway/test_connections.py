"""The gateway's HTTP server over raw sockets: stalled request heads are timed out, open
connections are capped, and what the HTTP parser rejects is answered in OpenAI's error shape
with a request id. The server runs with ``uvicorn_options``, as ``switchyard serve`` does."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn

from switchyard.gateway.app import create_app
from switchyard.gateway.serve import uvicorn_options
from switchyard.gateway.settings import build_settings
from tests.support.servers import free_port

GET = b"GET /v1/models HTTP/1.1\r\nHost: gw\r\n\r\n"
ERROR_FIELDS = {"message", "type", "param", "code"}


@pytest.fixture
def serve() -> Iterator[Callable[..., int]]:
    """``serve(**server_section)`` runs a gateway under ``uvicorn_options``; returns its port."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(**server: Any) -> int:
        port = free_port()
        section = {"port": port, "log_level": "warning", **server}
        models = [{"name": "m", "price_input_per_mtok": 1, "price_output_per_mtok": 1,
                   "endpoints": [{"url": "http://127.0.0.1:9/v1"}]}]  # fmt: skip
        settings = build_settings({"models": models, "server": section})
        options = uvicorn_options(settings.server) | {"timeout_graceful_shutdown": 1}
        instance = uvicorn.Server(uvicorn.Config(create_app(settings), **options))
        thread = threading.Thread(target=instance.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not instance.started:
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.01)
        servers.append((instance, thread))
        return port

    yield start
    for instance, thread in servers:
        instance.should_exit = True
        thread.join(timeout=5)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.settimeout(5)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (socket timeout: it did
    not close)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def parse(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def scrape(port: int, series: str) -> float | None:
    """One sample of the gateway's /metrics (None: absent)."""
    with connect(port) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        text = read_until_closed(sock).decode()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def assert_openai_error(response: bytes, status: int, code: str) -> None:
    got, headers, body = parse(response)
    assert got == status, response
    assert headers["content-type"] == "application/json"
    assert headers["x-request-id"]
    error = json.loads(body)["error"]
    assert set(error) == ERROR_FIELDS
    assert error["code"] == code


@pytest.mark.parametrize(
    "partial",
    [b"GET /v1/mod", b"GET /v1/models HTTP/1.1\r\nHost: gw\r\nX-Half: "],
    ids=["half_request_line", "half_headers"],
)
def test_a_client_stalled_in_its_request_head_is_answered_408_and_closed(
    serve: Callable[..., int], partial: bytes
) -> None:
    port = serve(header_timeout_s=0.5)
    with connect(port) as sock:
        sock.sendall(partial)
        started = time.monotonic()
        response = read_until_closed(sock)
    assert time.monotonic() - started < 3
    assert_openai_error(response, 408, "request_timeout")
    assert scrape(port, 'switchyard_http_rejected_total{reason="request_timeout"}') == 1


def test_a_kept_alive_connection_stalled_in_its_next_head_is_closed(
    serve: Callable[..., int],
) -> None:
    port = serve(header_timeout_s=0.5, keep_alive_s=0.5)
    with connect(port) as sock:
        sock.sendall(GET)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first
        time.sleep(0.2)  # within the keep-alive time: the connection is still usable
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHo")
        started = time.monotonic()
        read_until_closed(sock)
    assert time.monotonic() - started < 3


def test_requests_whose_heads_arrive_in_time_are_served_on_one_connection(
    serve: Callable[..., int],
) -> None:
    port = serve(header_timeout_s=0.3)
    with connect(port) as sock:
        for _ in range(3):
            for piece in (GET[:10], GET[10:]):  # a head in two pieces, each in time
                sock.sendall(piece)
                time.sleep(0.1)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            time.sleep(0.4)  # longer than the head timeout, shorter than keep-alive


def test_responses_do_not_name_the_server_software(serve: Callable[..., int]) -> None:
    with connect(serve()) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        status, headers, _ = parse(read_until_closed(sock))
    assert status == 200 and "date" in headers and "x-request-id" in headers
    assert "server" not in headers


def test_pipelined_requests_are_answered_in_order_on_one_connection(
    serve: Callable[..., int],
) -> None:
    closing = b"GET /v1/models HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
    with connect(serve()) as sock:
        sock.sendall(GET + b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n"
                     b"Content-Length: 2\r\n\r\n{}" + closing)  # fmt: skip
        answers = read_until_closed(sock)
    assert re.findall(rb"HTTP/1.1 (\d+)", answers) == [b"200", b"400", b"200"]


def test_an_http_1_0_request_is_answered_and_its_connection_closed(
    serve: Callable[..., int],
) -> None:
    with connect(serve()) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.0\r\n\r\n")
        status, headers, body = parse(read_until_closed(sock))
    assert status == 200 and headers["connection"] == "close"
    assert json.loads(body)["data"][0]["id"] == "m"


def test_a_percent_encoded_path_is_decoded_and_a_head_request_gets_no_body(
    serve: Callable[..., int],
) -> None:
    port = serve()
    with connect(port) as sock:
        sock.sendall(b"GET /v1/%6Dodels?x=1 HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        status, _, body = parse(read_until_closed(sock))
    assert status == 200 and json.loads(body)["object"] == "list"
    with connect(port) as sock:
        sock.sendall(b"HEAD /v1/models HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        status, headers, body = parse(read_until_closed(sock))
    assert body == b"" and "x-request-id" in headers


def test_a_connection_over_the_cap_is_answered_503_and_closed(
    serve: Callable[..., int],
) -> None:
    port = serve(max_connections=3)
    with contextlib.ExitStack() as stack:
        held = [stack.enter_context(connect(port)) for _ in range(3)]
        time.sleep(0.1)
        with connect(port) as extra:
            assert_openai_error(read_until_closed(extra), 503, "too_many_connections")
        held[1].sendall(b"GET /metrics HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        text = read_until_closed(held[1]).decode()
        assert 'switchyard_http_connections{kind="open"} 3.0' in text
        assert 'switchyard_http_connections{kind="limit"} 3.0' in text
        assert 'switchyard_http_rejected_total{reason="too_many_connections"} 1.0' in text
        held[0].sendall(GET)  # the connections within the cap are served
        assert held[0].recv(65536).startswith(b"HTTP/1.1 200")
    time.sleep(0.1)
    with connect(port) as again:  # once they are closed, new ones are accepted
        again.sendall(GET)
        assert again.recv(65536).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /v1/models HTTP/1.1\r\nHost: gw\r\nX-A: a\rb\r\n\r\n",
        b"GET /v1/models HTTP/1.1\r\nHost: gw\r\nX-A: a\x00b\r\n\r\n",
        b"GET /v1/models HTTP/1.1\r\nHost: gw\r\nX-A: a\r\n folded\r\n\r\n",
    ],
    ids=["bare_cr", "nul", "folded_header"],
)
def test_a_request_the_http_parser_rejects_gets_an_openai_error_with_a_request_id(
    serve: Callable[..., int], request_bytes: bytes
) -> None:
    port = serve()
    with connect(port) as sock:
        sock.sendall(request_bytes)
        response = read_until_closed(sock)
    assert_openai_error(response, 400, "invalid_http_request")
    assert scrape(port, 'switchyard_http_rejected_total{reason="invalid_http_request"}') == 1
