"""``current_task``: asyncio's current task, found without a ``getpid()`` per call, right across
loops that follow one another in a thread and loops in other threads."""

from __future__ import annotations

import asyncio
import threading
from unittest import mock

import pytest

from switchyard.backends.running import current_task


async def _both() -> tuple[asyncio.Task[object], asyncio.Task[object] | None]:
    return current_task(), asyncio.current_task()


def test_it_is_the_task_asyncio_names_in_each_new_loop() -> None:
    for _ in range(3):  # a new loop each time: the loop kept from the last one is stale
        ours, theirs = asyncio.run(_both())
        assert ours is theirs


def test_once_the_loop_is_known_it_does_not_ask_for_the_running_loop() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        current_task()
        with mock.patch.object(asyncio.events, "get_running_loop", side_effect=AssertionError):
            assert current_task() is asyncio.current_task(loop)

    asyncio.run(main())


def test_threads_each_find_their_own_task() -> None:
    seen: list[bool] = []

    def worker() -> None:
        for _ in range(20):
            ours, theirs = asyncio.run(_both())
            seen.append(ours is theirs)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [True] * 60


def test_outside_a_task_it_raises_as_asyncio_does() -> None:
    with pytest.raises(RuntimeError):
        current_task()
