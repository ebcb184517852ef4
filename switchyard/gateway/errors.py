"""The gateway's one error handler: any exception becomes OpenAI's error shape.

The tree itself lives in ``switchyard.backends.errors`` (backends raise it too; see the drawing
there).
Framework errors (unknown route, wrong method, FastAPI validation) and unexpected exceptions
are mapped onto it here, so every error response looks the same.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from switchyard.backends.errors import (
    AuthenticationError,
    InvalidRequestError,
    MalformedJSONError,
    ModelNotFoundError,
    NoHealthyEndpointError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    SwitchyardError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)

log = logging.getLogger("switchyard.gateway")


class MethodNotAllowedError(InvalidRequestError):
    status = 405
    code = "method_not_allowed"


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
    "InvalidRequestError",
    "MalformedJSONError",
    "MethodNotAllowedError",
    "ModelNotFoundError",
    "NoHealthyEndpointError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "SwitchyardError",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamStatusError",
    "UpstreamTimeoutError",
    "error_head",
    "error_response",
    "install_error_handlers",
    "log_error",
]
