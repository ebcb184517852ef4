"""What translating a request costs: the Responses and Messages APIs beside chat completions.

In-process, no sockets: for one request of each API (a system prompt and a user question) it
times what the gateway does per request that a chat completion does not, against what a
chat completion costs at the same steps:

* ``parse``: reading the body (``parse_payload`` for chat; ``Dialect.parse``, which also
  translates, for the others);
* ``answer``: a whole chat answer (``_usage_of`` for chat; ``Translation.answer``);
* ``stream``: a 64-token chat stream, chunk by chunk (``UsageTap`` for chat; the event
  translator), ending with the usage chunk.

The three APIs are timed in turn within each round (order rotating), ``--rounds`` rounds of
``--iterations`` requests; medians of the per-request times are printed as a Markdown table
with the added cost (API minus chat) and written to ``bench/results/api_translation.json``::

    .venv/bin/python bench/api_translation_bench.py [--rounds 7] [--iterations 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from switchyard.gateway.apis import Dialect, api_requests
from switchyard.gateway.apis.messages import MessagesDialect
from switchyard.gateway.apis.responses import ResponsesDialect
from switchyard.gateway.payload import parse_payload
from switchyard.gateway.proxy import _usage_of
from switchyard.gateway.settings import Capability
from switchyard.gateway.streaming import UsageTap

OUT = Path(__file__).parent / "results" / "api_translation.json"
SYSTEM = "You are a careful assistant who answers in one short paragraph."
QUESTION = "Explain what a railway switchyard does and why trains are sorted there. " * 3
TOKENS = 64

BODIES = {
    "chat": {"model": "m", "messages": [{"role": "system", "content": SYSTEM},
                                        {"role": "user", "content": QUESTION}],
             "max_tokens": TOKENS},
    "responses": {"model": "m", "instructions": SYSTEM, "input": QUESTION,
                  "max_output_tokens": TOKENS},
    "messages": {"model": "m", "system": SYSTEM, "max_tokens": TOKENS,
                 "messages": [{"role": "user", "content": QUESTION}]},
}  # fmt: skip


def chat_answer() -> bytes:
    text = " ".join(f"word{i}" for i in range(TOKENS))
    message = {"role": "assistant", "content": text}
    return orjson.dumps({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 60, "completion_tokens": TOKENS, "total_tokens": 60 + TOKENS},
    })  # fmt: skip


def chat_stream() -> list[bytes]:
    """The chunks as vLLM sends them: one event per token, then finish, usage and [DONE]."""
    head = b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m",'
    chunks = [head + b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
              b'"logprobs":null,"finish_reason":null}]}\n\n']  # fmt: skip
    for i in range(TOKENS):
        chunks.append(head + b'"choices":[{"index":0,"delta":{"content":" word%d"},' % i
                      + b'"logprobs":null,"finish_reason":null}]}\n\n')  # fmt: skip
    chunks.append(head + b'"choices":[{"index":0,"delta":{},"logprobs":null,'
                  b'"finish_reason":"length"}]}\n\n')  # fmt: skip
    usage = b'{"prompt_tokens":60,"completion_tokens":64,"total_tokens":124}'
    chunks.append(head + b'"choices":[],"usage":' + usage + b"}\n\n")
    chunks.append(b"data: [DONE]\n\n")
    return chunks


def steps(api: str) -> dict[str, Callable[[], Any]]:
    raw = orjson.dumps(BODIES[api])
    answer, stream = chat_answer(), chat_stream()
    if api == "chat":

        def tap_all() -> Any:
            tap = UsageTap(drop=True)
            return [tap.feed(c) for c in stream], tap.flush(), tap.usage

        return {
            "parse": lambda: parse_payload(raw, Capability.chat),
            "answer": lambda: _usage_of(answer),
            "stream": tap_all,
        }
    requests = api_requests(CollectorRegistry())
    dialect: Dialect = (
        ResponsesDialect(requests) if api == "responses" else MessagesDialect(requests)
    )
    translation = dialect.parse(raw)[1]

    def translate_all() -> Any:
        events = translation.events()
        return [events.feed(c) for c in stream], events.flush(), events.usage

    return {
        "parse": lambda: dialect.parse(raw),
        "answer": lambda: translation.answer(200, answer),
        "stream": translate_all,
    }


def per_call_us(fn: Callable[[], Any], iterations: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(iterations):
        fn()
    return (time.perf_counter_ns() - start) / iterations / 1e3


def measure(rounds: int, iterations: int) -> dict[str, dict[str, float]]:
    apis = list(BODIES)
    plan = {api: steps(api) for api in apis}
    samples: dict[str, dict[str, list[float]]] = {a: {s: [] for s in plan[a]} for a in apis}
    for r in range(rounds):
        order = apis[r % len(apis) :] + apis[: r % len(apis)]
        for api in order:
            for step, fn in plan[api].items():
                n = iterations if step != "stream" else max(iterations // 20, 10)
                samples[api][step].append(per_call_us(fn, n))
    return {
        a: {s: statistics.median(v) for s, v in steps_.items()} for a, steps_ in samples.items()
    }


def report(medians: dict[str, dict[str, float]]) -> str:
    chat = medians["chat"]
    lines = [
        "| API | parse µs | answer µs | 64-token stream µs | added, JSON request µs "
        "| added, stream µs |",
        "|---|---|---|---|---|---|",
    ]
    for api, m in medians.items():
        json_added = m["parse"] + m["answer"] - chat["parse"] - chat["answer"]
        stream_added = m["parse"] + m["stream"] - chat["parse"] - chat["stream"]
        added = ("—", "—") if api == "chat" else (f"{json_added:.1f}", f"{stream_added:.1f}")
        lines.append(f"| {api} | {m['parse']:.1f} | {m['answer']:.1f} | {m['stream']:.1f} | "
                     f"{added[0]} | {added[1]} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()
    medians = measure(args.rounds, args.iterations)
    print(report(medians))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"rounds": args.rounds, "iterations": args.iterations,
                               "median_us": medians}, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
