"""The real gateway app with its upstream HTTP client swapped: the product's own HTTP/1.1 client
(``http1``, ``switchyard.backends.http1``), aiohttp's ``ClientSession`` (the product's client
until 2026-12-04), plain ``httpx.AsyncClient``, or httpx on the ``httpx-aiohttp`` transport.

Serve mode (the default) is a gateway command for the shared harness::

    python bench/client_variants.py --client httpx --port 4620 --upstream http://127.0.0.1:18000/v1

It builds the app with ``switchyard.gateway.app.create_app`` (one model, ``fake-model``), lets its
own lifespan start the upstreams, then replaces ``endpoint.backend`` on every ``Endpoint`` of
``app.state.upstreams.pools`` with a bench-only backend that has the same ``send()`` contract as
``switchyard.backends.client.OpenAICompatBackend``. Everything else on the hot path (middleware,
payload parsing, dispatch, metrics, SSE pass-through) is the product's.

Compare mode runs ``../shared/bench/run_bench.py`` once per client and writes
``bench/results/client-<client>.json`` and a table in ``bench/results/client_variants.md``::

    python bench/client_variants.py --compare [--repeats 2 --duration 5]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import benchkit as bk
import httpx
import orjson
import uvicorn
from fastapi import FastAPI
from httpx_aiohttp import AiohttpTransport

from switchyard.backends.client import Timeouts, UpstreamRequest, create_session
from switchyard.backends.errors import (
    UpstreamConnectError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from switchyard.gateway.app import create_app
from switchyard.gateway.serve import uvicorn_options
from switchyard.gateway.settings import ServerConfig, Settings, build_settings

CLIENTS = ("http1", "aiohttp", "httpx", "httpx-aiohttp")
PRODUCT = "http1"
TRANSPORT_ERRORS = (httpx.TransportError, aiohttp.ClientError, ConnectionError)


# ---------------------------------------------------------------- bench-only httpx backends


class HttpxResponse:
    """Same surface as ``switchyard.backends.client.UpstreamResponse``, over an
    ``httpx.Response``."""

    __slots__ = ("_closing", "_iter", "_resp", "body", "content_type", "first_chunk", "headers",
                 "status")  # fmt: skip

    def __init__(
        self,
        resp: httpx.Response,
        body: bytes,
        first_chunk: bytes,
        rest: AsyncIterator[bytes] | None = None,
    ) -> None:
        self._resp = resp
        self._iter = rest
        self._closing: asyncio.Task[None] | None = None
        self.status = resp.status_code
        self.headers = resp.headers
        self.content_type = resp.headers.get("content-type", "application/json")
        self.body = body
        self.first_chunk = first_chunk

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self.first_chunk
        read = self.reader
        while chunk := await read():
            yield chunk

    @property
    def reader(self) -> Callable[[], Awaitable[bytes]]:
        rest = self._iter

        async def read() -> bytes:
            if rest is None:
                return b""
            try:
                return await anext(rest, b"")
            except httpx.TimeoutException:
                raise TimeoutError("upstream stream stalled past the read timeout") from None
            except TRANSPORT_ERRORS as err:
                raise ConnectionError(f"upstream connection broke mid-stream: {err}") from None

        return read

    def ended(self) -> bool:
        return False  # not known before the next read; the relay then ends on its own

    def release(self) -> None:
        """A fully read httpx response has already given its connection back."""
        if not self._resp.is_closed:
            self._close()

    def abort(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._resp.aclose())


class BenchBackend:
    """``OpenAICompatBackend``'s contract on a shared client of another library: the headers,
    the first-byte limit and the errors here, the exchange in ``_exchange``."""

    def __init__(self, base_url: str, client: Any, timeouts: Timeouts) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeouts = timeouts
        self._client = client
        self._headers = {"content-type": "application/json"}

    async def send(self, request: UpstreamRequest) -> Any:
        headers = self._headers
        if request.request_id:
            headers = {**headers, "x-request-id": request.request_id}
        try:
            async with asyncio.timeout(self.timeouts.first_byte_s):
                return await self._exchange(request, headers)
        except (TimeoutError, httpx.TimeoutException):
            raise UpstreamTimeoutError(f"no answer from {self.base_url} in time") from None
        except TRANSPORT_ERRORS as err:
            raise UpstreamConnectError(f"cannot reach {self.base_url}: {err}") from None

    async def _exchange(self, request: UpstreamRequest, headers: dict[str, str]) -> Any:
        raise NotImplementedError


class HttpxBackend(BenchBackend):
    """On an ``httpx.AsyncClient`` (any transport)."""

    async def _exchange(self, request: UpstreamRequest, headers: dict[str, str]) -> HttpxResponse:
        req = self._client.build_request(
            "POST", self.base_url + request.path, content=request.body, headers=headers
        )
        resp = await self._client.send(req, stream=True)
        try:
            if resp.status_code >= 400 or not request.stream:
                body = await resp.aread()
                if resp.status_code == 429 or resp.status_code >= 500:
                    retry_after = resp.headers.get("retry-after")
                    raise UpstreamStatusError(resp.status_code, body, retry_after)
                return HttpxResponse(resp, body, b"")
            rest = resp.aiter_raw()
            first = await anext(rest, b"")
            if not first:
                raise UpstreamConnectError(f"{self.base_url} closed the stream before any data")
            return HttpxResponse(resp, b"", first, rest)
        except BaseException:
            await resp.aclose()
            raise


class AiohttpResponse:
    """``UpstreamResponse``'s surface over an ``aiohttp.ClientResponse``."""

    __slots__ = ("_resp", "body", "content_type", "first_chunk", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse, body: bytes, first_chunk: bytes) -> None:
        self._resp, self.status, self.headers = resp, resp.status, resp.headers
        self.content_type = resp.headers.get("content-type", "application/json")
        self.body, self.first_chunk = body, first_chunk

    @property
    def reader(self) -> Callable[[], Awaitable[bytes]]:
        return self._resp.content.readany

    def ended(self) -> bool:
        return bool(self._resp.content.at_eof())

    def release(self) -> None:
        self._resp.release()

    def abort(self) -> None:
        self._resp.close()


