"""POST /v1/responses with the official OpenAI SDK (``client.responses.create``), streamed and
not, through a real gateway to simulated vLLM servers: translated to chat completions for a
model that serves only chat, passed through to one that serves the Responses API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import openai
import orjson
import pytest

from switchyard.backends.simulator import build_config, create_simulator_app
from tests.support.gateways import Gateway, Simulator, model_entry
from tests.support.servers import ServerThread

QUESTION = "Tell me about switchyards."
INSTRUCTIONS = "Answer in one sentence."
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
]
CLOSING_EVENTS = [
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
]


def sdk(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)


def chat_answer(sim: Simulator, max_tokens: int) -> Any:
    """What the backend says to the same conversation as chat completions."""
    messages: Any = [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": QUESTION},
    ]
    return sdk(sim.base_url).chat.completions.create(
        model="m", messages=messages, max_tokens=max_tokens
    )


def test_a_chat_backend_answers_a_response_translated(
    sim_gateway: tuple[Simulator, Gateway],
) -> None:
    sim, gw = sim_gateway
    chat = chat_answer(sim, 12)
    raw = sdk(gw.base_url).responses.with_raw_response.create(
        model="m", input=QUESTION, instructions=INSTRUCTIONS, max_output_tokens=12
    )
    response = raw.parse()
    assert response.object == "response" and response.id.startswith("resp_")
    assert response.output_text == chat.choices[0].message.content
    assert response.output[0].type == "message" and response.output[0].role == "assistant"
    finished = chat.choices[0].finish_reason
    assert response.status == ("incomplete" if finished == "length" else "completed")
    assert response.usage is not None and chat.usage is not None
    assert response.usage.input_tokens == chat.usage.prompt_tokens
    assert response.usage.output_tokens == chat.usage.completion_tokens
    assert raw.headers["x-request-id"]
    assert gw.metric("switchyard_prompt_tokens_total", model="m") == chat.usage.prompt_tokens
    assert gw.metric("switchyard_api_requests_total", api="responses", outcome="translated") == 1


def test_a_streamed_response_sends_the_specs_events_in_order(
    sim_gateway: tuple[Simulator, Gateway],
) -> None:
    sim, gw = sim_gateway
    chat = chat_answer(sim, 12)
    stream = sdk(gw.base_url).responses.create(
        model="m", input=QUESTION, instructions=INSTRUCTIONS, max_output_tokens=12, stream=True
    )
    events = list(stream)
    kinds = [e.type for e in events]
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert kinds[:4] == TEXT_EVENTS
    assert kinds[4 : 4 + len(deltas)] == ["response.output_text.delta"] * len(deltas)
    assert kinds[4 + len(deltas) : -1] == CLOSING_EVENTS
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in deltas)
    assert text == chat.choices[0].message.content
    last = events[-1].response  # type: ignore[union-attr]
    assert last.output_text == text
    assert last.usage is not None and chat.usage is not None
    assert last.usage.input_tokens == chat.usage.prompt_tokens
    assert gw.metric("switchyard_completion_tokens_total", model="m") == (
        chat.usage.completion_tokens
    )


def test_a_forced_function_call_comes_back_as_a_function_call_item(
    sim_gateway: tuple[Simulator, Gateway],
) -> None:
    _, gw = sim_gateway
    client = sdk(gw.base_url)
    response = client.responses.create(
        model="m", input="Weather in Oslo?", tools=[WEATHER], tool_choice="required"
    )
    call = response.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert isinstance(orjson.loads(call.arguments), dict)
    stream = client.responses.create(
        model="m", input="Weather in Oslo?", tools=[WEATHER], tool_choice="required", stream=True
    )
    events = list(stream)
    pieces = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1 and done[0].arguments == pieces
    assert events[-1].type == "response.completed"
    assert events[-1].response.output[0].type == "function_call"
    # The call's output goes back as input items; the conversation continues in text.
    follow = client.responses.create(
        model="m",
        input=[
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
        tools=[WEATHER],
    )
    assert follow.output_text


def test_previous_response_id_is_refused_with_a_clear_400(
    sim_gateway: tuple[Simulator, Gateway],
) -> None:
    _, gw = sim_gateway
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(gw.base_url).responses.create(model="m", input="hi", previous_response_id="resp_1")
    assert caught.value.param == "previous_response_id"
    assert "whole conversation" in caught.value.message
    assert gw.metric("switchyard_api_requests_total", api="responses", outcome="refused") == 1


class _PathRecorder:
    """The simulator's app, noting the path of every POST it serves."""

    def __init__(self, app: Any) -> None:
        self.app, self.paths = app, list[str]()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


@pytest.fixture
def native(gateway: Callable[..., Gateway]) -> Any:
    """A gateway in front of a simulator whose model serves the Responses API itself."""
    recorder = _PathRecorder(create_simulator_app(build_config("m", "zero", 0)))
    server = ServerThread(recorder, lifespan="off").start()
    caps = ["chat", "responses"]
    gw = gateway([model_entry("m", f"{server.url}/v1", capabilities=caps)])
    yield gw, recorder
    server.stop()


def test_a_backend_that_serves_responses_gets_the_request_as_it_came(native: Any) -> None:
    gw, recorder = native
    client = sdk(gw.base_url)
    response = client.responses.create(model="m", input=QUESTION, max_output_tokens=8)
    events = list(client.responses.create(model="m", input=QUESTION, max_output_tokens=8,
                                          stream=True))  # fmt: skip
    assert recorder.paths == ["/v1/responses", "/v1/responses"]
    assert gw.metric("switchyard_api_requests_total", api="responses", outcome="native") == 2
    assert response.output_text
    assert events[0].type == "response.created"
    assert events[-1].response.output_text == response.output_text  # type: ignore[union-attr]
    # usage is read from the Responses answers: both requests counted
    assert response.usage is not None
    assert gw.metric("switchyard_prompt_tokens_total", model="m") == (
        2 * response.usage.input_tokens
    )


def test_malformed_unknown_and_oversized_requests_get_openai_errors(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sim = simulator("m")
    gw = gateway([model_entry("m", sim.base_url)], server={"max_body_bytes": 4096})
    url = f"{gw.base_url}/responses"
    malformed = httpx.post(url, content=b'{"model": "m", "input": ', timeout=10)
    assert malformed.status_code == 400
    assert malformed.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError) as missing:
        sdk(gw.base_url).responses.create(model="nope", input="hi")
    assert missing.value.code == "model_not_found"
    oversized = httpx.post(url, json={"model": "m", "input": "x" * 5000}, timeout=10)
    assert oversized.status_code == 413
    assert oversized.json()["error"]["code"] == "request_too_large"


def test_a_stream_the_backend_breaks_ends_with_error_and_response_failed(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sim = simulator("m", drop_rate=1.0, drop_after_chunks=3)
    gw = gateway([model_entry("m", sim.base_url)])
    events = list(sdk(gw.base_url).responses.create(model="m", input=QUESTION, stream=True))
    assert [e.type for e in events][-2:] == ["error", "response.failed"]
    assert events[-1].response.status == "failed"  # type: ignore[union-attr]
