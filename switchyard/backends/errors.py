"""The root of Switchyard's error tree, and the errors backends raise.

Everything Switchyard raises on purpose is a ``SwitchyardError``; the gateway renders it in
OpenAI's error shape with one handler. The root and the branches backends raise live here,
not in ``gateway``, because nothing in ``backends`` may import ``gateway``; the errors only the
gateway raises live in ``switchyard.gateway.errors``, which draws the whole tree. This part::

    SwitchyardError                     500 internal_error
    ├── RateLimitError                  429 (rate limits, with Retry-After)
    │   └── OverloadedError             429 model_overloaded (load shed, with Retry-After)
    └── UpstreamError                   502 upstream_error (bad status, broken connection)
        ├── UpstreamTimeoutError        504 (connect, first byte or read timeout)
        ├── UpstreamStatusError         502, or 429 (the backend answered 429 or 5xx)
        ├── UpstreamConnectError        502 upstream_unavailable (unreachable, closed early)
        └── NoHealthyEndpointError      503 (every endpoint ejected or none answered)

Foreign exceptions (aiohttp, asyncio timeouts) are translated into this tree where they are
caught: in ``switchyard.backends.client`` for upstream calls.
"""

from __future__ import annotations

from typing import Any

import orjson


class SwitchyardError(Exception):
    """Base of every error Switchyard renders to a client."""

    status: int = 500
    type: str = "internal_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def to_dict(self) -> dict[str, Any]:
        """OpenAI's error object: ``{"error": {"message", "type", "param", "code"}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


class RateLimitError(SwitchyardError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class OverloadedError(RateLimitError):
    """Every replica that could serve the request is saturated (or paused by its own
    ``Retry-After``): shed now, with a ``Retry-After``, rather than queue without bound."""

    code = "model_overloaded"

    def __init__(self, message: str, retry_after_s: float, *, param: str | None = None) -> None:
        seconds = max(1, min(int(retry_after_s + 0.999), 60))
        super().__init__(message, param=param, headers={"retry-after": str(seconds)})
        self.retry_after_s = seconds


class UpstreamError(SwitchyardError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"


class UpstreamTimeoutError(UpstreamError):
    status = 504
    code = "upstream_timeout"


class NoHealthyEndpointError(UpstreamError):
    status = 503
    code = "no_healthy_endpoint"


class UpstreamStatusError(UpstreamError):
    """The backend answered 429 or 5xx; retried on another endpoint before the first byte."""

    def __init__(self, upstream_status: int, body: bytes, retry_after: str | None = None) -> None:
        detail = body[:300].decode("utf-8", "replace").strip()
        super().__init__(
            f"upstream returned HTTP {upstream_status}: {detail}",
            code="upstream_rate_limited" if upstream_status == 429 else "upstream_error",
            headers={"retry-after": retry_after} if retry_after else None,
        )
        self.upstream_status = upstream_status
        self.body = body
        if upstream_status == 429:
            self.status = 429
            self.type = "rate_limit_error"


class UpstreamConnectError(UpstreamError):
    """The backend could not be reached or closed the connection before answering."""

    code = "upstream_unavailable"
