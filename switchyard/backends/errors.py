"""The error tree shared by the gateway and its backends.

Everything Switchyard raises on purpose is a ``SwitchyardError``; the gateway renders it in
OpenAI's error shape with one handler. The root lives here, not in ``gateway``, because
backends raise it and nothing may import ``gateway``::

    SwitchyardError                     500 internal_error
    ├── InvalidRequestError             400 invalid_request_error
    │   ├── MalformedJSONError          400 (body is not JSON)
    │   └── PayloadTooLargeError        413 (body over server.max_body_bytes)
    ├── AuthenticationError             401 (reserved for API keys)
    ├── PermissionDeniedError           403 (reserved for API keys)
    ├── NotFoundError                   404
    │   └── ModelNotFoundError          404 model_not_found
    ├── RateLimitError                  429 (rate limits, with Retry-After)
    │   ├── BudgetExceededError         429 insufficient_quota (spend budget used up)
    │   └── OverloadedError             429 model_overloaded (load shed, with Retry-After)
    ├── StateStoreUnavailableError      503 (Redis down and limits fail closed)
    ├── RequestTimeoutError             408 (no whole request head in time; HTTP server)
    ├── TooManyConnectionsError         503 (server.max_connections reached; HTTP server)
    └── UpstreamError                   502 upstream_error (bad status, broken connection)
        ├── UpstreamTimeoutError        504 (connect, first byte or read timeout)
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


class InvalidRequestError(SwitchyardError):
    status = 400
    type = "invalid_request_error"


class MalformedJSONError(InvalidRequestError):
    code = "invalid_json"


class PayloadTooLargeError(InvalidRequestError):
    status = 413
    code = "request_too_large"


class AuthenticationError(SwitchyardError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDeniedError(SwitchyardError):
    status = 403
    type = "permission_error"


class NotFoundError(SwitchyardError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"


class RateLimitError(SwitchyardError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class BudgetExceededError(RateLimitError):
    type = "insufficient_quota"
    code = "budget_exceeded"


class OverloadedError(RateLimitError):
    """Every replica that could serve the request is saturated (or paused by its own
    ``Retry-After``): shed now, with a ``Retry-After``, rather than queue without bound."""

    code = "model_overloaded"

    def __init__(self, message: str, retry_after_s: float, *, param: str | None = None) -> None:
        seconds = max(1, min(int(retry_after_s + 0.999), 60))
        super().__init__(message, param=param, headers={"retry-after": str(seconds)})
        self.retry_after_s = seconds


class StateStoreUnavailableError(SwitchyardError):
    status = 503
    type = "service_unavailable"
    code = "state_store_unavailable"


class RequestTimeoutError(SwitchyardError):
    """The client did not send a whole request head in time (the HTTP server closes it)."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class TooManyConnectionsError(SwitchyardError):
    """The HTTP server holds as many client connections as it may (``server.max_connections``)."""

    status = 503
    type = "service_unavailable"
    code = "too_many_connections"


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
