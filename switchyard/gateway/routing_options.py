"""Per-request routing options: the body's ``switchyard`` object (the OpenAI SDK's
``extra_body``), else ``X-Switchyard-*`` headers; malformed ones are a 400."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from switchyard.gateway.constraints import REQUIRE, Needs, needs_of
from switchyard.gateway.errors import InvalidRequestError
from switchyard.gateway.payload import Payload, routed_payload

OPTIONS_FIELD = "switchyard"
CACHE = "cache"  # switchyard.gateway.cache; require: switchyard.gateway.constraints
_HEADERS = {
    "cost_weight": "x-switchyard-cost-weight",
    "models": "x-switchyard-models",
    "max_price_per_mtok": "x-switchyard-max-price",
    "latency_weight": "x-switchyard-latency-weight",
    "max_ttft_ms": "x-switchyard-max-ttft-ms",
}


@dataclass(frozen=True, slots=True)
class RoutingOptions:
    """What one caller asks of the router: a cost weight, a subset of models, a price cap,
    a latency weight (quality points per second of expected wait) and a latency target."""

    cost_weight: float | None = None
    models: tuple[str, ...] | None = None
    max_price_per_mtok: float | None = None
    latency_weight: float | None = None
    max_ttft_ms: float | None = None


NO_OPTIONS = RoutingOptions()  # a request that asks for nothing
_PREFIX = b"x-switchyard-"


def _number(value: Any, name: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequestError(f"'{name}' must be a finite number ≥ 0", param=name)
    if value < 0:
        raise InvalidRequestError(f"'{name}' must be a finite number ≥ 0", param=name)
    return float(value)


def _models(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [m.strip() for m in value.split(",") if m.strip()]
    if not (isinstance(value, list) and value and all(isinstance(m, str) for m in value)):
        raise InvalidRequestError(
            "'models' must be a non-empty list of model names", param="models"
        )
    return tuple(value)


def option_headers(raw: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    """A request's ``X-Switchyard-*`` headers, by lower-case name (ASGI gives names in lower
    case): one pass over the headers, and usually empty."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in raw if k.startswith(_PREFIX)}


def parse_options(data: Mapping[str, Any], headers: Mapping[str, str]) -> RoutingOptions:
    """Options from the body's ``switchyard`` object, else from ``X-Switchyard-*`` headers
    (``headers``: by lower-case name, as :func:`option_headers` gives them)."""
    given = data.get(OPTIONS_FIELD)
    if given is None:
        if not headers:
            return NO_OPTIONS
        given = {}
    if not isinstance(given, dict):
        raise InvalidRequestError(f"'{OPTIONS_FIELD}' must be an object", param=OPTIONS_FIELD)
    unknown = set(given) - set(_HEADERS) - {REQUIRE, CACHE}
    if unknown:
        raise InvalidRequestError(
            f"unknown '{OPTIONS_FIELD}' field(s): {', '.join(sorted(unknown))}",
            param=OPTIONS_FIELD,
        )
    raw = {k: given[k] if k in given else headers.get(h) for k, h in _HEADERS.items()}
    models = raw.pop("models")
    numbers = {k: None if v is None else _number(v, k) for k, v in raw.items()}
    return RoutingOptions(models=None if models is None else _models(models), **numbers)


def concrete_needs(payload: Payload) -> tuple[Needs | None, Payload, float | None]:
    """What a request to a concrete model needs of it, its payload without the routing
    options (they mean nothing to a backend), and its TTFT target in seconds (the
    ``switchyard`` object's ``max_ttft_ms``, for replica choice)."""
    needs = needs_of(payload.data, images=False)
    ttft_s = None
    if OPTIONS_FIELD in payload.data:
        given = payload.data[OPTIONS_FIELD]
        if isinstance(given, dict) and given.get("max_ttft_ms") is not None:
            ttft_s = _number(given["max_ttft_ms"], "max_ttft_ms") / 1e3
        payload = routed_payload(payload, payload.model, OPTIONS_FIELD)
    return needs, payload, ttft_s