class AiohttpBackend(BenchBackend):
    """On a shared ``aiohttp.ClientSession`` (the product's client until 2026-12-04)."""

    async def _exchange(self, request: UpstreamRequest, headers: dict[str, str]) -> AiohttpResponse:
        resp = await self._client.post(
            self.base_url + request.path, data=request.body, headers=headers
        )
        try:
            if resp.status >= 400 or not request.stream:
                body = await resp.read()
                if resp.status == 429 or resp.status >= 500:
                    raise UpstreamStatusError(resp.status, body, resp.headers.get("retry-after"))
                return AiohttpResponse(resp, body, b"")
            return AiohttpResponse(resp, b"", await resp.content.readany())
        except BaseException:
            resp.close()
            raise


def make_httpx_client(kind: str, settings: Settings, timeouts: Timeouts) -> httpx.AsyncClient:
    """One shared client per process, pooled like the product's client."""
    size = settings.upstream.pool_size
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    timeout = httpx.Timeout(
        connect=timeouts.connect_s, read=timeouts.read_s, write=timeouts.read_s, pool=None
    )
    if kind == "httpx":
        return httpx.AsyncClient(limits=limits, timeout=timeout)
    transport = AiohttpTransport(client=create_session(size, timeouts), limits=limits)
    return httpx.AsyncClient(transport=transport, limits=limits, timeout=timeout)


# ---------------------------------------------------------------- serve mode


