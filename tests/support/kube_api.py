"""A stand-in for the Kubernetes API server's EndpointSlice list and watch (no API server can
run here from a package): the HTTP protocol the official client speaks — a list with its
``resourceVersion``, then a watch streaming one JSON event per line — served by Starlette on a
loopback port, with slices a test adds, changes and deletes while a watch is open. It is not
Kubernetes: it checks nothing but the path and the label selector."""

from __future__ import annotations

import asyncio
import itertools
import json
import queue
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.servers import ServerThread

PATH = "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"


def endpoint_slice(
    name: str, service: str, ready: dict[str, bool], zone: str = "z1"
) -> dict[str, Any]:
    """An EndpointSlice (IPv4) of ``service`` with one endpoint per address in ``ready``."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": [ip], "conditions": {"ready": ok}, "zone": zone}
            for ip, ok in ready.items()
        ],
        "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}],
    }


class KubeApi:
    """``.url``; ``put(slice)``/``delete(name)`` change the slices (and tell open watches);
    ``fail_with = 403`` answers every request with that status."""

    def __init__(self) -> None:
        self.slices: dict[str, dict[str, Any]] = {}
        self.fail_with: int | None = None
        self.selectors: list[str] = []
        self._version = itertools.count(1)
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        app = Starlette(routes=[Route(PATH, self._endpointslices)])
        self.server = ServerThread(app, lifespan="off")

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> KubeApi:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def kubeconfig(self, path: Path, namespace: str) -> Path:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": self.url}}],
            "users": [{"name": "test", "user": {"token": "test-token"}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test",
                                                      "namespace": namespace}}],
        }  # fmt: skip
        path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
        return path

    def put(self, endpoint_slice: dict[str, Any]) -> None:
        name = endpoint_slice["metadata"]["name"]
        kind = "MODIFIED" if name in self.slices else "ADDED"
        self.slices[name] = self._versioned(endpoint_slice)
        self._events.put({"type": kind, "object": self.slices[name]})

    def delete(self, name: str) -> None:
        gone = self.slices.pop(name)
        self._events.put({"type": "DELETED", "object": self._versioned(gone)})

    def _versioned(self, obj: dict[str, Any]) -> dict[str, Any]:
        metadata = obj["metadata"] | {"resourceVersion": str(next(self._version))}
        return obj | {"metadata": metadata}

    async def _endpointslices(self, request: Request) -> Response:
        if self.fail_with is not None:
            status = {"kind": "Status", "status": "Failure", "code": self.fail_with,
                      "reason": "Forbidden", "message": "endpointslices is forbidden"}  # fmt: skip
            return JSONResponse(status, status_code=self.fail_with)
        self.selectors.append(request.query_params.get("labelSelector", ""))
        if request.query_params.get("watch") in ("true", "1", "True"):
            return StreamingResponse(self._watch(), media_type="application/json")
        items = list(self.slices.values())
        version = str(next(self._version))
        body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSliceList",
                "metadata": {"resourceVersion": version}, "items": items}  # fmt: skip
        return JSONResponse(body)

    async def _watch(self) -> AsyncIterator[bytes]:
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.01)
                continue
            yield json.dumps(event).encode() + b"\n"
