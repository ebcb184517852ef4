"""``/v1/rerank``, ``/v1/score`` and ``/v1/audio/transcriptions`` through a real gateway to a
simulated vLLM server, over real sockets: rerank and score with httpx (no SDK has them), the
transcription with the official ``openai`` SDK; and every refusal in OpenAI's error shape."""

from __future__ import annotations

import struct
from collections.abc import Callable

import httpx
import openai
import pytest

from tests.support.gateways import Gateway, Simulator, model_entry

POOLING = ["rerank", "score"]
DOCS = ["The capital of France is Paris.", "Cats sleep a lot.", "Paris is in France."]


def _wav(seconds: float, rate: int = 8_000) -> bytes:
    """A silent 16-bit mono PCM WAV file."""
    data = b"\x00\x00" * int(seconds * rate)
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(data), b"WAVE", b"fmt ", 16,
                         1, 1, rate, rate * 2, 2, 16, b"data", len(data))  # fmt: skip
    return header + data


@pytest.fixture
def served(simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]) -> Gateway:
    """Model "ranker" serves rerank and score, "whisper" transcriptions (as "whisper-large" on its
    server: the gateway renames it in the form), "m" chat only."""
    ranker, whisper, chat = simulator("ranker"), simulator("whisper-large"), simulator("m")
    return gateway(
        [
            model_entry("ranker", ranker.base_url, capabilities=POOLING),
            model_entry(
                "whisper",
                whisper.base_url,
                capabilities=["transcriptions"],
                upstream_model="whisper-large",
            ),
            model_entry("m", chat.base_url),
        ],
        server={"max_body_bytes": 96 * 1024},
    )


def _error(response: httpx.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    error: dict[str, str] = response.json()["error"]
    assert {"message", "type", "param", "code"} <= set(error)
    return error


def test_rerank_orders_documents_by_relevance_through_the_gateway(served: Gateway) -> None:
    body = {"model": "ranker", "query": "capital of France", "documents": DOCS, "top_n": 2}
    answer = served.client.post("/v1/rerank", json=body)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["index"] for r in results] == [0, 2]  # the two about France, best first
    assert results[0]["document"]["text"] == DOCS[0]
    assert results[0]["relevance_score"] >= results[1]["relevance_score"]
    assert answer.json()["usage"]["total_tokens"] > 0
    assert answer.headers["x-request-id"]
    assert served.metric("switchyard_requests_total", model="ranker",
                         endpoint=served.settings.models[0].endpoints[0].base_url,
                         status="200") == 1  # fmt: skip


def test_score_pairs_one_text_with_many(served: Gateway) -> None:
    body = {"model": "ranker", "text_1": "capital of France", "text_2": DOCS}
    answer = served.client.post("/v1/score", json=body)
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert [d["index"] for d in data] == [0, 1, 2] and all(0 < d["score"] < 1 for d in data)
    assert data[1]["score"] < data[0]["score"]
    # the backend's own validation reaches the client as it came
    uneven = {"model": "ranker", "text_1": ["a", "b"], "text_2": ["a", "b", "c"]}
    refused = _error(served.client.post("/v1/score", json=uneven), 400)
    assert "1:1, 1:N or N:N" in refused["message"]


def _sdk(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)


def test_transcription_with_the_openai_sdk(served: Gateway) -> None:
    with _sdk(served) as client:
        audio = _wav(2.0)
        first = client.audio.transcriptions.create(model="whisper", file=("a.wav", audio))
        again = client.audio.transcriptions.create(model="whisper", file=("b.wav", audio),
                                                   language="en")  # fmt: skip
        other = client.audio.transcriptions.create(model="whisper", file=("c.wav", _wav(4.0)))
    assert first.text and first.text == again.text  # derived from the audio bytes
    assert other.text != first.text and len(other.text.split()) > len(first.text.split())


def test_transcription_refusals_are_in_openais_shape(served: Gateway) -> None:
    with _sdk(served) as client:
        _refusals(client)


def _refusals(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.audio.transcriptions.create(model="nope", file=("a.wav", _wav(0.1)))
    with pytest.raises(openai.BadRequestError, match="does not serve transcriptions"):
        client.audio.transcriptions.create(model="m", file=("a.wav", _wav(0.1)))
    with pytest.raises(openai.BadRequestError, match="verbose_json"):  # the backend's 400
        client.audio.transcriptions.create(model="whisper", file=("a.wav", _wav(0.1)),
                                           response_format="verbose_json")  # fmt: skip
    with pytest.raises(openai.APIStatusError) as too_big:
        client.audio.transcriptions.create(model="whisper", file=("a.wav", _wav(4.0, 16_000)))
    assert too_big.value.status_code == 413


def test_malformed_forms_are_refused_with_a_clear_400(served: Gateway) -> None:
    post = served.client.post
    no_file = post("/v1/audio/transcriptions", data={"model": "whisper"},
                   files={"other": ("x.bin", b"1")})  # fmt: skip
    assert _error(no_file, 400)["param"] == "file"
    no_model = post("/v1/audio/transcriptions", files={"file": ("a.wav", b"RIFF")})
    assert _error(no_model, 400)["param"] == "model"
    not_a_form = post("/v1/audio/transcriptions", json={"model": "whisper"})
    assert "multipart/form-data" in _error(not_a_form, 400)["message"]
    cut = post("/v1/audio/transcriptions", content=b"--abc\r\nContent-Disposition: form-d",
               headers={"content-type": "multipart/form-data; boundary=abc"})  # fmt: skip
    assert "malformed multipart" in _error(cut, 400)["message"]
    streamed = post("/v1/audio/transcriptions", data={"model": "whisper", "stream": "true"},
                    files={"file": ("a.wav", b"RIFF")})  # fmt: skip
    assert _error(streamed, 400)["param"] == "stream"


@pytest.mark.parametrize("path", ["/v1/rerank", "/v1/score"])
def test_json_pass_through_refusals(served: Gateway, path: str) -> None:
    post = served.client.post
    assert _error(post(path, content=b"{not json"), 400)["type"] == "invalid_request_error"
    assert _error(post(path, json={"query": "q"}), 400)["param"] == "model"
    assert _error(post(path, json={"model": "nope", "query": "q"}), 404)["param"] == "model"
    refused = _error(post(path, json={"model": "m", "query": "q", "documents": ["d"]}), 400)
    assert "does not serve" in refused["message"]
    big = {"model": "ranker", "query": "q", "documents": ["x" * 100_000]}
    assert _error(post(path, json=big), 413)["type"] == "invalid_request_error"
