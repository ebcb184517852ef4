"""The simulator's prefix cache, as vLLM's automatic prefix caching behaves: hits on the
longest cached run of a prompt's block chain, at least the last token computed, LRU eviction
bounded by the KV pool (a chain's tail first), vLLM's counters on /metrics, and a prefill that
pays only for uncached tokens — checked over real sockets with the OpenAI SDK."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from openai import OpenAI

from switchyard.backends.prefix_blocks import block_hashes
from switchyard.backends.simulator.prefix_cache import PrefixCache
from tests.support.gateways import Simulator

DOC = "Switchyard routes requests to replicas by their expected wait. " * 64  # ~1k tokens


def chain(n: int, salt: str = "") -> tuple[int, ...]:
    return block_hashes("".join(f"{salt}{i}".ljust(64, ".") for i in range(n)))


def test_a_repeated_prompt_hits_every_block_but_the_one_holding_its_last_token() -> None:
    cache = PrefixCache(capacity_blocks=100)
    blocks = chain(4)
    assert cache.admit(blocks, prompt_tokens=64) == 0  # cold
    assert cache.admit(blocks, prompt_tokens=64) == 48  # 64 - 1 tokens at most: 3 blocks
    assert cache.admit(blocks, prompt_tokens=70) == 64  # a partial block follows: all 4


def test_a_prompt_hits_only_the_cached_run_from_the_root() -> None:
    cache = PrefixCache(capacity_blocks=100)
    cache.admit(chain(3), prompt_tokens=48)
    longer = chain(6)
    assert longer[:3] == chain(3)
    assert cache.admit(longer, prompt_tokens=100) == 48
    assert cache.admit(chain(6, salt="z"), prompt_tokens=100) == 0


def test_beyond_its_capacity_the_least_recently_used_blocks_go_tail_first() -> None:
    cache = PrefixCache(capacity_blocks=6)
    old, new = chain(4, salt="a"), chain(4, salt="b")
    cache.admit(old, prompt_tokens=80)
    cache.admit(new, prompt_tokens=80)
    assert len(cache) == 6 and cache.evictions == 2
    assert old[0] in cache and old[1] in cache  # the root of the older chain stays
    assert old[2] not in cache and old[3] not in cache  # its tail went first
    assert cache.admit(old, prompt_tokens=80) == 32


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        PrefixCache(capacity_blocks=0)


def ttft(client: OpenAI, content: str) -> float:
    started = time.perf_counter()
    stream = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": content}], max_tokens=2, stream=True
    )
    first = None
    for _ in stream:
        first = first or time.perf_counter()
    assert first is not None
    return first - started


def test_a_cached_prompt_is_prefilled_faster_and_counted_as_vllm_counts_it(
    simulator: Callable[..., Simulator],
) -> None:
    # 0.5 ms per prompt token: a ~1k-token prompt prefills in ~0.5 s cold, ~0 s cached.
    sim = simulator("m", preset="fast", prefill_s_per_token=0.0005)
    client = OpenAI(base_url=sim.base_url, api_key="x", max_retries=0)
    cold = ttft(client, DOC)
    warm = ttft(client, DOC)
    tokens = sim.metric("vllm:prompt_tokens_total") / 2
    assert cold > 0.4 and warm < cold / 3, (cold, warm)
    assert sim.metric("vllm:prefix_cache_queries_total") == 2 * tokens
    cached = sim.metric("vllm:prefix_cache_hits_total")
    assert tokens - 16 < cached < tokens and cached % 16 == 0
    assert 'enable_prefix_caching="True"' in metrics_page(sim)


def test_without_prefix_caching_nothing_hits_and_the_config_info_says_so(
    simulator: Callable[..., Simulator],
) -> None:
    sim = simulator("m", preset="fast", prefix_caching=False)
    client = OpenAI(base_url=sim.base_url, api_key="x", max_retries=0)
    ttft(client, DOC)
    ttft(client, DOC)
    assert sim.metric("vllm:prefix_cache_hits_total") == 0
    assert 'enable_prefix_caching="False"' in metrics_page(sim)


def metrics_page(sim: Simulator) -> str:
    return httpx.get(f"{sim.server.url}/metrics").text
