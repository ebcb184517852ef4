"""What the "model" answers to one request: its ``n`` choices, each text, JSON (under a
``response_format``) or a forced tool call, with token log-probabilities when asked.

Choice 0 is drawn from the request's random source exactly as a single answer always was;
choice ``i`` from a source salted with ``i``, so the choices differ and each is reproducible.
"""

from __future__ import annotations

from switchyard.backends.simulator.logprobs import token_logprobs
from switchyard.backends.simulator.protocol import GenerationRequest
from switchyard.backends.simulator.responses import Answer, Reply
from switchyard.backends.simulator.structured import json_completion
from switchyard.backends.simulator.text import TextModel
from switchyard.backends.simulator.tools import make_tool_call


def make_reply(text: TextModel, request: GenerationRequest) -> Reply:
    return Reply(tuple(_choice(text, request, i) for i in range(request.n)))


def _choice(text: TextModel, request: GenerationRequest, index: int) -> Answer:
    salt = f":choice{index}" if index else ""
    if request.tool_function is not None:
        rng = text.rng(request.prompt, request.seed, salt)
        answer = Answer.from_tool_call(make_tool_call(request.tool_function, rng))
    elif request.response_format is not None:
        rng = text.rng(request.prompt, request.seed, salt)
        room = text.room(request.prompt_tokens)
        fmt = request.response_format
        answer = Answer.from_text(json_completion(fmt, rng, request.max_tokens, room))
    else:
        answer = Answer.from_text(
            text.complete(
                request.prompt, request.prompt_tokens, request.max_tokens, request.seed, salt
            )
        )
    if request.logprobs is None:
        return answer
    rng = text.rng(request.prompt, request.seed, f"{salt}:logprobs")
    logprobs = tuple(token_logprobs(answer.pieces, rng, request.logprobs))
    return Answer(answer.pieces, answer.text, answer.tool_call, answer.finish_reason, logprobs)
