"""Request validation: any JSON body becomes either a ``GenerationRequest`` or an ``ApiError``.

The gateway's fuzz tests push arbitrary bodies through to the simulator, so every check here
is explicit (type, range) and every failure is a 4xx in OpenAI's error shape, never a crash.
``n``, ``response_format`` and ``logprobs``/``top_logprobs`` are honoured as vLLM honours
them; fields the simulator does not model (temperature, top_p, stop, ...) are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from switchyard.backends.simulator.logprobs import MAX_TOP_LOGPROBS
from switchyard.backends.simulator.structured import (
    FormatError,
    ResponseFormat,
    parse_response_format,
)
from switchyard.backends.simulator.text import MESSAGE_OVERHEAD_TOKENS, count_text_tokens
from switchyard.backends.simulator.tools import forced_function

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_TOOL_CHOICE_WORDS = frozenset({"none", "auto", "required"})
MAX_N = 128  # choices per request: more is refused rather than built


class ApiError(Exception):
    """An error answered in OpenAI's shape: ``{"error": {message, type, param, code}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> bytes:
        error = {"message": self.message, "type": self.type, "param": self.param}
        return orjson.dumps({"error": {**error, "code": self.code}})


@dataclass(slots=True)
class GenerationRequest:
    """What the simulator needs from a chat or completions request, validated."""

    chat: bool
    model: str | None
    prompt: str  # the text the deterministic output is derived from
    prompt_tokens: int
    max_tokens: int | None
    stream: bool
    include_usage: bool
    seed: int | None
    tool_function: dict[str, Any] | None  # the function a forced tool call must call
    n: int = 1  # choices
    response_format: ResponseFormat | None = None  # JSON mode; None: plain text
    logprobs: int | None = None  # entries in each token's top list; None: no logprobs
    blocks: tuple[int, ...] = ()  # the prompt's block hashes (prefix cache), when it caches


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


