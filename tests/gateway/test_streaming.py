"""UsageTap: finds the usage event in an SSE stream, drops it only when asked to."""

from __future__ import annotations

import orjson

from switchyard.gateway.streaming import UsageTap

CONTENT = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":7}}\n\n'
DONE = b"data: [DONE]\n\n"
STREAM = CONTENT * 3 + USAGE + DONE


def run(tap: UsageTap, chunks: list[bytes]) -> bytes:
    return b"".join(tap.feed(c) for c in chunks) + tap.flush()


def split_every(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_requested_usage_passes_through_byte_for_byte() -> None:
    tap = UsageTap(drop=False)
    chunks = split_every(STREAM, 7)
    out = [tap.feed(c) for c in chunks]
    assert out == chunks  # every chunk forwarded as it came, nothing held back
    assert tap.flush() == b""
    assert tap.usage == {"prompt_tokens": 3, "completion_tokens": 7}


def test_injected_usage_event_is_removed_even_when_split_across_chunks() -> None:
    for size in (1, 5, 33, len(STREAM)):
        tap = UsageTap(drop=True)
        assert run(tap, split_every(STREAM, size)) == CONTENT * 3 + DONE
        assert tap.usage == {"prompt_tokens": 3, "completion_tokens": 7}


def test_content_chunks_that_mention_usage_are_kept() -> None:
    text = b'data: {"choices":[{"delta":{"content":"\\"usage\\""}}]}\n\n'
    tap = UsageTap(drop=True)
    assert run(tap, [text, DONE]) == text + DONE
    assert tap.usage is None
    assert orjson.loads(text[6:])["choices"][0]["delta"]["content"] == '"usage"'


def test_a_stream_that_is_not_sse_is_not_held_back_forever() -> None:
    tap = UsageTap(drop=True)
    blob = b"x" * (2 << 20)
    assert run(tap, [blob[: 1 << 20], blob[1 << 20 :]]) == blob
