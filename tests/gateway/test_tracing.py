"""OpenTelemetry tracing: the span tree of proxied requests (concrete and routed, streamed
and not), retries as attempt spans, the client's ``traceparent`` continued, the backend's
``traceparent`` parented on its attempt span, OTLP export to a real receiver, export
failures that never fail a request, and a gateway without tracing that loads no SDK."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from switchyard.gateway.settings import SettingsError, build_settings
from tests.support.gateways import Gateway, Simulator, model_entry
from tests.support.routed import CANDIDATES, MESSAGES, routed_settings
from tests.support.tracing import (
    TracedGateway,
    by_name,
    children,
    one,
    otlp_grpc_receiver,
    otlp_receiver,
    span_hex,
    start_traced,
)

CHAT = "POST /v1/chat/completions"
ATTEMPT = "POST /chat/completions"
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
KEY = "sk-sy-tracing-test-key-0123456789abcdef"


@pytest.fixture
def traced() -> Iterator[Callable[..., TracedGateway]]:
    """``traced(models, tracing={...}, **sections)``: a gateway tracing into memory."""
    started: list[Gateway] = []

    def start(models: list[dict[str, Any]], **sections: Any) -> TracedGateway:
        exporter = InMemorySpanExporter()
        gw = start_traced(exporter, models, **sections)
        started.append(gw)
        return TracedGateway(gw, exporter)

    yield start
    for gw in started:
        gw.client.close()
        gw.server.stop()


def sdk(gw: Gateway, key: str = "unused", **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, default_headers=headers)


def chat(client: openai.OpenAI, model: str = "m", stream: bool = False) -> str:
    if stream:
        parts = client.chat.completions.create(
            model=model, messages=MESSAGES, max_tokens=4, stream=True
        )
        return "".join(p.choices[0].delta.content or "" for p in parts if p.choices)
    done = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=4)
    return done.choices[0].message.content or ""


def received(sim: Simulator) -> list[dict[str, str]]:
    seen: list[dict[str, str]] = httpx.get(f"{sim.server.url}/sim/traces").json()["received"]
    return seen


def parent_of(traceparent: str) -> tuple[str, str, bool]:
    """(trace id, parent span id, sampled) of a W3C ``traceparent``."""
    version, trace_id, span_id, flags = traceparent.split("-")
    assert version == "00"
    return trace_id, span_id, bool(int(flags, 16) & 1)


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_concrete_request_is_one_server_span_with_auth_admission_and_attempt_children(
    stream: bool,
    simulator: Callable[..., Simulator],
    traced: Callable[..., TracedGateway],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SWITCHYARD_KEY_SECRET", "tracing-secret")
    monkeypatch.setenv("TRACED_KEY", KEY)
    sim = simulator("m", decode_base_s=0.002)
    auth = {"enabled": True, "keys": [{"name": "k", "key_env": "TRACED_KEY",
                                       "limits": {"rpm": 1000}}]}  # fmt: skip
    tg = traced([model_entry("m", sim.base_url)], auth=auth)

    assert chat(sdk(tg.gateway, KEY), stream=stream)

    spans = tg.spans()
    server = one(spans, CHAT)
    assert server.parent is None and server.kind.name == "SERVER"
    expected = ["switchyard.authenticate", "switchyard.admit", ATTEMPT]
    assert children(spans, server) == expected + (["switchyard.stream"] if stream else [])
    assert attrs(server)["http.response.status_code"] == 200
    assert attrs(server)["gen_ai.request.model"] == "m"
    attempt = one(spans, ATTEMPT)
    assert attempt.kind.name == "CLIENT"
    assert attrs(attempt).items() >= {
        "switchyard.endpoint": sim.base_url, "switchyard.model": "m",
        "switchyard.retry": 0, "http.response.status_code": 200,
    }.items()  # fmt: skip
    assert {span_hex(s)[0] for s in spans} == {span_hex(server)[0]}  # one trace
    if stream:
        streamed = attrs(one(spans, "switchyard.stream"))
        assert streamed["switchyard.stream.outcome"] == "200"
        assert streamed["switchyard.stream.chunks"] >= 2  # the first chunk, then the rest
        assert streamed["switchyard.stream.bytes"] > 100
        assert streamed["switchyard.stream.ttfb_ms"] > 0


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_routed_request_has_a_routing_span_naming_router_model_and_cost_weight(
    stream: bool,
    simulator: Callable[..., Simulator],
    traced: Callable[..., TracedGateway],
    embedder_cache: Path,
) -> None:
    urls = {name: simulator(name).base_url for name, _, _ in CANDIDATES}
    tg = traced(**routed_settings(urls, embedder_cache))

    chat(sdk(tg.gateway), model="auto", stream=stream)

    spans = tg.spans()
    server = one(spans, CHAT)
    tail = ["switchyard.stream"] if stream else []
    # auth is off: no key to check and no limit to admit by, so no spans for them
    assert children(spans, server) == ["switchyard.route", ATTEMPT, *tail]
    route = attrs(one(spans, "switchyard.route"))
    assert route["switchyard.router"] == "smart"
    assert route["switchyard.model"] in urls
    assert isinstance(route["switchyard.cost_weight"], float)
    assert attrs(one(spans, ATTEMPT))["switchyard.model"] == route["switchyard.model"]
    assert attrs(server)["gen_ai.request.model"] == "auto"


def test_a_retried_request_has_one_attempt_span_per_endpoint_tried(
    simulator: Callable[..., Simulator], traced: Callable[..., TracedGateway]
) -> None:
    failing, healthy = simulator("m", error_rate=1.0), simulator("m")
    tg = traced(
        [model_entry("m", failing.base_url, healthy.base_url)],
        upstream={"breaker_failures": 100, "balancer": "round_robin"},
    )

    chat(sdk(tg.gateway))

    spans = tg.spans()
    attempts = sorted(by_name(spans, ATTEMPT), key=lambda s: attrs(s)["switchyard.retry"])
    assert [attrs(s)["switchyard.endpoint"] for s in attempts] == [
        failing.base_url, healthy.base_url
    ]  # fmt: skip
    assert [attrs(s)["http.response.status_code"] for s in attempts] == [500, 200]
    assert [s.status.status_code.name for s in attempts] == ["ERROR", "UNSET"]
    assert children(spans, one(spans, CHAT)).count(ATTEMPT) == 2
    # each backend got the traceparent of its own attempt
    for sim, attempt in ((failing, attempts[0]), (healthy, attempts[1])):
        assert parent_of(received(sim)[-1]["traceparent"]) == (*span_hex(attempt), True)


def test_the_clients_traceparent_is_continued_and_reaches_the_backend_under_the_attempt(
    simulator: Callable[..., Simulator], traced: Callable[..., TracedGateway]
) -> None:
    sim = simulator("m")
    tg = traced([model_entry("m", sim.base_url)])
    parent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"

    chat(sdk(tg.gateway, traceparent=parent, tracestate="vendor=opaque"))

    spans = tg.spans()
    server = one(spans, CHAT)
    assert server.parent is not None and server.parent.is_remote
    assert f"{server.parent.span_id:016x}" == CLIENT_SPAN
    assert {span_hex(s)[0] for s in spans} == {CLIENT_TRACE}
    _, attempt_id = span_hex(one(spans, ATTEMPT))
    seen = received(sim)[-1]
    assert seen["path"] == "/v1/chat/completions"
    assert parent_of(seen["traceparent"]) == (CLIENT_TRACE, attempt_id, True)
    assert seen["tracestate"] == "vendor=opaque"


def test_sampling_follows_the_client_and_the_ratio_for_new_traces(
    simulator: Callable[..., Simulator], traced: Callable[..., TracedGateway]
) -> None:
    sim = simulator("m")
    tg = traced([model_entry("m", sim.base_url)], tracing={"sample_ratio": 0.0})
    client = sdk(tg.gateway)

    chat(client)  # a new trace, not sampled: nothing recorded, the flag still propagated
    unsampled = received(sim)[-1]["traceparent"]
    chat(sdk(tg.gateway, traceparent=f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))

    assert parent_of(unsampled)[2] is False
    spans = tg.spans()
    assert {span_hex(s)[0] for s in spans} == {CLIENT_TRACE}
    assert len(by_name(spans, CHAT)) == 1


def test_a_refused_request_ends_its_server_span_with_the_error(
    simulator: Callable[..., Simulator], traced: Callable[..., TracedGateway]
) -> None:
    sim = simulator("m")
    tg = traced([model_entry("m", sim.base_url)])

    resp = tg.gateway.client.post("/v1/chat/completions", json={"model": "nope", "messages": []})

    assert resp.status_code in (400, 404)
    server = one(tg.spans(), CHAT)
    assert attrs(server)["http.response.status_code"] == resp.status_code
    assert "error.type" in attrs(server)
    assert by_name(tg.spans(), ATTEMPT) == []


def test_a_rejected_key_is_a_client_error_on_the_authentication_span(
    simulator: Callable[..., Simulator],
    traced: Callable[..., TracedGateway],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SWITCHYARD_KEY_SECRET", "tracing-secret")
    monkeypatch.setenv("TRACED_KEY", KEY)
    auth = {"enabled": True, "keys": [{"name": "k", "key_env": "TRACED_KEY"}]}
    tg = traced([model_entry("m", simulator("m").base_url)], auth=auth)

    with pytest.raises(openai.AuthenticationError):
        chat(sdk(tg.gateway, "sk-sy-not-a-key-0123456789abcdef0123"))

    spans = tg.spans()
    server, checked = one(spans, CHAT), one(spans, "switchyard.authenticate")
    assert attrs(server)["http.response.status_code"] == 401
    assert children(spans, server) == ["switchyard.authenticate"]
    assert "error.type" in attrs(checked)
    assert [s.status.status_code.name for s in (server, checked)] == ["UNSET", "UNSET"]


class _FailingExporter(InMemorySpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        raise ConnectionError("collector unreachable")


def test_an_exporter_that_raises_fails_no_request_and_is_counted(
    simulator: Callable[..., Simulator],
) -> None:
    sim = simulator("m")
    gw = start_traced(_FailingExporter(), [model_entry("m", sim.base_url)])
    try:
        for stream in (False, True):
            assert chat(sdk(gw), stream=stream)
        # a batch per span here: server + attempt, then server + attempt + stream
        assert gw.metric("switchyard_trace_export_failures_total") >= 4
        assert gw.metric("switchyard_trace_spans_total", result="failed") >= 4
    finally:
        gw.client.close()
        gw.server.stop()


def test_spans_reach_a_real_otlp_receiver_and_its_refusals_are_counted(
    simulator: Callable[..., Simulator],
) -> None:
    sim = simulator("m")
    with otlp_receiver() as receiver:
        tracing = {"endpoint": receiver.endpoint, "service_name": "sy-test", "timeout_s": 2}
        gw = start_traced(None, [model_entry("m", sim.base_url)], tracing=tracing)
        try:
            chat(sdk(gw))
            app = gw.server.app
            assert app.state.tracing.flush()
            server, attempt = sorted(receiver.wait(2), key=lambda s: s["name"] != CHAT)
            assert (server["name"], attempt["name"]) == (CHAT, ATTEMPT)
            assert attempt["parent_span_id"] == server["span_id"]
            assert attempt["attributes"]["switchyard.endpoint"] == sim.base_url
            spans = receiver.spans
            assert receiver.resources[0]["service.name"] == "sy-test"
            assert gw.metric("switchyard_trace_spans_total", result="exported") == len(spans)

            receiver.status = 400  # a refusal the exporter does not retry
            chat(sdk(gw))
            app.state.tracing.flush()
            assert gw.metric("switchyard_trace_export_failures_total") >= 1
        finally:
            gw.client.close()
            gw.server.stop()


def test_spans_reach_an_otlp_grpc_receiver(simulator: Callable[..., Simulator]) -> None:
    sim = simulator("m")
    with otlp_grpc_receiver() as receiver:
        tracing = {"endpoint": f"http://127.0.0.1:{receiver.port}", "protocol": "grpc"}
        gw = start_traced(None, [model_entry("m", sim.base_url)], tracing=tracing)
        try:
            chat(sdk(gw))
            assert gw.server.app.state.tracing.flush()
            assert {s["name"] for s in receiver.wait(2)} == {CHAT, ATTEMPT}
        finally:
            gw.client.close()
            gw.server.stop()


def test_a_gateway_without_tracing_loads_no_tracer_or_exporter(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from switchyard.gateway.app import create_app\n"
        "from switchyard.gateway.settings import build_settings\n"
        "app = create_app(build_settings({'models': [{'name': 'm', 'price_input_per_mtok': 1,"
        " 'price_output_per_mtok': 1, 'endpoints': [{'url': 'http://127.0.0.1:9/v1'}]}]}))\n"
        "assert app.proxy.tracing is None\n"
        "ours = ('opentelemetry.sdk.trace', 'opentelemetry.exporter',"
        " 'switchyard.gateway.tracing.spans', 'switchyard.gateway.tracing.export')\n"
        "print(sorted(m for m in sys.modules if m.startswith(ours)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip() == "[]"


def test_the_tracing_section_is_validated() -> None:
    models = [model_entry("m", "http://127.0.0.1:9/v1")]
    assert build_settings({"models": models}).tracing.enabled is False
    for bad in ({"protocol": "thrift"}, {"sample_ratio": 1.5}, {"unknown": 1}):
        with pytest.raises(SettingsError, match="tracing"):
            build_settings({"models": models, "tracing": bad})