def parse_chat(body: dict[str, Any]) -> GenerationRequest:
    prompt, prompt_tokens = _chat_prompt(body.get("messages"))
    tools = _tools(body.get("tools"))
    function = _tool_function(tools, body.get("tool_choice"))
    if tools:
        prompt_tokens += count_text_tokens(orjson.dumps(tools).decode())
    max_tokens = _optional_int(body, "max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = _optional_int(body, "max_tokens", 1)
    request = _request(body, True, prompt, prompt_tokens, max_tokens, function)
    top = _optional_int(body, "top_logprobs", 0)
    if top is not None and top > MAX_TOP_LOGPROBS:
        raise ApiError(
            400, f"top_logprobs must be at most {MAX_TOP_LOGPROBS}", param="top_logprobs"
        )
    if _optional_bool(body, "logprobs"):
        request.logprobs = top or 0
    elif top:  # vLLM's rule: top_logprobs needs logprobs
        raise ApiError(400, "when using top_logprobs, logprobs must be set to true",
                       param="top_logprobs")  # fmt: skip
    return request


def parse_completion(body: dict[str, Any]) -> GenerationRequest:
    prompt, prompt_tokens = _completion_prompt(body.get("prompt"))
    max_tokens = _optional_int(body, "max_tokens", 1)
    request = _request(body, False, prompt, prompt_tokens, max_tokens, None)
    listed = _optional_int(body, "logprobs", 0)
    if listed is not None and listed > MAX_TOP_LOGPROBS:
        raise ApiError(400, f"logprobs must be at most {MAX_TOP_LOGPROBS}", param="logprobs")
    request.logprobs = None if listed is None else max(listed, 1)  # the sampled token, at least
    return request


def _request(
    body: dict[str, Any],
    chat: bool,
    prompt: str,
    prompt_tokens: int,
    max_tokens: int | None,
    function: dict[str, Any] | None,
) -> GenerationRequest:
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise ApiError(400, "model must be a string", param="model")
    n = _optional_int(body, "n", 1) or 1
    if n > MAX_N:
        raise ApiError(400, f"n must be at most {MAX_N}", param="n")
    try:
        response_format = parse_response_format(body.get("response_format"))
    except FormatError as err:
        raise ApiError(400, str(err), param="response_format") from None
    stream = _optional_bool(body, "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise ApiError(400, "stream_options must be an object", param="stream_options")
    include_usage = _optional_bool(options or {}, "include_usage", "stream_options")
    return GenerationRequest(
        chat=chat,
        model=model,
        prompt=prompt,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        stream=stream,
        include_usage=include_usage,
        seed=_optional_int(body, "seed", None),
        tool_function=function,
        n=n,
        response_format=response_format,
    )


def _chat_prompt(messages: Any) -> tuple[str, int]:
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty array", param="messages")
    lines: list[str] = []
    tokens = 0
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ApiError(400, f"messages[{i}] must be an object", param="messages")
        role = message.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise ApiError(
                400, f"messages[{i}].role must be one of {sorted(_ROLES)}", param="messages"
            )
        text = _content_text(message.get("content"), i)
        lines.append(f"{role}: {text}")
        tokens += count_text_tokens(text) + MESSAGE_OVERHEAD_TOKENS
    return "\n".join(lines), tokens


def _content_text(content: Any, index: int) -> str:
    """A message's text: a string, null, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if not isinstance(content, list):
        raise ApiError(400, f"messages[{index}].content must be a string, null or an array")
    texts: list[str] = []
    for part in content:
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise ApiError(400, f"messages[{index}].content parts must be typed objects")
        if part["type"] == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise ApiError(400, f"messages[{index}].content text parts need a string text")
            texts.append(text)
        # Other parts (images, audio, files) are accepted and carry no text for the simulator.
    return "\n".join(texts)


def _completion_prompt(prompt: Any) -> tuple[str, int]:
    """A string or one list of token ids; a batch of exactly one prompt is unwrapped."""
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        prompt = prompt[0]
    if isinstance(prompt, str):
        return prompt, max(count_text_tokens(prompt), 1)
    if isinstance(prompt, list) and prompt and all(_is_token_id(t) for t in prompt):
        return " ".join(map(str, prompt)), len(prompt)
    raise ApiError(
        400,
        "prompt must be a string or a non-empty array of token ids "
        "(batched prompts are not supported by the simulator)",
        param="prompt",
    )


def _is_token_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise ApiError(400, "tools must be an array", param="tools")
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(tool, dict)
            or tool.get("type") != "function"
            or not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
            or not function["name"]
        ):
            raise ApiError(400, f"tools[{i}] must be a function tool with a name", param="tools")
    return tools


def _tool_function(tools: list[dict[str, Any]], choice: Any) -> dict[str, Any] | None:
    if choice is None or (isinstance(choice, str) and choice in _TOOL_CHOICE_WORDS):
        if choice == "required" and not tools:
            raise ApiError(400, 'tool_choice "required" needs tools', param="tool_choice")
        return forced_function(tools, choice)
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if (
        not isinstance(choice, dict)
        or choice.get("type") != "function"
        or not isinstance(name, str)
    ):
        raise ApiError(
            400,
            'tool_choice must be "none", "auto", "required" or a named function',
            param="tool_choice",
        )
    found = forced_function(tools, choice)
    if found is None:
        raise ApiError(
            400, f"tool_choice names {name!r}, which is not in tools", param="tool_choice"
        )
    return found


def _optional_int(body: dict[str, Any], name: str, minimum: int | None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"{name} must be an integer", param=name)
    if minimum is not None and value < minimum:
        raise ApiError(400, f"{name} must be at least {minimum}, got {value}", param=name)
    return value


def _optional_bool(body: dict[str, Any], name: str, param: str | None = None) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(400, f"{name} must be a boolean", param=param or name)
    return value
