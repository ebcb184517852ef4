"""A chat completions SSE stream as the Responses API's streamed events (see ``responses``)."""

from __future__ import annotations

import time

from switchyard.backends.translate import Json, new_id
from switchyard.backends.translate.responses import (
    function_item,
    message_item,
    response_object,
    usage_of,
)
from switchyard.backends.translate.sse import EventRelay, event


class _Call:
    """A function call being streamed: its output item and the arguments so far."""

    __slots__ = ("arguments", "call_id", "index", "item_id", "name")

    def __init__(self, index: int, call_id: str, name: str) -> None:
        self.index, self.call_id, self.name = index, call_id, name
        self.item_id = new_id("fc")
        self.arguments = ""

    def item(self, status: str) -> Json:
        return function_item(self.item_id, self.call_id, self.name, self.arguments, status)


class ResponsesEvents(EventRelay):
    """Feed it the chat stream's bytes; it returns the Responses events to send.

    ``usage`` holds the chat-style usage once the stream's usage chunk went by."""

    def __init__(self, request: Json) -> None:
        super().__init__()
        self._request = request
        self._seq = 0
        self._id = new_id("resp")
        self._model = ""
        self._created = time.time()
        self._output: list[Json] = []  # finished items, in output order
        self._text: str | None = None  # the open message item's text
        self._text_item = ""
        self._text_index = 0
        self._calls: dict[int, _Call] = {}  # open function calls by chat tool-call index
        self._finish: str | None = None
        self._started = False
        self.usage: Json | None = None

    def fail(self, code: str, message: str) -> bytes:
        """The upstream broke off: an ``error`` event, then ``response.failed``."""
        self._ended = True
        out = [self._emit("error", {"code": code, "message": message, "param": None})]
        response = self._response("failed")
        response["error"] = {"code": "server_error", "message": message}
        out.append(self._emit("response.failed", {"response": response}))
        return b"".join(out)

    def _emit(self, kind: str, data: Json) -> bytes:
        data = {"type": kind, "sequence_number": self._seq, **data}
        self._seq += 1
        return event(kind, data)

    def _response(self, status: str) -> Json:
        output = list(self._output)
        return response_object(self._request, self._id, self._model, self._created, status, output)

    def _chunk(self, obj: Json, out: list[bytes]) -> None:
        if not self._started:
            self._started = True
            self._model = obj.get("model") or ""
            self._created = obj.get("created") or self._created
            out.append(self._emit("response.created", {"response": self._response("in_progress")}))
            out.append(
                self._emit("response.in_progress", {"response": self._response("in_progress")})
            )
        if isinstance(obj.get("usage"), dict):
            self.usage = obj["usage"]
        if "error" in obj:
            error = obj["error"] if isinstance(obj["error"], dict) else {}
            out.append(self.fail(str(error.get("code")), str(error.get("message"))))
            return
        for choice in obj.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self._text_delta(delta["content"], out)
            for call in delta.get("tool_calls") or ():
                self._call_delta(call, out)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]

    def _text_delta(self, text: str, out: list[bytes]) -> None:
        if self._text is None:
            self._text, self._text_item = "", new_id("msg")
            self._text_index = len(self._output) + len(self._calls)
            item = message_item(self._text_item, "", "in_progress")
            out.append(self._emit("response.output_item.added", self._at({"item": item})))
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            out.append(self._emit("response.content_part.added", self._in_text({"part": part})))
        self._text += text
        out.append(
            self._emit("response.output_text.delta", self._in_text({"delta": text, "logprobs": []}))
        )

    def _at(self, data: Json) -> Json:
        return {"output_index": self._text_index, **data}

    def _in_text(self, data: Json) -> Json:
        return {
            "item_id": self._text_item,
            "output_index": self._text_index,
            "content_index": 0,
            **data,
        }

    def _call_delta(self, delta: Json, out: list[bytes]) -> None:
        index = delta.get("index", 0)
        function = delta.get("function") or {}
        call = self._calls.get(index)
        if call is None:
            self._close_text(out)
            call = _Call(len(self._output) + len(self._calls), delta.get("id") or new_id("call"),
                         function.get("name") or "")  # fmt: skip
            self._calls[index] = call
            added = {"output_index": call.index, "item": call.item("in_progress")}
            out.append(self._emit("response.output_item.added", added))
        piece = function.get("arguments")
        if piece:
            call.arguments += piece
            data = {"item_id": call.item_id, "output_index": call.index, "delta": piece}
            out.append(self._emit("response.function_call_arguments.delta", data))

    def _close_text(self, out: list[bytes]) -> None:
        if self._text is None:
            return
        text, self._text = self._text, None
        out.append(
            self._emit("response.output_text.done", self._in_text({"text": text, "logprobs": []}))
        )
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        out.append(self._emit("response.content_part.done", self._in_text({"part": part})))
        item = message_item(self._text_item, text, "completed")
        out.append(self._emit("response.output_item.done", self._at({"item": item})))
        self._output.append(item)

    def _close_calls(self, out: list[bytes]) -> None:
        for call in sorted(self._calls.values(), key=lambda c: c.index):
            done = {
                "item_id": call.item_id,
                "output_index": call.index,
                "arguments": call.arguments,
            }
            out.append(self._emit("response.function_call_arguments.done", done))
            item = call.item("completed")
            out.append(
                self._emit("response.output_item.done", {"output_index": call.index, "item": item})
            )
            self._output.append(item)
        self._calls.clear()

    def _end(self, out: list[bytes]) -> None:
        self._ended = True
        if not self._started:
            self._chunk({}, out)
        self._close_text(out)
        self._close_calls(out)
        status = "incomplete" if self._finish == "length" else "completed"
        response = self._response(status)
        response["usage"] = usage_of(self.usage)
        out.append(self._emit(f"response.{status}", {"response": response}))
