"""Tracing in tests: a gateway whose spans go to the OpenTelemetry SDK's in-memory exporter,
what a test reads of the finished spans, and a real OTLP/HTTP receiver on a socket (no
OpenTelemetry Collector is packaged for pip or Debian here; this one decodes the same
protobuf a collector would)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from switchyard.gateway.app import create_app
from switchyard.gateway.connections import protocol
from switchyard.gateway.settings import build_settings
from tests.support.gateways import Gateway
from tests.support.servers import ServerThread


@dataclass
class TracedGateway:
    """A running gateway with tracing on, and the exporter its spans end in."""

    gateway: Gateway
    exporter: InMemorySpanExporter

    def spans(self, count: int = 1, timeout: float = 5.0) -> list[ReadableSpan]:
        """The finished spans, once ``count`` server spans are among them (the server span
        ends just after the response's last byte went out)."""
        deadline = time.monotonic() + timeout
        while True:
            spans = list(self.exporter.get_finished_spans())
            servers = [s for s in spans if s.kind.name == "SERVER"]
            if len(servers) >= count or time.monotonic() > deadline:
                return spans
            time.sleep(0.01)


def start_traced(
    exporter: Any, models: list[dict[str, Any]], tracing: dict[str, Any] | None = None,
    **sections: Any,
) -> Gateway:  # fmt: skip
    """A gateway serving ``models`` with tracing on (``tracing``: more of its section) whose
    spans go to ``exporter`` (``None``: OTLP, as configured)."""
    section = {"enabled": True, **(tracing or {})}
    settings = build_settings({"models": models, "tracing": section, **sections})
    registry = CollectorRegistry()
    app = create_app(settings, registry, span_exporter=exporter)
    server = ServerThread(app, http=protocol(settings.server)).start()
    return Gateway(server, registry, settings)


def by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = by_name(spans, name)
    assert len(found) == 1, f"{len(found)} spans named {name!r} in {[s.name for s in spans]}"
    return found[0]


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[str]:
    """The names of ``parent``'s direct children, in start order."""
    assert parent.context is not None
    kids = [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]
    return [s.name for s in sorted(kids, key=lambda s: s.start_time or 0)]


def span_hex(span: ReadableSpan) -> tuple[str, str]:
    """(trace id, span id) as a ``traceparent`` spells them."""
    assert span.context is not None
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


@dataclass
class OtlpReceiver:
    """An OTLP/HTTP traces receiver on 127.0.0.1 (``status``: what it answers)."""

    status: int = 200
    spans: list[dict[str, Any]] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def receive(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        with self.lock:
            for batch in request.resource_spans:
                resource = {a.key: a.value.string_value for a in batch.resource.attributes}
                self.resources.append(resource)
                for scope in batch.scope_spans:
                    self.spans += [_decoded(s) for s in scope.spans]

    def wait(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.spans) >= count:
                    return list(self.spans)
            time.sleep(0.02)
        raise AssertionError(f"{len(self.spans)} spans received, expected {count}")


def _decoded(span: Any) -> dict[str, Any]:
    attributes = {}
    for a in span.attributes:
        kind = a.value.WhichOneof("value")
        attributes[a.key] = getattr(a.value, kind) if kind else None
    return {
        "name": span.name,
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex(),
        "attributes": attributes,
    }


@contextmanager
def otlp_grpc_receiver() -> Iterator[OtlpReceiver]:
    """An OTLP/gRPC traces receiver (``endpoint``: ``host:port``)."""
    import grpc  # type: ignore[import-untyped]
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as services

    receiver = OtlpReceiver()

    class Service(services.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> ExportTraceServiceResponse:
            receiver.receive(request.SerializeToString())
            return ExportTraceServiceResponse()

    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    services.add_TraceServiceServicer_to_server(Service(), server)  # type: ignore[no-untyped-call]
    receiver.port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield receiver
    finally:
        server.stop(grace=None)


@contextmanager
def otlp_receiver(status: int = 200) -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver(status)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if receiver.status == 200:
                receiver.receive(body)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(receiver.status)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
