"""The gateway's errors and its one error handler: any exception becomes OpenAI's error shape.

The root and the branches backends raise live in ``switchyard.backends.errors`` (marked ``[b]``;
backends may not import ``gateway``); the errors only the gateway raises live here. The tree::

    SwitchyardError [b]                 500 internal_error
    ├── InvalidRequestError             400 invalid_request_error
    │   ├── MalformedJSONError          400 (body is not JSON)
    │   ├── PayloadTooLargeError        413 (body over server.max_body_bytes)
    │   ├── MethodNotAllowedError       405 (a known route, another method)
    │   └── ConflictError               409 conflict (admin: not applicable to it as it is)
    ├── AuthenticationError             401 (API keys and the admin key)
    ├── PermissionDeniedError           403 (API keys and the admin key)
    ├── NotFoundError                   404
    │   └── ModelNotFoundError          404 model_not_found
    ├── RateLimitError [b]              429 (rate limits, with Retry-After)
    │   ├── BudgetExceededError         429 insufficient_quota (spend budget used up)
    │   └── OverloadedError [b]         429 model_overloaded (load shed, with Retry-After)
    ├── StateStoreUnavailableError      503 (Redis down and limits fail closed)
    ├── RequestTimeoutError             408 (no whole request head in time; HTTP server)
    ├── TooManyConnectionsError         503 (server.max_connections reached; HTTP server)
    └── UpstreamError [b]               502 upstream_error (bad status, broken connection)
        ├── UpstreamTimeoutError [b]    504 (connect, first byte or read timeout)
        ├── UpstreamStatusError [b]     502, or 429 (the backend answered 429 or 5xx)
        ├── UpstreamConnectError [b]    502 upstream_unavailable (unreachable, closed early)
        └── NoHealthyEndpointError [b]  503 (every endpoint ejected or none answered)

Framework errors (unknown route, wrong method, FastAPI validation) and unexpected exceptions
are mapped onto it here (``as_switchyard_error``), so every error response looks the same.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from switchyard.backends.errors import (
    NoHealthyEndpointError,
    OverloadedError,
    RateLimitError,
    SwitchyardError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)

log = logging.getLogger("switchyard.gateway")


class InvalidRequestError(SwitchyardError):
    status = 400
    type = "invalid_request_error"


class MalformedJSONError(InvalidRequestError):
    code = "invalid_json"


class PayloadTooLargeError(InvalidRequestError):
    status = 413
    code = "request_too_large"


class MethodNotAllowedError(InvalidRequestError):
    status = 405
    code = "method_not_allowed"


class ConflictError(InvalidRequestError):
    """The request is valid but cannot be applied to the resource as it is (409)."""

    status = 409
    code = "conflict"


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


class BudgetExceededError(RateLimitError):
    type = "insufficient_quota"
    code = "budget_exceeded"


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


def as_switchyard_error(exc: Exception) -> SwitchyardError:
    """Map any exception onto the tree; unknown ones become a 500 (and are logged)."""
    if isinstance(exc, SwitchyardError):
        return exc
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return InvalidRequestError(f"invalid request: {first.get('msg', exc)}", param=param)
    if isinstance(exc, StarletteHTTPException):
        if exc.status_code == 404:
            return NotFoundError(f"no such route: {exc.detail}")
        if exc.status_code == 405:
            return MethodNotAllowedError("method not allowed on this route")
        err = InvalidRequestError(str(exc.detail))
        err.status = exc.status_code
        return err
    log.exception("unhandled error: %s", exc)
    return SwitchyardError("internal error in the gateway; see its log")


def log_error(err: SwitchyardError, method: str, path: str, request_id: str) -> None:
    """Server-side failures are logged (a client's own mistakes are not)."""
    if err.status >= 500:
        log.warning(
            "%s %s -> %d %s (request %s)", method, path, err.status, err.message, request_id
        )


async def handle_error(request: Request, exc: Exception) -> Response:
    err = as_switchyard_error(exc)
    rid = request.scope.get("state", {}).get("request_id", "-")
    log_error(err, request.method, request.url.path, rid)
    return error_response(err)


def error_response(err: SwitchyardError) -> Response:
    return Response(
        err.to_json(), status_code=err.status, media_type="application/json", headers=err.headers
    )


def error_head(err: SwitchyardError, body: bytes) -> list[tuple[bytes, bytes]]:
    """The response headers of an error rendered outside FastAPI (the raw proxied routes)."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in err.headers.items()]
    return headers


def install_error_handlers(app: FastAPI) -> None:
    for kind in (SwitchyardError, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(kind, handle_error)


__all__ = [
    "AuthenticationError",
    "BudgetExceededError",
    "ConflictError",
    "InvalidRequestError",
    "MalformedJSONError",
    "MethodNotAllowedError",
    "ModelNotFoundError",
    "NoHealthyEndpointError",
    "NotFoundError",
    "OverloadedError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTimeoutError",
    "StateStoreUnavailableError",
    "SwitchyardError",
    "TooManyConnectionsError",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamStatusError",
    "UpstreamTimeoutError",
    "as_switchyard_error",
    "error_head",
    "error_response",
    "install_error_handlers",
    "log_error",
]
