"""Reading a chat completions SSE stream event by event, relaying it as another API's
events, and writing named SSE events."""

from __future__ import annotations

from typing import Any

import orjson

from switchyard.backends.translate import Json

MAX_TAIL_BYTES = 1 << 20  # an event longer than this is not an event we can read


class ChunkReader:
    """The JSON objects of the ``data:`` lines of an SSE byte stream, as whole events arrive.

    ``done`` turns true at ``data: [DONE]``; lines that are not JSON objects are skipped."""

    __slots__ = ("_tail", "done")

    def __init__(self) -> None:
        self._tail = b""
        self.done = False

    def feed(self, chunk: bytes) -> list[Json]:
        data = self._tail + chunk if self._tail else chunk
        cut = data.rfind(b"\n\n")
        if cut < 0:
            self._tail = data if len(data) <= MAX_TAIL_BYTES else b""
            return []
        self._tail = data[cut + 2 :]
        found: list[Json] = []
        for line in data[:cut].split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                self.done = True
                continue
            try:
                obj = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                found.append(obj)
        return found


def event(name: str, data: Any) -> bytes:
    """One named SSE event (``event:`` and ``data:`` lines), as both APIs send them."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class EventRelay:
    """A chat completions SSE stream relayed as another API's events: ``feed`` each chunk of
    the chat stream's bytes, ``flush`` when it ends; both return the events to send. A
    subclass writes ``_chunk`` (one chat event) and ``_end`` (close what is open, once)."""

    def __init__(self) -> None:
        self._reader = ChunkReader()
        self._ended = False

    def feed(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        for obj in self._reader.feed(chunk):
            self._chunk(obj, out)
        if self._reader.done and not self._ended:
            self._end(out)
        return b"".join(out)

    def flush(self) -> bytes:
        """The chat stream ended: close whatever is open and end the API's stream."""
        out: list[bytes] = []
        if not self._ended:
            self._end(out)
        return b"".join(out)

    def _chunk(self, obj: Json, out: list[bytes]) -> None:
        raise NotImplementedError

    def _end(self, out: list[bytes]) -> None:
        raise NotImplementedError
