"""Scanning ``multipart/form-data`` bodies in place, as httpx (the ``openai`` SDK) writes them."""

from __future__ import annotations

import httpx
import pytest

from switchyard.backends.multipart import FormError, boundary_of, parse_form


def _encoded(files: dict[str, tuple[str, bytes]], **fields: str) -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://x", data=fields, files=files)
    return request.read(), request.headers["content-type"]


def test_a_scan_finds_each_field_and_file_by_offset() -> None:
    audio = b"RIFF\r\n--not-the-boundary\r\n" * 50
    body, content_type = _encoded({"file": ("a.wav", audio)}, model="whisper", language="en")
    form = parse_form(body, content_type)
    assert [p.name for p in form.parts] == ["model", "language", "file"]
    assert form.text(body, "model") == "whisper" and form.text(body, "nope") is None
    file = form.field("file")
    assert file is not None and file.filename == "a.wav"
    assert body[file.start : file.end] == audio


def test_replacing_a_field_changes_only_its_value() -> None:
    body, content_type = _encoded({"file": ("a.wav", b"\x00\x01")}, model="short")
    form = parse_form(body, content_type)
    renamed = form.replaced(body, "model", "a-much-longer-model-name")
    again = parse_form(renamed, content_type)
    assert again.text(renamed, "model") == "a-much-longer-model-name"
    assert renamed.replace(b"a-much-longer-model-name", b"short") == body


def test_the_boundary_is_read_quoted_or_not() -> None:
    assert boundary_of("multipart/form-data; boundary=abc") == b"abc"
    assert boundary_of('Multipart/Form-Data; charset=utf-8; boundary="a b:c"') == b"a b:c"


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("application/json", b"{}", "expected a multipart/form-data"),
        ("multipart/form-data", b"", "names no boundary"),
        ("multipart/form-data; boundary=" + "x" * 71, b"", "not a valid boundary"),
        ("multipart/form-data; boundary=b", b"hello", "does not start"),
        ("multipart/form-data; boundary=b", b"--b\r\nContent-Disposition: form-da", "blank line"),
        ("multipart/form-data; boundary=b", b"--b\r\n\r\nvalue\r\n--b--", "Content-Disposition"),
        ("multipart/form-data; boundary=b",
         b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nvalue', "closing boundary"),
        ("multipart/form-data; boundary=b", b"--b--\r\n", "no parts"),
    ],
)  # fmt: skip
def test_a_malformed_form_says_what_is_wrong(content_type: str, body: bytes, reason: str) -> None:
    with pytest.raises(FormError, match=reason):
        parse_form(body, content_type)
