"""A kube-proxy stand-in for the benchmarks: a TCP proxy that sends each new connection to a
backend chosen uniformly at random and then splices bytes both ways, as a ClusterIP Service
in iptables mode does (the choice is per connection; HTTP keep-alive then pins a
connection's requests to its pod). Loopback only.

    python bench/random_proxy.py --port 9000 --backends 127.0.0.2:8000,127.0.0.3:8000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency of the gateway
    uvloop = None  # type: ignore[assignment]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()


def handler(backends: list[tuple[str, int]], rng: random.Random):  # type: ignore[no-untyped-def]
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        host, port = rng.choice(backends)
        try:
            up_r, up_w = await asyncio.open_connection(host, port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, up_w), _pipe(up_r, client_w))

    return handle


async def serve(port: int, backends: list[tuple[str, int]], seed: int) -> None:
    server = await asyncio.start_server(handler(backends, random.Random(seed)), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--backends", required=True, help="host:port,host:port,...")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    backends = [(h, int(pt)) for h, pt in (b.rsplit(":", 1) for b in a.backends.split(","))]
    if uvloop is not None:
        uvloop.install()
    asyncio.run(serve(a.port, backends, a.seed))


if __name__ == "__main__":
    main()
