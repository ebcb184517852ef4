"""Reading the pass-through routes' bodies: ``/v1/rerank``, ``/v1/score`` and
``/v1/audio/transcriptions``.

These go to models that list the matching capability, through ``Proxy.serve`` like
embeddings: the same authentication, admission, dispatch with retries and breakers, metrics
and error shape; never routed (a router's name answers 400), never streamed. The gateway reads
only what it acts on — the ``model`` — and sends the body on as it came, so every field vLLM
understands (``top_n``, ``truncate_prompt_tokens``, ``language``, ...) reaches it untouched
and the backend judges the rest.

Rerank and score are JSON objects. A transcription is a ``multipart/form-data`` form: it is
scanned in place (``switchyard.backends.multipart``) for its ``model`` field and its ``file``
part, and forwarded with the client's own ``Content-Type`` (its boundary); the size limit is
``server.max_body_bytes``, as for every body.
"""

from __future__ import annotations

from switchyard.backends.multipart import FormError, parse_form
from switchyard.gateway.apis import read_object
from switchyard.gateway.errors import InvalidRequestError
from switchyard.gateway.payload import Payload
from switchyard.gateway.settings import Capability

__all__ = ["PASSTHROUGH", "parse_passthrough"]

PASSTHROUGH = frozenset({Capability.rerank, Capability.score, Capability.transcriptions})


def parse_passthrough(
    raw: bytes, headers: list[tuple[bytes, bytes]], capability: Capability
) -> Payload:
    """The payload of a pass-through request; the gateway's 400s when it has no model."""
    if capability is Capability.transcriptions:
        return _form_payload(raw, _content_type(headers))
    data, _ = read_object(raw)
    if data.get("stream"):
        raise InvalidRequestError(f"{capability.value} cannot be streamed", param="stream")
    return Payload(raw, data, data["model"], False, False)


def _form_payload(raw: bytes, content_type: str) -> Payload:
    try:
        form = parse_form(raw, content_type)
    except FormError as err:
        raise InvalidRequestError(f"malformed multipart/form-data body: {err}") from None
    file = form.field("file")
    if file is None or file.filename is None:
        raise InvalidRequestError("'file' is required and must be a file upload", param="file")
    model = form.text(raw, "model")
    if not model:
        raise InvalidRequestError("'model' is required and must be a string", param="model")
    if (form.text(raw, "stream") or "").strip().lower() in ("true", "1"):
        raise InvalidRequestError(
            "streamed transcriptions are not served by the gateway; leave 'stream' unset",
            param="stream",
        )
    # Only the model in ``data``: the form's other fields (response_format, ...) are the
    # backend's, and the gateway's checks on a JSON body must not read them as its own.
    return Payload(raw, {"model": model}, model, False, False, form)


def _content_type(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"content-type":
            return value.decode("latin-1")
    return ""