def swap_clients(app: FastAPI, kind: str) -> Callable[[], AbstractAsyncContextManager[None]]:
    """A context that replaces every endpoint's backend once the app's upstreams started."""

    @asynccontextmanager
    async def swapped() -> AsyncIterator[None]:
        upstreams = app.state.upstreams
        client: Any
        if kind == "aiohttp":
            client = create_session(upstreams.settings.upstream.pool_size, upstreams.timeouts)
        else:
            client = make_httpx_client(kind, upstreams.settings, upstreams.timeouts)
        for pool in upstreams.pools.values():
            for endpoint in pool.endpoints:
                backend = AiohttpBackend if kind == "aiohttp" else HttpxBackend
                endpoint.backend = backend(endpoint.name, client, upstreams.timeouts)
                bk.log(f"{endpoint.name}: upstream client {kind}")
        try:
            yield
        finally:
            await (client.close() if kind == "aiohttp" else client.aclose())

    return swapped


def build_app(kind: str, upstream: str, model: str) -> FastAPI:
    settings = build_settings(
        {
            "server": {"log_level": "warning"},
            "models": [
                {
                    "name": model,
                    "price_input_per_mtok": 1,
                    "price_output_per_mtok": 2,
                    "endpoints": [{"url": upstream}],
                }
            ],
        }
    )
    app = create_app(settings)
    if kind == PRODUCT:
        return app
    original = app.router.lifespan_context
    swapped = swap_clients(app, kind)

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
        async with original(a) as state, swapped():
            yield state

    app.router.lifespan_context = lifespan
    return app


def serve(kind: str, port: int, upstream: str, model: str) -> None:
    """uvicorn with the same options as ``switchyard.gateway.serve.run_gateway`` (one worker)."""
    options = uvicorn_options(ServerConfig(host=bk.LOOPBACK, port=port, log_level="warning"))
    uvicorn.run(build_app(kind, upstream, model), **options)


# ---------------------------------------------------------------- compare mode


def run_variant(kind: str, args: argparse.Namespace, extra: list[str]) -> Path:
    out = bk.RESULTS / f"client-{kind}.json"
    script = Path(__file__).resolve()
    cmd = [
        str(bk.VENV_PYTHON), str(bk.SHARED / "run_bench.py"),
        "--gateway-name", f"switchyard-{kind}",
        "--gateway-port", str(args.port), "--backend-port", str(args.backend_port),
        "--gateway-cmd", f"{{python}} {script} --client {kind} --port {{port}} "
        "--upstream {backend_url}",
        "--gateway-version-cmd", f"{bk.VENV_PYTHON} {script} --version-of {kind}",
        "--python", str(bk.VENV_PYTHON), "--repeats", str(args.repeats),
        "--duration", str(args.duration), "--out", str(out), *extra,
    ]  # fmt: skip
    bk.log(f"client {kind}: {bk.shell_join(cmd)}")
    subprocess.run(cmd, check=True)
    return out


def version_of(kind: str) -> str:
    names = {"http1": ["httptools"], "aiohttp": ["aiohttp"], "httpx": ["httpx", "httpcore"]}.get(
        kind, ["httpx", "httpx-aiohttp", "aiohttp"]
    )
    found = bk.versions(["switchyard", *names, "uvicorn"])
    return (
        " ".join(f"{k} {v}" for k, v in found.items()) + f" src {bk.source_digest()['sha256_12']}"
    )


