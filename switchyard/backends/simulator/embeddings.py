"""``POST /v1/embeddings``: deterministic unit vectors, one per input, in OpenAI's shape.

A vector depends only on (server seed, input text), so equal inputs embed equally, which is
what a semantic cache in front of the simulator needs to be testable. ``encoding_format``
"base64" (the openai SDK's default) is little-endian float32, as OpenAI sends it.
"""

from __future__ import annotations

import base64
import math
import random
import sys
from array import array
from typing import Any

import orjson

from switchyard.backends.simulator.metrics import SimulatorMetrics
from switchyard.backends.simulator.protocol import ApiError, parse_json_object
from switchyard.backends.simulator.text import count_text_tokens

MAX_INPUTS = 2048


class EmbeddingsHandler:
    """Answers embedding requests for one simulated server."""

    def __init__(
        self, model: str, seed: int, dim: int, max_model_len: int, metrics: SimulatorMetrics
    ) -> None:
        self._model = model
        self._seed = seed
        self._dim = dim
        self._max_model_len = max_model_len
        self._metrics = metrics

    def respond(self, raw: bytes) -> bytes:
        """The response body for a request body; ``ApiError`` when it is not acceptable."""
        body = parse_json_object(raw)
        model = body.get("model")
        if model is not None and model != self._model:
            raise ApiError(404, f"The model `{model}` does not exist.", param="model",
                           code="model_not_found")  # fmt: skip
        texts, tokens = self._inputs(body.get("input"))
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise ApiError(
                400, 'encoding_format must be "float" or "base64"', param="encoding_format"
            )
        dim = self._dimensions(body.get("dimensions"))
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": _encode(self._vector(t, dim), encoding),
            }
            for i, t in enumerate(texts)
        ]
        self._metrics.prompt_tokens += tokens
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return orjson.dumps({"object": "list", "data": data, "model": self._model, "usage": usage})

    def _inputs(self, value: Any) -> tuple[list[str], int]:
        """The texts to embed (token-id inputs become their ids as text) and their tokens."""
        if isinstance(value, str) or (isinstance(value, list) and value and _is_ids(value)):
            value = [value]
        if not isinstance(value, list) or not value or len(value) > MAX_INPUTS:
            raise ApiError(400, f"input must be a string or 1..{MAX_INPUTS} inputs", param="input")
        texts: list[str] = []
        total = 0
        for item in value:
            if isinstance(item, str):
                text, tokens = item, max(count_text_tokens(item), 1)
            elif isinstance(item, list) and item and _is_ids(item):
                text, tokens = " ".join(map(str, item)), len(item)
            else:
                raise ApiError(400, "each input must be a string or token ids", param="input")
            if tokens > self._max_model_len:
                raise ApiError(400, f"an input is longer than {self._max_model_len} tokens",
                               param="input")  # fmt: skip
            texts.append(text)
            total += tokens
        return texts, total

    def _dimensions(self, value: Any) -> int:
        if value is None:
            return self._dim
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= self._dim:
            raise ApiError(
                400, f"dimensions must be an integer in 1..{self._dim}", param="dimensions"
            )
        return value

    def _vector(self, text: str, dim: int) -> list[float]:
        rng = random.Random(f"{self._seed}:embedding:{text}")
        vector = [rng.gauss(0.0, 1.0) for _ in range(dim)]
        norm = math.sqrt(sum(x * x for x in vector)) or 1.0
        return [x / norm for x in vector]


def _is_ids(values: list[Any]) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "float":
        return vector
    packed = array("f", vector)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")
