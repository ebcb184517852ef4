"""Noticing a client that went away, so the upstream request is cancelled with it.

uvicorn speaks ASGI 2.3: ``send`` after a disconnect is silently ignored, so the only signal
is ``http.disconnect`` from ``receive``. Once the body has been read, the next message is
that disconnect (or uvicorn's own after the response ends, which ``stop`` prevents us from
mistaking for the client leaving).
"""

from __future__ import annotations

import asyncio

from starlette.types import Receive


class DisconnectWatch:
    """Cancels the current task when the client disconnects, until ``stop()``."""

    __slots__ = ("_task", "_watcher", "gone")

    def __init__(self, receive: Receive) -> None:
        task = asyncio.current_task()
        assert task is not None, "DisconnectWatch needs a running task"
        self._task = task
        self.gone = False
        self._watcher = asyncio.get_running_loop().create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        self._task.cancel()

    def stop(self) -> None:
        self._watcher.cancel()

    def absorb(self) -> bool:
        """On ``CancelledError``: True if the client caused it (the task goes on uncancelled)."""
        if not self.gone:
            return False
        self._task.uncancel()
        return True