def comparison_table(paths: dict[str, Path]) -> str:
    """Markdown: one row per client; CPU ratios against the product's client."""
    data = {k: orjson.loads(p.read_bytes()) for k, p in paths.items()}

    def get(kind: str, key: str, tgt: str, field: str) -> Any:
        if kind not in data:  # the product was not among the clients run: no ratio
            return None
        return data[kind]["summary"].get(key, {}).get(tgt, {}).get(field)

    def over(kind: str, key: str, field: str) -> Any:
        return data[kind]["summary"].get(key, {}).get("overhead", {}).get(field)

    base_json = get(PRODUCT, "json@c64", "gateway", "gateway_cpu_ms_per_req")
    base_stream = get(PRODUCT, "stream@c64", "gateway", "gateway_cpu_ms_per_req")
    rows = [
        "| upstream client | added p50 ms (json c=1) | added p99 ms (json c=1) | "
        "TTFB added p50 ms (c=1) | req/s json c=32 | req/s json c=64 | streams/s c=32 | "
        "streams/s c=64 | CPU ms/req (json c=1) | CPU ms/req (json c=64) | CPU ms/stream (c=64) | "
        "CPU vs http1 (json / stream) | errors |",
        "|" + "---|" * 13,
    ]
    for kind in data:
        cpu_j = get(kind, "json@c64", "gateway", "gateway_cpu_ms_per_req")
        cpu_s = get(kind, "stream@c64", "gateway", "gateway_cpu_ms_per_req")
        errors = sum(
            e[t]["errors"] for e in data[kind]["summary"].values() for t in ("direct", "gateway")
        )
        ratio = (
            f"{cpu_j['median'] / base_json['median']:.1f}x / "
            f"{cpu_s['median'] / base_stream['median']:.1f}x"
            if cpu_j and cpu_s and base_json and base_stream
            else "-"
        )
        rows.append(
            f"| {kind} | {bk.cell(over(kind, 'json@c1', 'overhead_p50_ms'))} "
            f"| {bk.cell(over(kind, 'json@c1', 'overhead_p99_ms'))} "
            f"| {bk.cell(over(kind, 'stream_ttfb@c1', 'overhead_ttfb_p50_ms'))} "
            f"| {bk.cell(get(kind, 'json@c32', 'gateway', 'rps'), 0)} "
            f"| {bk.cell(get(kind, 'json@c64', 'gateway', 'rps'), 0)} "
            f"| {bk.cell(get(kind, 'stream@c32', 'gateway', 'rps'), 0)} "
            f"| {bk.cell(get(kind, 'stream@c64', 'gateway', 'rps'), 0)} "
            f"| {bk.cell(get(kind, 'json@c1', 'gateway', 'gateway_cpu_ms_per_req'))} "
            f"| {bk.cell(cpu_j)} | {bk.cell(cpu_s)} | {ratio} | {errors} |"
        )
    return "\n".join(rows) + "\n"


def compare(args: argparse.Namespace, extra: list[str]) -> None:
    kinds = [k for k in args.clients.split(",") if k]
    paths = {k: bk.RESULTS / f"client-{k}.json" for k in kinds}
    if not args.report_only:
        bk.require_free(args.port, args.backend_port)
        paths = {k: run_variant(k, args, extra) for k in kinds}
    table = comparison_table(paths)
    out = bk.RESULTS / "client_variants.md"
    out.write_text(table)
    print(table)
    bk.log(f"wrote {out}")


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--client", choices=CLIENTS, default=PRODUCT, help="serve mode: client")
    ap.add_argument("--port", type=int, default=4620, help="gateway port")
    ap.add_argument("--upstream", default="http://127.0.0.1:18000/v1", help="backend base URL")
    ap.add_argument("--model", default="fake-model")
    ap.add_argument("--compare", action="store_true", help="run the harness for every client")
    ap.add_argument("--report-only", action="store_true", help="compare: only render the table")
    ap.add_argument("--clients", default=",".join(CLIENTS), help="compare: clients to run")
    ap.add_argument("--backend-port", type=int, default=18620, help="compare: fake backend port")
    ap.add_argument("--repeats", type=int, default=2, help="compare: repetitions per client")
    ap.add_argument("--duration", type=int, default=5, help="compare: seconds per wrk run")
    ap.add_argument("--version-of", choices=CLIENTS, help=argparse.SUPPRESS)
    return ap.parse_known_args(argv)


def main(argv: list[str] | None = None) -> None:
    args, extra = parse_args(sys.argv[1:] if argv is None else argv)
    if args.version_of:
        print(version_of(args.version_of))
    elif args.compare:
        compare(args, extra)
    elif extra:
        raise SystemExit(f"unknown arguments: {' '.join(extra)}")
    else:
        serve(args.client, args.port, args.upstream, args.model)


if __name__ == "__main__":
    main()
