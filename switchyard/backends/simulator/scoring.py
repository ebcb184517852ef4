"""``POST /v1/rerank`` and ``POST /v1/score``: a cross-encoder's scores, simulated as vLLM
serves them.

A pair's score is deterministic and plausible: a logistic of the share of the query's words
the document contains, nudged by a hash of (server seed, pair), so a document that repeats
the query ranks above one that does not, and equal pairs always score equally. The shapes
and the checks follow vLLM's ``ServingScores``: rerank is Jina's/Cohere's API (results sorted
by ``relevance_score``, cut to ``top_n`` when it is positive, ``usage.total_tokens``); score
pairs ``text_1`` with ``text_2`` 1:1, 1:N or N:N and answers ``data[i].score`` in order.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
import uuid
from typing import Any

import orjson

from switchyard.backends.simulator.metrics import SimulatorMetrics
from switchyard.backends.simulator.protocol import ApiError, parse_json_object
from switchyard.backends.simulator.text import count_text_tokens

MAX_PAIRS = 1024  # documents or pairs per request: more is refused rather than scored
_WORD = re.compile(r"\w+")


class ScoringHandler:
    """Answers rerank and score requests for one simulated server."""

    def __init__(
        self, model: str, seed: int, max_model_len: int, metrics: SimulatorMetrics
    ) -> None:
        self._model = model
        self._seed = seed
        self._max_model_len = max_model_len
        self._metrics = metrics

    def rerank(self, raw: bytes) -> bytes:
        body = self._body(raw)
        query = body.get("query")
        if not isinstance(query, str):
            raise ApiError(400, "query: Input should be a valid string", param="query")
        documents = _texts(body.get("documents"), "documents", allow_one=False)
        top_n = body.get("top_n", 0)
        if isinstance(top_n, bool) or not isinstance(top_n, int):
            raise ApiError(400, "top_n: Input should be a valid integer", param="top_n")
        scores, tokens = self._pairs([query], documents)
        ranked = sorted(enumerate(scores), key=lambda pair: pair[1], reverse=True)
        if 0 < top_n < len(ranked):
            ranked = ranked[:top_n]
        results = [
            {"index": i, "document": {"text": documents[i]}, "relevance_score": score}
            for i, score in ranked
        ]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        answer = {"id": f"rerank-{uuid.uuid4().hex}", "model": self._model, "usage": usage,
                  "results": results}  # fmt: skip
        return orjson.dumps(answer)

    def score(self, raw: bytes) -> bytes:
        body = self._body(raw)
        first = _texts(body.get("text_1"), "text_1", allow_one=True)
        second = _texts(body.get("text_2"), "text_2", allow_one=True)
        scores, tokens = self._pairs(first, second)
        data = [{"index": i, "object": "score", "score": s} for i, s in enumerate(scores)]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0}
        return orjson.dumps({"id": f"score-{uuid.uuid4().hex}", "object": "list",
                             "created": int(time.time()), "model": self._model,
                             "data": data, "usage": usage})  # fmt: skip

    def _body(self, raw: bytes) -> dict[str, Any]:
        body = parse_json_object(raw)
        model = body.get("model")
        if model is not None and model != self._model:
            raise ApiError(404, f"The model `{model}` does not exist.", param="model",
                           code="model_not_found")  # fmt: skip
        truncate = body.get("truncate_prompt_tokens")
        if truncate is not None and (
            isinstance(truncate, bool) or not isinstance(truncate, int) or truncate < -1
        ):
            raise ApiError(400, "truncate_prompt_tokens: Input should be an integer >= -1",
                           param="truncate_prompt_tokens")  # fmt: skip
        return body

    def _pairs(self, first: list[str], second: list[str]) -> tuple[list[float], int]:
        """Scores of the pairs (vLLM's 1:1, 1:N or N:N) and the prompt tokens they took."""
        if len(first) > 1 and len(first) != len(second):
            raise ApiError(400, "Input lengths must be either 1:1, 1:N or N:N")
        if len(first) == 1:
            first = first * len(second)
        scores: list[float] = []
        total = 0
        for a, b in zip(first, second, strict=True):
            tokens = count_text_tokens(a) + count_text_tokens(b) + 2  # [CLS] a [SEP] b
            if tokens > self._max_model_len:
                raise ApiError(400, f"This model's maximum context length is "
                               f"{self._max_model_len} tokens. However, you requested "
                               f"{tokens} tokens in the input for scoring.")  # fmt: skip
            scores.append(self._score(a, b))
            total += tokens
        self._metrics.prompt_tokens += total
        return scores, total

    def _score(self, query: str, document: str) -> float:
        words = set(_WORD.findall(query.lower()))
        overlap = len(words & set(_WORD.findall(document.lower()))) / len(words) if words else 0
        digest = hashlib.blake2b(f"{self._seed}:{query}\x00{document}".encode(), digest_size=8)
        jitter = int.from_bytes(digest.digest()) / 2**64 - 0.5  # in [-0.5, 0.5)
        return 1.0 / (1.0 + math.exp(-(6.0 * overlap - 3.0 + jitter)))


def _texts(value: Any, field: str, allow_one: bool) -> list[str]:
    """A string (when ``allow_one``) or a list of strings; vLLM's 400s otherwise."""
    if allow_one and isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        kind = "a valid string or list of strings" if allow_one else "a valid list of strings"
        raise ApiError(400, f"{field}: Input should be {kind}", param=field)
    if not value:
        which = "text" if field in ("text_1",) else "text_pair"
        raise ApiError(400, f"At least one {which} element must be given", param=field)
    if len(value) > MAX_PAIRS:
        raise ApiError(400, f"{field}: at most {MAX_PAIRS} items", param=field)
    return value
