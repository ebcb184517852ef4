"""A chat completions SSE stream as the Messages API's streamed events.

``message_start`` (then a ``ping``), per content block ``content_block_start``,
``content_block_delta`` (``text_delta`` or ``input_json_delta``) and ``content_block_stop``,
then ``message_delta`` (stop reason, usage) and ``message_stop``. A chat stream reports its
usage only at its end, so ``message_start`` carries zero tokens and ``message_delta`` carries
both counts (the SDK takes ``input_tokens`` from either).
"""

from __future__ import annotations

from switchyard.backends.translate import Json, new_id
from switchyard.backends.translate.messages import error_body, stop_reason, usage_of
from switchyard.backends.translate.sse import EventRelay, event

_TEXT = -1  # the open block is text (otherwise: the chat index of the tool call)


class MessagesEvents(EventRelay):
    """Feed it the chat stream's bytes; it returns the Messages events to send."""

    def __init__(self, request: Json) -> None:
        super().__init__()
        self._request = request
        self._block = -1  # index of the open content block (-1: none)
        self._open: int | None = None  # what the open block is: _TEXT or a tool-call index
        self._finish: str | None = None
        self._matched: object = None
        self._started = False
        self.usage: Json | None = None

    def fail(self, code: str, message: str) -> bytes:
        self._ended = True
        return event("error", error_body(502, message))

    def _chunk(self, obj: Json, out: list[bytes]) -> None:
        if not self._started:
            self._start(obj.get("model") or "", out)
        if isinstance(obj.get("usage"), dict):
            self.usage = obj["usage"]
        if "error" in obj:
            error = obj["error"] if isinstance(obj["error"], dict) else {}
            out.append(self.fail(str(error.get("code")), str(error.get("message"))))
            return
        for choice in obj.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self._open_block(_TEXT, {"type": "text", "text": ""}, out)
                data = {"type": "text_delta", "text": delta["content"]}
                out.append(self._delta(data))
            for call in delta.get("tool_calls") or ():
                self._call(call, out)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
                self._matched = choice.get("stop_reason")

    def _start(self, model: str, out: list[bytes]) -> None:
        self._started = True
        message: Json = {
            "id": new_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        out.append(event("message_start", {"type": "message_start", "message": message}))
        out.append(event("ping", {"type": "ping"}))

    def _call(self, call: Json, out: list[bytes]) -> None:
        index = call.get("index", 0)
        function = call.get("function") or {}
        if self._open != index:
            block: Json = {
                "type": "tool_use",
                "id": call.get("id") or new_id("toolu"),
                "name": function.get("name") or "",
                "input": {},
            }
            self._open_block(index, block, out)
        if function.get("arguments"):
            out.append(
                self._delta({"type": "input_json_delta", "partial_json": function["arguments"]})
            )

    def _open_block(self, kind: int, block: Json, out: list[bytes]) -> None:
        if self._open == kind:
            return
        self._close_block(out)
        self._block += 1
        self._open = kind
        start = {"type": "content_block_start", "index": self._block, "content_block": block}
        out.append(event("content_block_start", start))

    def _delta(self, delta: Json) -> bytes:
        data = {"type": "content_block_delta", "index": self._block, "delta": delta}
        return event("content_block_delta", data)

    def _close_block(self, out: list[bytes]) -> None:
        if self._open is not None:
            self._open = None
            stop = {"type": "content_block_stop", "index": self._block}
            out.append(event("content_block_stop", stop))

    def _end(self, out: list[bytes]) -> None:
        self._ended = True
        if not self._started:
            self._start("", out)
        self._close_block(out)
        reason, sequence = stop_reason(self._finish, self._matched, self._request)
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": sequence},
            "usage": usage_of(self.usage),
        }
        out.append(event("message_delta", delta))
        out.append(event("message_stop", {"type": "message_stop"}))
