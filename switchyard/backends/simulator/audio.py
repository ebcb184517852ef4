"""``POST /v1/audio/transcriptions``: a speech-to-text model, simulated as vLLM serves it.

The request is OpenAI's multipart form (``file``, ``model``, ``language``, ``prompt``,
``response_format``, ...). The transcript is deterministic: words drawn by a generator seeded
with (server seed, a hash of the audio bytes), as many as a speaker says in the audio's
duration (read from a WAV header, else estimated from the size at 16 kB/s). Answers and checks
follow vLLM's ``OpenAIServingTranscription``: ``{"text", "usage": {"type": "duration",
"seconds"}}`` in JSON for ``json`` and ``text`` alike, 400 for ``srt``/``vtt`` and for
``verbose_json`` (which Whisper-class models in vLLM do not produce), 422 when ``file`` is a
plain field rather than an upload. Streaming (``stream=true``) is not simulated: 400.

The simulator's handlers get the body but not the headers, so the form's boundary is read
from its first line; clients (the ``openai`` SDK, httpx, curl) send no preamble.
"""

from __future__ import annotations

import hashlib
import math
import random

import orjson

from switchyard.backends.multipart import Form, FormError, parse_form
from switchyard.backends.simulator.protocol import ApiError
from switchyard.backends.simulator.text import WORDS

WORDS_PER_SECOND = 2.5  # conversational speech
BYTES_PER_SECOND = 16_000  # size-based duration when the file is not a WAV
MAX_WORDS = 448  # Whisper's decoder limit, roughly


class TranscriptionHandler:
    """Answers transcription requests for one simulated server."""

    def __init__(self, model: str, seed: int) -> None:
        self._model = model
        self._seed = seed

    def respond(self, raw: bytes) -> bytes:
        form = _form(raw)
        file = form.field("file")
        if file is None:
            raise ApiError(400, "file: Field required", param="file")
        if file.filename is None:
            raise ApiError(422, "Expected 'file' to be a file-like object, not 'str'.",
                           param="file")  # fmt: skip
        model = form.text(raw, "model")
        if model and model != self._model:
            raise ApiError(404, f"The model `{model}` does not exist.", param="model",
                           code="model_not_found")  # fmt: skip
        fmt = form.text(raw, "response_format") or "json"
        if fmt == "verbose_json":
            raise ApiError(400, f"Currently do not support verbose_json for {model}")
        if fmt not in ("json", "text"):
            raise ApiError(
                400, "Currently only support response_format: `text`, `json` or `verbose_json`"
            )
        if (form.text(raw, "stream") or "false").lower() not in ("false", "0"):
            raise ApiError(400, "streamed transcriptions are not simulated", param="stream")
        audio = raw[file.start : file.end]
        seconds = _duration(audio)
        text = self._transcript(audio, seconds)
        usage = {"type": "duration", "seconds": max(math.ceil(seconds), 1)}
        return orjson.dumps({"text": text, "usage": usage})

    def _transcript(self, audio: bytes, seconds: float) -> str:
        rng = random.Random(f"{self._seed}:audio:{hashlib.sha256(audio).hexdigest()}")
        count = min(max(round(seconds * WORDS_PER_SECOND), 1), MAX_WORDS)
        words = [rng.choice(WORDS) for _ in range(count)]
        return " ".join(words).capitalize() + "."


def _form(raw: bytes) -> Form:
    eol = raw.find(b"\r\n")
    if not raw.startswith(b"--") or eol < 3:
        raise ApiError(400, "file: Field required (expected a multipart/form-data body)",
                       param="file")  # fmt: skip
    boundary = raw[2:eol].rstrip(b" \t").decode("latin-1")
    try:
        return parse_form(raw, f'multipart/form-data; boundary="{boundary}"')
    except FormError as err:
        raise ApiError(400, f"malformed multipart/form-data body: {err}") from None


def _duration(audio: bytes) -> float:
    """Seconds of audio: from a PCM WAV header's byte rate, else from the size."""
    if len(audio) >= 44 and audio[:4] == b"RIFF" and audio[8:12] == b"WAVE":
        byte_rate = int.from_bytes(audio[28:32], "little")
        if byte_rate > 0:
            return (len(audio) - 44) / byte_rate
    return len(audio) / BYTES_PER_SECOND
