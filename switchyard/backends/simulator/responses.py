"""Response bodies shaped exactly like vLLM's (and OpenAI's): whole answers and SSE chunks.

Streaming chunks are cut from per-request byte templates (the id/created/model head is
serialized once) because a stream sends one chunk per token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from switchyard.backends.simulator.text import Completion
from switchyard.backends.simulator.tools import ToolCall

_CHUNK_END = b',"logprobs":null,"finish_reason":null}]}\n\n'


@dataclass(frozen=True, slots=True)
class Answer:
    """What the "model" says: text tokens, or one tool call whose arguments are the tokens."""

    pieces: tuple[str, ...]  # one entry per output token
    text: str | None  # None for a tool call
    tool_call: ToolCall | None
    finish_reason: str

    @classmethod
    def from_text(cls, completion: Completion) -> Answer:
        return cls(completion.tokens, completion.text, None, completion.finish_reason)

    @classmethod
    def from_tool_call(cls, call: ToolCall) -> Answer:
        return cls(call.pieces, None, call, "tool_calls")

    @property
    def completion_tokens(self) -> int:
        return len(self.pieces)


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chat_body(rid: str, created: int, model: str, answer: Answer, prompt_tokens: int) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": answer.text}
    if answer.tool_call is not None:
        message["tool_calls"] = [answer.tool_call.to_message_dict()]
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": answer.finish_reason,
    }
    return _body(rid, "chat.completion", created, model, choice, prompt_tokens, answer)


def completion_body(
    rid: str, created: int, model: str, answer: Answer, prompt_tokens: int
) -> bytes:
    choice = {
        "index": 0,
        "text": answer.text or "",
        "logprobs": None,
        "finish_reason": answer.finish_reason,
    }
    return _body(rid, "text_completion", created, model, choice, prompt_tokens, answer)


def _body(
    rid: str,
    kind: str,
    created: int,
    model: str,
    choice: dict[str, Any],
    prompt_tokens: int,
    answer: Answer,
) -> bytes:
    return orjson.dumps(
        {
            "id": rid,
            "object": kind,
            "created": created,
            "model": model,
            "choices": [choice],
            "usage": usage(prompt_tokens, answer.completion_tokens),
        }
    )


class ChunkWriter:
    """The SSE chunks of one streamed answer, chat or completions."""

    __slots__ = ("_chat", "_head", "_prefix")

    def __init__(self, rid: str, created: int, model: str, chat: bool) -> None:
        kind = "chat.completion.chunk" if chat else "text_completion"
        head = orjson.dumps({"id": rid, "object": kind, "created": created, "model": model})
        self._chat = chat
        self._head = b"data: " + head[:-1]  # open object: more keys follow
        self._prefix = self._head + b',"choices":[{"index":0,'

    def first(self, answer: Answer) -> bytes | None:
        """The role chunk that opens a chat stream (completions have none)."""
        if not self._chat:
            return None
        content = b'""' if answer.tool_call is None else b"null"
        return (
            self._prefix + b'"delta":{"role":"assistant","content":' + content + b"}" + _CHUNK_END
        )

    def piece(self, answer: Answer, index: int) -> bytes:
        """The chunk carrying token ``index``."""
        piece = orjson.dumps(answer.pieces[index])
        if not self._chat:
            return self._prefix + b'"text":' + piece + _CHUNK_END
        call = answer.tool_call
        if call is None:
            return self._prefix + b'"delta":{"content":' + piece + b"}" + _CHUNK_END
        function: dict[str, Any] = {"arguments": answer.pieces[index]}
        delta: dict[str, Any] = {"index": 0, "function": function}
        if index == 0:  # the first piece names the call; later ones only extend arguments
            delta.update(id=call.id, type="function")
            function["name"] = call.name
        tool_calls = orjson.dumps([delta])
        return self._prefix + b'"delta":{"tool_calls":' + tool_calls + b"}" + _CHUNK_END

    def final(self, finish_reason: str) -> bytes:
        body = b'"delta":{}' if self._chat else b'"text":""'
        reason = orjson.dumps(finish_reason)
        return self._prefix + body + b',"logprobs":null,"finish_reason":' + reason + b"}]}\n\n"

    def usage(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        tail = orjson.dumps(usage(prompt_tokens, completion_tokens))
        return self._head + b',"choices":[],"usage":' + tail + b"}\n\n"
