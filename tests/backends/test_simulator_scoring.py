"""The simulator's rerank, score and transcription endpoints: vLLM's shapes and refusals,
deterministic answers (through the ASGI app, in-process)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from switchyard.backends.simulator import build_config, create_simulator_app

MODEL = "sim-ranker"


def _post(path: str, **kwargs: Any) -> httpx.Response:
    app = create_simulator_app(build_config(MODEL, "zero", seed=3))

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
            return await client.post(path, **kwargs)

    return asyncio.run(go())


def test_rerank_sorts_by_relevance_and_cuts_to_top_n() -> None:
    docs = ["nothing related here", "the query words appear: query words", "query"]
    body = {"model": MODEL, "query": "query words", "documents": docs}
    whole = _post("/v1/rerank", json=body).json()
    scores = [r["relevance_score"] for r in whole["results"]]
    assert scores == sorted(scores, reverse=True) and whole["results"][-1]["index"] == 0
    assert whole["usage"]["total_tokens"] > 0 and whole["model"] == MODEL
    top = _post("/v1/rerank", json={**body, "top_n": 1}).json()["results"]
    assert top == whole["results"][:1]


def test_score_is_deterministic_and_pairs_one_to_many() -> None:
    body = {"model": MODEL, "text_1": "a b", "text_2": ["a b", "c d"]}
    first, again = _post("/v1/score", json=body).json(), _post("/v1/score", json=body).json()
    assert [d["score"] for d in first["data"]] == [d["score"] for d in again["data"]]
    assert first["data"][0]["score"] > first["data"][1]["score"]
    assert first["object"] == "list" and first["data"][0]["object"] == "score"


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v1/rerank", {"model": "other", "query": "q", "documents": ["d"]}, 404, "does not exist"),
        ("/v1/rerank", {"query": 1, "documents": ["d"]}, 400, "query"),
        ("/v1/rerank", {"query": "q", "documents": []}, 400, "At least one text_pair"),
        ("/v1/rerank", {"query": "q", "documents": ["d"], "top_n": "2"}, 400, "top_n"),
        ("/v1/score", {"text_1": ["a", "b"], "text_2": ["a", "b", "c"]}, 400, "1:1, 1:N or N:N"),
        ("/v1/score", {"text_1": [], "text_2": ["a"]}, 400, "At least one text element"),
        ("/v1/score", {"text_1": "a", "text_2": "b", "truncate_prompt_tokens": -2}, 400,
         "truncate_prompt_tokens"),
    ],
)  # fmt: skip
def test_pooling_refusals_are_vllms(
    path: str, body: dict[str, Any], status: int, message: str
) -> None:
    answer = _post(path, json=body)
    assert answer.status_code == status and message in answer.json()["error"]["message"]


def test_a_transcript_is_derived_from_the_audio_bytes() -> None:
    def text(audio: bytes, **fields: str) -> str:
        answer = _post("/v1/audio/transcriptions", data={"model": MODEL, **fields},
                       files={"file": ("a.mp3", audio)})  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert answer.json()["usage"]["type"] == "duration"
        transcript: str = answer.json()["text"]
        return transcript

    one = text(b"\x01" * 32_000)
    assert one == text(b"\x01" * 32_000, response_format="text") != text(b"\x02" * 32_000)
    assert len(text(b"\x01" * 160_000).split()) > len(one.split())


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"json": {"model": MODEL}}, 400, "file: Field required"),
        ({"data": {"model": MODEL}, "files": {"x": ("a", b"1")}}, 400, "file: Field required"),
        ({"data": {"model": MODEL, "file": "text"}, "files": {"x": ("a", b"1")}}, 422,
         "file-like object"),
        ({"data": {"model": "other"}, "files": {"file": ("a", b"1")}}, 404, "does not exist"),
        ({"data": {"response_format": "srt"}, "files": {"file": ("a", b"1")}}, 400,
         "only support response_format"),
        ({"data": {"response_format": "verbose_json"}, "files": {"file": ("a", b"1")}}, 400,
         "verbose_json"),
    ],
)  # fmt: skip
def test_transcription_refusals_are_vllms(
    kwargs: dict[str, Any], status: int, message: str
) -> None:
    answer = _post("/v1/audio/transcriptions", **kwargs)
    assert answer.status_code == status and message in answer.json()["error"]["message"]
