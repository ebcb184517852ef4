"""``multipart/form-data`` bodies, scanned without copying: where each part's value lies.

Both ends of a proxied transcription read such forms. The gateway needs only the ``model``
field (and that a ``file`` part is there) and sends the body on as it came; the simulator
reads every field. A scan records offsets into the body, so a 20 MB audio file is never
copied by it; ``bytes.find`` does the searching at C speed.

The grammar is RFC 7578 over RFC 2046: an optional preamble, ``--boundary`` lines between
the parts, each part a few headers (``Content-Disposition: form-data; name="..."``, optionally
``filename``), a blank line and the value, and ``--boundary--`` at the end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Form", "FormError", "Part", "boundary_of", "parse_form"]

_PARAM = re.compile(r';\s*([A-Za-z0-9_*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')
_BOUNDARY = re.compile(rb"[0-9A-Za-z'()+_,./:=? -]{1,70}")
MAX_HEADER_BYTES = 8192  # one part's headers; more is not a form a client sends


class FormError(ValueError):
    """The body is not a well-formed ``multipart/form-data`` form (the message says why)."""


@dataclass(frozen=True, slots=True)
class Part:
    """One form field: its name, its filename when it is a file, and ``body[start:end]``."""

    name: str
    filename: str | None
    content_type: str | None
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Form:
    """A scanned form: its ``Content-Type`` (with the boundary) and its parts, in order."""

    content_type: str
    parts: tuple[Part, ...]

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """The request header that sends this form on (its boundary with it)."""
        return (("content-type", self.content_type),)

    def field(self, name: str) -> Part | None:
        """The first part called ``name``."""
        return next((p for p in self.parts if p.name == name), None)

    def text(self, body: bytes, name: str) -> str | None:
        """The value of the text field ``name`` (None when absent or not UTF-8)."""
        part = self.field(name)
        if part is None:
            return None
        try:
            return body[part.start : part.end].decode()
        except UnicodeDecodeError:
            return None

    def replaced(self, body: bytes, name: str, value: str) -> bytes:
        """``body`` with field ``name``'s value replaced (the one copy a change needs)."""
        part = self.field(name)
        if part is None:
            raise KeyError(name)
        return body[: part.start] + value.encode() + body[part.end :]


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/form-data`` content type; ``FormError`` otherwise."""
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        raise FormError(f"expected a multipart/form-data body, got {kind.strip() or 'none'!r}")
    for name, value in _PARAM.findall(";" + params):
        if name.lower() == "boundary":
            boundary: str = value[1:-1] if value.startswith('"') else value
            raw = boundary.encode("latin-1", "replace")
            if not _BOUNDARY.fullmatch(raw) or raw.endswith(b" "):
                raise FormError("the multipart boundary is not a valid boundary")
            return raw
    raise FormError("the multipart/form-data content type names no boundary")


def parse_form(body: bytes, content_type: str) -> Form:
    """Scan ``body`` as the form ``content_type`` announces; ``FormError`` if it is not one."""
    return Form(content_type, tuple(_scan(body, boundary_of(content_type))))


def _scan(body: bytes, boundary: bytes) -> list[Part]:
    dash = b"--" + boundary
    pos = 0 if body.startswith(dash) else body.find(b"\r\n" + dash)
    if pos < 0:
        raise FormError("the body does not start with the form's boundary")
    if pos:  # a preamble before the first boundary, as RFC 2046 allows
        pos += 2
    delimiter = b"\r\n" + dash
    pos += len(dash)
    parts: list[Part] = []
    while True:
        if body.startswith(b"--", pos):  # the closing delimiter
            if not parts:
                raise FormError("the form has no parts")
            return parts
        eol = body.find(b"\r\n", pos)
        if eol < 0 or body[pos:eol].strip(b" \t"):
            raise FormError("a boundary line is malformed")
        end_of_head = body.find(b"\r\n\r\n", eol, eol + MAX_HEADER_BYTES)
        if end_of_head < 0:
            raise FormError("a part's headers do not end with a blank line")
        start = end_of_head + 4
        end = body.find(delimiter, start)
        if end < 0:
            raise FormError("the form's closing boundary is missing")
        parts.append(_part(body[eol + 2 : end_of_head], start, end))
        pos = end + len(delimiter)


def _part(head: bytes, start: int, end: int) -> Part:
    disposition = content_type = None
    for line in head.decode("utf-8", "replace").split("\r\n"):
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "content-disposition":
            disposition = value.strip()
        elif key == "content-type":
            content_type = value.strip()
    if disposition is None or not disposition.lower().startswith("form-data"):
        raise FormError("a part has no 'Content-Disposition: form-data' header")
    params = {k.lower(): _unquote(v) for k, v in _PARAM.findall(disposition[9:])}
    name = params.get("name")
    if not name:
        raise FormError("a part has no name")
    return Part(name, params.get("filename"), content_type, start, end)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value
