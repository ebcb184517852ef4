"""Prefix scoring end to end: simulated vLLM replicas with prefix caches, the gateway on real
sockets, the official OpenAI SDK as the client. Requests sharing a system prompt, a growing
multi-turn chat and a RAG document each go back to the replica that caches them (the replicas'
own vLLM counters say so) unless that replica is much busier; the index's memory is a metric."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from openai import OpenAI

from tests.support.gateways import Gateway, Simulator, model_entry, queue_of, wait_for
from tests.support.hold import held_streams

SYSTEM = "You are Switchyard's support assistant. Answer briefly and cite the manual. " * 12
DOC = "Section 4.2: replicas keep the KV blocks of recent prompts in a prefix cache. " * 16
SCORING: dict[str, Any] = {"prefix_scoring": True, "scrape_interval_s": 0.1, "seed": 4}


def fleet(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway], **upstream: Any
) -> tuple[list[Simulator], Gateway, OpenAI]:
    sims = [simulator("m", preset="fast", max_num_seqs=4) for _ in range(3)]
    gw = gateway([model_entry("m", *(s.base_url for s in sims))], upstream=SCORING | upstream)
    return sims, gw, OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)


def ask(client: OpenAI, messages: list[dict[str, str]]) -> str:
    reply = client.chat.completions.create(
        model="m",
        messages=messages,  # type: ignore[arg-type]
        max_tokens=4,
    )
    return reply.choices[0].message.content or ""


def hits(sims: list[Simulator]) -> list[float]:
    return [s.metric("vllm:prefix_cache_hits_total") for s in sims]


def test_a_shared_system_prompt_and_a_rag_document_each_stay_on_one_replica(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sims, gw, client = fleet(simulator, gateway)
    for i in range(6):
        ask(client, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Q{i}"}])
        ask(client, [{"role": "user", "content": f"{DOC}\nWhat does section 4.2 say? ({i})"}])
    queried = sum(s.metric("vllm:prefix_cache_queries_total") for s in sims)
    # Each prefix computed once: every later request finds it (all but its last partial block).
    assert sum(hits(sims)) > 0.8 * queried
    assert gw.metric("switchyard_prefix_index_blocks") > 0
    assert gw.metric("switchyard_prefix_index_bytes") > 0


def test_a_multi_turn_chat_goes_back_to_the_replica_holding_its_earlier_turns(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sims, _, client = fleet(simulator, gateway)
    messages = [{"role": "system", "content": SYSTEM}]
    for turn in range(5):
        messages.append({"role": "user", "content": f"Turn {turn}: tell me more."})
        messages.append({"role": "assistant", "content": ask(client, messages)})
    served = [s.metric("vllm:request_success_total") for s in sims]
    assert sorted(served) == [0, 0, 5]
    system_tokens = len(SYSTEM) // 4
    assert max(hits(sims)) >= 0.9 * 4 * system_tokens  # turns 2..5 found at least the system


def test_a_much_busier_warm_replica_loses_the_prefix_to_an_idle_one(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    sims, gw, client = fleet(simulator, gateway)
    question = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Q"}]
    ask(client, question)
    home = next(s for s in sims if s.metric("vllm:request_success_total") == 1)
    with held_streams(home.base_url, "m", 12):  # 4 running, 8 queued: ~seconds of wait
        wait_for(queue_of(gw, home.base_url, 8))
        ask(client, question)
    assert home.metric("vllm:request_success_total") == 1
    assert sum(s.metric("vllm:request_success_total") for s in sims) == 2


def test_prefix_scoring_off_keeps_no_index(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    _, gw, client = fleet(simulator, gateway, prefix_scoring=False)
    ask(client, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Q"}])
    assert gw.server.app.state.upstreams.prefix_index is None
    assert gw.metric("switchyard_prefix_index_capacity_blocks") == 0
