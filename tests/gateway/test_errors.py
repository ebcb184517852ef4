"""Bad input gets a clear error in OpenAI's shape, and every response carries a request id."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from tests.support.gateways import Gateway, Simulator, model_entry

CHAT = "/v1/chat/completions"
OK_BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert response.headers["content-type"] == "application/json"
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize(
    ("content", "code", "param"),
    [
        (b'{"model": "m", "messages": [', "invalid_json", None),
        (b"", "invalid_json", None),
        (b'"just a string"', None, None),
        (b'{"model": "m", "messages": "hi"}', None, "messages"),
        (b'{"model": "m", "messages": [{"role": "user"}], "stream": 1}', None, "stream"),
    ],
)
def test_malformed_or_invalid_bodies_get_400(
    sim_gateway: tuple[Simulator, Gateway], content: bytes, code: str | None, param: str | None
) -> None:
    _, gw = sim_gateway
    response = gw.client.post(CHAT, content=content)
    assert response.status_code == 400
    error = error_of(response)
    assert error["type"] == "invalid_request_error"
    assert (error["code"], error["param"]) == (code, param)


def test_unknown_model_is_404_that_the_sdk_understands(
    sim_gateway: tuple[Simulator, Gateway],
) -> None:
    _, gw = sim_gateway
    client = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "model_not_found"
    assert "gpt-9" in info.value.message


def test_oversized_bodies_get_413_whether_sized_or_chunked(
    simulator: Callable[..., Simulator], gateway: Callable[..., Gateway]
) -> None:
    gw = gateway([model_entry("m", simulator().base_url)], server={"max_body_bytes": 1000})
    big = b'{"model": "m", "messages": [{"role": "user", "content": "' + b"x" * 2000 + b'"}]}'
    sized = gw.client.post(CHAT, content=big)
    assert sized.status_code == 413
    assert error_of(sized)["code"] == "request_too_large"

    def chunks() -> Iterator[bytes]:  # no content-length: the limit is counted while reading
        yield from (big[i : i + 100] for i in range(0, len(big), 100))

    chunked = gw.client.post(CHAT, content=chunks())
    assert chunked.status_code == 413
    assert gw.client.post(CHAT, json=OK_BODY).status_code == 200  # the gateway is fine


def test_unknown_route_and_wrong_method_use_the_same_error_shape(
    sim_gateway: tuple[Simulator, Gateway],
) -> None:
    _, gw = sim_gateway
    missing = gw.client.get("/v1/nothing-here")
    assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"
    wrong = gw.client.get(CHAT)
    assert wrong.status_code == 405 and error_of(wrong)["code"] == "method_not_allowed"


def test_backend_client_errors_are_passed_through_as_they_came(
    sim_gateway: tuple[Simulator, Gateway],
) -> None:
    sim, gw = sim_gateway
    body = {**OK_BODY, "max_tokens": 10**9}  # over the backend's context length
    via = gw.client.post(CHAT, json=body)
    direct = gw.client.post(f"{sim.base_url}/chat/completions", json=body)
    assert via.status_code == direct.status_code == 400
    assert via.json() == direct.json()


def test_every_response_carries_a_request_id(sim_gateway: tuple[Simulator, Gateway]) -> None:
    _, gw = sim_gateway
    responses = [
        gw.client.post(CHAT, json=OK_BODY),
        gw.client.post(CHAT, content=b"{"),
        gw.client.post(CHAT, json={**OK_BODY, "stream": True}),
        gw.client.get("/v1/models"),
        gw.client.get("/nope"),
        gw.client.get("/metrics"),
    ]
    ids = [r.headers.get("x-request-id") for r in responses]
    assert all(ids) and len(set(ids)) == len(ids)


def test_a_sane_caller_request_id_is_kept_and_a_bad_one_replaced(
    sim_gateway: tuple[Simulator, Gateway],
) -> None:
    _, gw = sim_gateway
    kept = gw.client.post(CHAT, json=OK_BODY, headers={"x-request-id": "trace-42.a"})
    assert kept.headers["x-request-id"] == "trace-42.a"
    replaced = gw.client.post(CHAT, json=OK_BODY, headers={"x-request-id": "bad id\twith tab"})
    assert replaced.headers["x-request-id"] not in ("", "bad id\twith tab")
