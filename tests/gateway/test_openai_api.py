"""The gateway as a drop-in OpenAI endpoint: the official SDK, sync and async, through real
sockets to simulated vLLM servers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import openai
import orjson
import pytest

from tests.support.gateways import Gateway, Simulator, model_entry
from tests.support.servers import ServerThread

MESSAGES: Any = [{"role": "user", "content": "Tell me about switchyards."}]
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def sdk(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)


def test_chat_completion_is_the_backends_answer(sim_gateway: tuple[Simulator, Gateway]) -> None:
    sim, gw = sim_gateway
    direct = sdk(sim.base_url).chat.completions.create(model="m", messages=MESSAGES, seed=7)
    raw = sdk(gw.base_url).chat.completions.with_raw_response.create(
        model="m", messages=MESSAGES, seed=7
    )
    via = raw.parse()
    assert via.choices[0].message.content == direct.choices[0].message.content
    assert via.usage == direct.usage
    assert raw.headers["x-request-id"]


def test_streamed_chunks_arrive_in_order_and_match_the_backend(
    sim_gateway: tuple[Simulator, Gateway],
) -> None:
    sim, gw = sim_gateway

    def text(base_url: str) -> list[str]:
        stream = sdk(base_url).chat.completions.create(
            model="m", messages=MESSAGES, stream=True, max_tokens=12
        )
        return [c.choices[0].delta.content or "" for c in stream if c.choices]

    assert text(gw.base_url) == text(sim.base_url)


def test_include_usage_is_honoured_and_not_added_when_not_asked(
    sim_gateway: tuple[Simulator, Gateway],
) -> None:
    _, gw = sim_gateway
    client = sdk(gw.base_url)
    asked = list(
        client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert asked[-1].choices == [] and asked[-1].usage is not None
    assert asked[-1].usage.completion_tokens == sum(1 for c in asked if c.choices) - 2
    plain = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert all(c.usage is None for c in plain)
    assert all(c.choices for c in plain)


def test_async_client_streams_and_completes_concurrently(
    sim_gateway: tuple[Simulator, Gateway],
) -> None:
    _, gw = sim_gateway

    async def main() -> list[str]:
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)

        async def one(i: int) -> str:
            if i % 2:
                r = await client.chat.completions.create(model="m", messages=MESSAGES, seed=i)
                return r.choices[0].message.content or ""
            stream = await client.chat.completions.create(
                model="m", messages=MESSAGES, seed=i, stream=True
            )
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

        try:
            return await asyncio.gather(*(one(i) for i in range(20)))
        finally:
            await client.close()

    texts = asyncio.run(main())
    assert all(texts)
    assert texts[2] != texts[4]  # different seeds, different answers


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_pass_through(sim_gateway: tuple[Simulator, Gateway], stream: bool) -> None:
    _, gw = sim_gateway
    kwargs: Any = {"model": "m", "messages": MESSAGES, "tools": [WEATHER_TOOL],
                   "tool_choice": "required"}  # fmt: skip
    if not stream:
        choice = sdk(gw.base_url).chat.completions.create(**kwargs).choices[0]
        assert choice.finish_reason == "tool_calls"
        call: Any = choice.message.tool_calls[0]
        name, arguments = call.function.name, call.function.arguments
    else:
        deltas = [
            tc
            for chunk in sdk(gw.base_url).chat.completions.create(**kwargs, stream=True)
            for tc in ((chunk.choices and chunk.choices[0].delta.tool_calls) or [])
        ]
        name = next(d.function.name for d in deltas if d.function and d.function.name)
        arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert name == "get_weather"
    assert isinstance(orjson.loads(arguments)["city"], str)


def test_text_completions_stream_and_not(sim_gateway: tuple[Simulator, Gateway]) -> None:
    _, gw = sim_gateway
    client = sdk(gw.base_url)
    whole = client.completions.create(model="m", prompt="Once upon a time", max_tokens=8)
    assert whole.choices[0].text and whole.usage and whole.usage.completion_tokens == 8
    parts = [c.choices[0].text for c in client.completions.create(
        model="m", prompt="Once upon a time", max_tokens=8, stream=True) if c.choices]  # fmt: skip
    assert "".join(parts) == whole.choices[0].text


def test_embeddings_go_to_a_model_that_serves_them(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    chat, emb = simulator("m"), simulator("e", serves_embeddings=True)
    gw = gateway([
        model_entry("m", chat.base_url),
        model_entry("e", emb.base_url, capabilities=["embeddings"]),
    ])  # fmt: skip
    result = sdk(gw.base_url).embeddings.create(model="e", input=["a", "b"])
    assert len(result.data) == 2 and len(result.data[0].embedding) > 0
    with pytest.raises(openai.BadRequestError, match="does not serve embeddings"):
        sdk(gw.base_url).embeddings.create(model="m", input="a")
    with pytest.raises(openai.BadRequestError, match="does not serve chat"):
        sdk(gw.base_url).chat.completions.create(model="e", messages=MESSAGES)


def test_models_are_listed_and_described(sim_gateway: tuple[Simulator, Gateway]) -> None:
    _, gw = sim_gateway
    client = sdk(gw.base_url)
    assert [m.id for m in client.models.list()] == ["m"]
    assert client.models.retrieve("m").owned_by == "switchyard"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_unknown_fields_reach_the_backend_untouched(gateway: Callable[..., Gateway]) -> None:
    seen: list[bytes] = []

    async def recorder(scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] == "POST":  # not the gateway's GET /metrics scrapes
            seen.append(body)
        answer = orjson.dumps({"id": "x", "object": "chat.completion", "created": 0,
                               "model": "m", "choices": []})  # fmt: skip
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": answer})

    with ServerThread(recorder, lifespan="off") as backend:
        gw = gateway([model_entry("m", f"{backend.url}/v1")])
        body = b'{"model": "m", "messages": [{"role": "user", "content": "x"}],  "top_k": 3,' \
               b' "guided_json": {"type": "object"}, "vendor_extension": [1, 2.50]}'  # fmt: skip
        response = gw.client.post("/v1/chat/completions", content=body)
    assert response.status_code == 200
    assert seen == [body]
