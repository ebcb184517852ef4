"""Prompt blocks: hash chains over 16-token blocks of the simulator's token approximation,
the same for the gateway (reading raw bodies) and the simulator (its prompt token count)."""

from __future__ import annotations

from typing import Any

from switchyard.backends.prefix_blocks import (
    BLOCK_TOKENS,
    block_hashes,
    chat_token_text,
    request_blocks,
)
from switchyard.backends.simulator.protocol import parse_chat, parse_completion

SYSTEM = "You are a careful assistant. " * 20  # 560 chars: 140 tokens + 4


def chat(*turns: str, system: str = SYSTEM) -> dict[str, Any]:
    messages = [{"role": "system", "content": system}]
    for i, text in enumerate(turns):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    return {"messages": messages}


def test_the_token_text_has_four_characters_per_token_the_simulator_counts() -> None:
    for body in (chat("Hi."), chat("a" * 1001, "b" * 7, "c"), {"messages": [{"role": "user",
            "content": [{"type": "text", "text": "x" * 99}, {"type": "image_url"}]}]}):  # fmt: skip
        assert len(chat_token_text(body["messages"])) == 4 * parse_chat(body).prompt_tokens
    prompt = {"prompt": "p" * 203}
    blocks = request_blocks(prompt, chat=False)
    assert blocks is not None and blocks.prompt_tokens == parse_completion(prompt).prompt_tokens


def test_prompts_sharing_a_prefix_share_its_leading_block_hashes_and_no_more() -> None:
    first = request_blocks(chat("What is a tensor?"), chat=True)
    later = request_blocks(chat("What is a tensor?", "A grid.", "And a matrix?"), chat=True)
    other = request_blocks(chat("What is a tensor?", system=SYSTEM.upper()), chat=True)
    assert first is not None and later is not None and other is not None
    assert later.hashes[: len(first.hashes)] == first.hashes  # a multi-turn chat extends it
    assert len(later.hashes) > len(first.hashes)
    assert not set(other.hashes) & set(first.hashes)  # the first block differs: all differ


def test_a_changed_block_changes_every_hash_after_it_and_none_before() -> None:
    text = "".join(f"{i:04d}" for i in range(16 * 8))  # 8 blocks
    changed = text[: 64 * 3] + "XXXX" + text[64 * 3 + 4 :]
    a, b = block_hashes(text), block_hashes(changed)
    assert len(a) == 8 and a[:3] == b[:3]
    assert all(x != y for x, y in zip(a[3:], b[3:], strict=True))


def test_only_full_blocks_are_hashed_and_max_blocks_caps_them() -> None:
    step = BLOCK_TOKENS * 4
    assert block_hashes("x" * (step - 1)) == ()
    assert len(block_hashes("x" * (step * 3 + 5))) == 3
    assert len(block_hashes("x" * step * 10, max_blocks=4)) == 4
    assert request_blocks({"messages": [{"role": "user", "content": "short"}]}, chat=True) is None


def test_bodies_the_gateway_cannot_read_give_no_blocks_instead_of_failing() -> None:
    for body in ({}, {"messages": "nope"}, {"messages": [1, {"role": 2}, None]},
                 {"prompt": {"a": 1}}, {"prompt": [1.5, "x"]}):  # fmt: skip
        assert request_blocks(body, chat="messages" in body) is None
    ids = request_blocks({"prompt": [[7] * 40]}, chat=False)  # one batched prompt of ids
    assert ids is not None and len(ids.hashes) == 2 and ids.prompt_tokens == 40
