"""Load that stays put: streaming requests held open in a background thread, so a simulator's
engine (or a gateway's in-flight count) shows a busy batch and a queue while a test runs."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import httpx


async def _stream(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> None:
    async with client.stream("POST", url, json=body) as resp:
        async for _ in resp.aiter_bytes():
            pass


@contextlib.contextmanager
def held_streams(base_url: str, model: str, count: int) -> Iterator[None]:
    """``count`` long streaming chat completions to ``base_url`` (``.../v1``), open until the
    block ends; then the connections are dropped, which cancels them upstream."""
    loop = asyncio.new_event_loop()
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Write a long story."}],
        "max_tokens": 4000,
        "stream": True,
    }

    async def run() -> None:
        async with httpx.AsyncClient(timeout=120) as client:
            url = f"{base_url}/chat/completions"
            tasks = [asyncio.ensure_future(_stream(client, url, body)) for _ in range(count)]
            await asyncio.gather(*tasks, return_exceptions=True)

    holder: dict[str, asyncio.Task[None]] = {}

    def serve() -> None:
        asyncio.set_event_loop(loop)
        holder["task"] = loop.create_task(run())
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(holder["task"])
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        while "task" not in holder:
            threading.Event().wait(0.01)
        loop.call_soon_threadsafe(holder["task"].cancel)
        thread.join(timeout=10)
