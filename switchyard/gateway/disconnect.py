"""Noticing a client that went away, so the upstream request is cancelled with it.

uvicorn speaks ASGI 2.3: ``send`` after a disconnect is silently ignored, so the only signal
is ``http.disconnect`` from ``receive``. Once the body has been read, the next message is
that disconnect (or uvicorn's own after the response ends, which ``stop`` prevents us from
mistaking for the client leaving).

Watching costs a task, and most answers are done long before a client could give up on
them, so the watcher task starts only once the request has lasted ``after_s`` (a timer
handle until then, which costs next to nothing). A client that leaves earlier is noticed
then: its upstream request runs at most ``after_s`` longer than it had to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import Receive

from switchyard.backends.running import current_task

WATCH_AFTER_S = 0.05


class DisconnectWatch:
    """Cancels the current task when the client disconnects, until ``stop()``."""

    __slots__ = ("_receive", "_slow", "_task", "_timer", "_watcher", "after_s", "gone")

    def __init__(self, receive: Receive, after_s: float = WATCH_AFTER_S) -> None:
        task = current_task()  # without asyncio's getpid() (switchyard.backends.running)
        self._task = task
        self._receive = receive
        self.after_s = after_s
        self.gone = False
        self._watcher: asyncio.Task[None] | None = None
        self._slow: Callable[[], None] | None = None
        # task.get_loop(): asyncio.get_running_loop() costs a getpid() syscall each time.
        self._timer: asyncio.TimerHandle | None = task.get_loop().call_later(after_s, self._start)

    def on_slow(self, callback: Callable[[], None]) -> None:
        """Also run ``callback`` (once) when the request has lasted ``after_s``, on this
        watch's timer: the stream keep-alive's way of arming itself only for a request that
        is still waiting then, instead of with a timer of its own per request."""
        self._slow = callback

    def _start(self) -> None:
        self._timer = None
        self._watcher = self._task.get_loop().create_task(self._watch())
        slow, self._slow = self._slow, None
        if slow is not None:
            slow()

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        self._task.cancel()

    def stop(self) -> None:
        self._slow = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._watcher is not None:
            self._watcher.cancel()

    def absorb(self) -> bool:
        """On ``CancelledError``: True if the client caused it (the task goes on uncancelled)."""
        if not self.gone:
            return False
        self._task.uncancel()
        return True
