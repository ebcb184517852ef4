"""Running the router's work on the event loop: an executor that calls at once, and reading
a finished batch's future."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

T = TypeVar("T")


class InlineExecutor(Executor):
    """Runs each call at once in the caller's thread (the router's work when it runs on the
    event loop): ``run_in_executor`` callers such as the shared store's bandit refresh then
    need no special case."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as err:  # handed to the caller through the future
            future.set_exception(err)
        return future


def outcome(done: asyncio.Future[T]) -> T | BaseException:
    """A finished future's result, or the error it ended with (cancelled: "router stopped")."""
    if done.cancelled():
        return RuntimeError("router stopped")
    return done.exception() or done.result()
