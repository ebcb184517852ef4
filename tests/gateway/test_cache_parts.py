"""The response cache's parts without a gateway: the request key, the opt-in and sampling
rules, the in-process LRU, and the stream built from a stored JSON answer."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from switchyard.gateway.cache.config import CacheConfig
from switchyard.gateway.cache.hook import chunks, opt_in, request_key, sampled
from switchyard.gateway.cache.store import MemoryStore
from switchyard.gateway.errors import InvalidRequestError
from switchyard.gateway.settings import Capability

BODY: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_the_key_ignores_stream_user_request_id_and_the_cache_option_and_key_order() -> None:
    plain = request_key(BODY, [], "t")
    noisy = {
        "stream": True, "stream_options": {"include_usage": True}, "user": "u1",
        "request_id": "r1", "switchyard": {"cache": True}, **dict(reversed(BODY.items())),
    }  # fmt: skip
    assert request_key(noisy, [(b"x-switchyard-cache", b"on")], "t") == plain


def test_the_key_separates_tenants_bodies_and_routing_options() -> None:
    plain = request_key(BODY, [], "t")
    assert request_key(BODY, [], "other") != plain
    assert request_key({**BODY, "max_tokens": 5}, [], "t") != plain
    assert request_key({**BODY, "switchyard": {"cost_weight": 1}}, [], "t") != plain
    assert request_key(BODY, [(b"x-switchyard-cost-weight", b"1")], "t") != plain


def test_opt_in_reads_the_body_before_the_header() -> None:
    on = [(b"x-switchyard-cache", b"on")]
    assert opt_in([], BODY) is None
    assert opt_in(on, BODY) == "on"
    assert opt_in(on, {**BODY, "switchyard": {"cache": False}}) is None
    assert opt_in([], {**BODY, "switchyard": {"cache": "allow-sampled"}}) == "allow-sampled"
    with pytest.raises(InvalidRequestError):
        opt_in([], {**BODY, "switchyard": {"cache": "yes"}})


@pytest.mark.parametrize(
    ("extra", "reason"),
    [({}, "temperature"), ({"temperature": 0.2}, "temperature"), ({"temperature": 0}, None),
     ({"temperature": 0, "n": 3}, "n"), ({"temperature": 0, "logprobs": True}, "logprobs")],
)  # fmt: skip
def test_sampled_requests_are_recognised(extra: dict[str, Any], reason: str | None) -> None:
    assert sampled({**BODY, **extra}, Capability.chat) == reason
    assert sampled({"model": "m", "input": "x"}, Capability.embeddings) is None


def test_the_lru_evicts_the_least_recently_used_past_its_bounds() -> None:
    async def run() -> None:
        store = MemoryStore(CacheConfig(max_entries=2, max_bytes=100))
        await store.put("a", b"1")
        await store.put("b", b"2")
        assert await store.get("a") == b"1"  # a is now the most recent
        await store.put("c", b"3")
        assert await store.get("b") is None and len(store) == 2
        await store.put("big", b"x" * 100)  # over max_bytes with the others: they go
        assert len(store) == 1 and store.bytes == 100

    asyncio.run(run())


def test_an_entry_expires_after_ttl() -> None:
    now = [0.0]
    store = MemoryStore(CacheConfig(ttl_s=10), clock=lambda: now[0])

    async def run() -> tuple[bytes | None, bytes | None]:
        await store.put("k", b"v")
        before = await store.get("k")
        now[0] = 10.0
        return before, await store.get("k")

    assert asyncio.run(run()) == (b"v", None)
    assert store.bytes == 0


def test_a_json_chat_answer_becomes_chunks_ending_in_done() -> None:
    answer = {
        "id": "c1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }  # fmt: skip
    stream = chunks(orjson.dumps(answer), usage=True)
    assert stream is not None and stream.endswith(b"data: [DONE]\n\n")
    events = [orjson.loads(e[6:]) for e in stream.split(b"\n\n") if e and e != b"data: [DONE]"]
    assert events[0]["choices"][0]["delta"]["content"] == "Hello"
    assert events[1]["choices"][0]["finish_reason"] == "stop"
    assert events[-1]["usage"]["total_tokens"] == 2
    assert all(e["object"] == "chat.completion.chunk" for e in events)
    assert chunks(b'{"object": "list", "data": []}', usage=False) is None  # embeddings
