"""Response bodies shaped exactly like vLLM's (and OpenAI's): whole answers and SSE chunks.

Streaming chunks are cut from per-request byte templates (the id/created/model head is
serialized once) because a stream sends one chunk per token. With ``n > 1`` every step of
the stream carries one chunk per choice that still has a token, each with its own index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from switchyard.backends.simulator.logprobs import (
    TokenLogprob,
    chat_content,
    completion_logprobs,
)
from switchyard.backends.simulator.text import Completion
from switchyard.backends.simulator.tools import ToolCall

_CHUNK_END = b',"logprobs":null,"finish_reason":null}]}\n\n'
_NO_FINISH = b',"finish_reason":null}]}\n\n'


@dataclass(frozen=True, slots=True)
class Answer:
    """What the "model" says: text tokens, or one tool call whose arguments are the tokens."""

    pieces: tuple[str, ...]  # one entry per output token
    text: str | None  # None for a tool call
    tool_call: ToolCall | None
    finish_reason: str
    logprobs: tuple[TokenLogprob, ...] | None = None  # one per piece, when asked for

    @classmethod
    def from_text(cls, completion: Completion) -> Answer:
        return cls(completion.tokens, completion.text, None, completion.finish_reason)

    @classmethod
    def from_tool_call(cls, call: ToolCall) -> Answer:
        return cls(call.pieces, None, call, "tool_calls")


@dataclass(frozen=True, slots=True)
class Reply:
    """The ``n`` choices of one request."""

    choices: tuple[Answer, ...]

    @property
    def completion_tokens(self) -> int:
        """Tokens of every choice (what usage reports)."""
        return sum(len(c.pieces) for c in self.choices)

    @property
    def steps(self) -> int:
        """Decode steps the engine runs: the choices are decoded side by side."""
        return max(len(c.pieces) for c in self.choices)

    @property
    def finish_reason(self) -> str:
        return self.choices[0].finish_reason


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chat_body(rid: str, created: int, model: str, reply: Reply, prompt_tokens: int) -> bytes:
    choices = []
    for index, answer in enumerate(reply.choices):
        message: dict[str, Any] = {"role": "assistant", "content": answer.text}
        if answer.tool_call is not None:
            message["tool_calls"] = [answer.tool_call.to_message_dict()]
        logprobs = None if answer.logprobs is None else chat_content(answer.logprobs)
        choices.append({"index": index, "message": message, "logprobs": logprobs,
                        "finish_reason": answer.finish_reason})  # fmt: skip
    return _body(rid, "chat.completion", created, model, choices, prompt_tokens, reply)


def completion_body(rid: str, created: int, model: str, reply: Reply, prompt_tokens: int) -> bytes:
    choices = []
    for index, answer in enumerate(reply.choices):
        logprobs = None if answer.logprobs is None else completion_logprobs(answer.logprobs)
        choices.append({"index": index, "text": answer.text or "", "logprobs": logprobs,
                        "finish_reason": answer.finish_reason})  # fmt: skip
    return _body(rid, "text_completion", created, model, choices, prompt_tokens, reply)


def _body(
    rid: str,
    kind: str,
    created: int,
    model: str,
    choices: list[dict[str, Any]],
    prompt_tokens: int,
    reply: Reply,
) -> bytes:
    return orjson.dumps(
        {
            "id": rid,
            "object": kind,
            "created": created,
            "model": model,
            "choices": choices,
            "usage": usage(prompt_tokens, reply.completion_tokens),
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

    def _prefix_of(self, choice: int) -> bytes:
        if choice == 0:
            return self._prefix
        return self._head + b',"choices":[{"index":' + str(choice).encode() + b","

    def first(self, reply: Reply) -> bytes | None:
        """The role chunks that open a chat stream (completions have none)."""
        if not self._chat:
            return None
        return b"".join(
            self._prefix_of(i)
            + b'"delta":{"role":"assistant","content":'
            + (b'""' if answer.tool_call is None else b"null")
            + b"}"
            + _CHUNK_END
            for i, answer in enumerate(reply.choices)
        )

    def piece(self, reply: Reply, index: int) -> bytes:
        """The chunks carrying token ``index`` of each choice that has one."""
        choices = reply.choices
        if len(choices) == 1:
            return self._piece(0, choices[0], index)
        return b"".join(
            self._piece(i, answer, index)
            for i, answer in enumerate(choices)
            if index < len(answer.pieces)
        )

    def _piece(self, choice: int, answer: Answer, index: int) -> bytes:
        prefix = self._prefix_of(choice)
        end = _CHUNK_END if answer.logprobs is None else self._logprobs(answer.logprobs[index])
        piece = orjson.dumps(answer.pieces[index])
        if not self._chat:
            return prefix + b'"text":' + piece + end
        call = answer.tool_call
        if call is None:
            return prefix + b'"delta":{"content":' + piece + b"}" + end
        function: dict[str, Any] = {"arguments": answer.pieces[index]}
        delta: dict[str, Any] = {"index": 0, "function": function}
        if index == 0:  # the first piece names the call; later ones only extend arguments
            delta.update(id=call.id, type="function")
            function["name"] = call.name
        tool_calls = orjson.dumps([delta])
        return prefix + b'"delta":{"tool_calls":' + tool_calls + b"}" + end

    def _logprobs(self, item: TokenLogprob) -> bytes:
        shaped = chat_content((item,)) if self._chat else completion_logprobs((item,))
        return b',"logprobs":' + orjson.dumps(shaped) + _NO_FINISH

    def final(self, reply: Reply) -> bytes:
        """The chunks that end each choice with its finish reason."""
        body = b'"delta":{}' if self._chat else b'"text":""'
        return b"".join(
            self._prefix_of(i)
            + body
            + b',"logprobs":null,"finish_reason":'
            + orjson.dumps(answer.finish_reason)
            + b"}]}\n\n"
            for i, answer in enumerate(reply.choices)
        )

    def usage(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        tail = orjson.dumps(usage(prompt_tokens, completion_tokens))
        return self._head + b',"choices":[],"usage":' + tail + b"}\n\n"
