"""What reading a pass-through transcription costs the gateway: scanning the multipart form
for its model (``switchyard.gateway.passthrough``), by body size, on the event loop's thread.

    .venv/bin/python bench/passthrough_scan_bench.py      # a few seconds

Prints the median of 7 repeats (µs per request) for forms of 100 kB, 1 MB and 8 MB (the
default ``server.max_body_bytes``) of random audio bytes, as the ``openai`` SDK (httpx)
encodes them.
"""

from __future__ import annotations

import os
import statistics
import timeit
from functools import partial

import httpx

from switchyard.gateway.passthrough import parse_passthrough
from switchyard.gateway.settings import Capability


def main() -> None:
    for size in (100_000, 1_000_000, 8_000_000):
        request = httpx.Request("POST", "http://x", data={"model": "whisper"},
                                files={"file": ("a.wav", os.urandom(size))})  # fmt: skip
        body = request.read()
        headers = [(b"content-type", request.headers["content-type"].encode())]
        number = max(1, 2_000_000 // size)
        runs = timeit.repeat(
            partial(parse_passthrough, body, headers, Capability.transcriptions),
            number=number,
            repeat=7,
        )
        median = statistics.median(runs) / number * 1e6
        print(f"{size:>9,} bytes: {median:8.1f} µs per form scan")


if __name__ == "__main__":
    main()
