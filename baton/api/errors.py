"""One error shape for every failure: ``{"error": {"code", "message", "field"?}}``.

FastAPI's own errors (validation 422, unknown route 404, wrong method 405) are rewritten to
this shape too, so a client parses one thing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

# Codes for plain HTTP errors raised by the framework (no route, wrong method, ...).
STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    503: "unavailable",
}


class ErrorBody(BaseModel):
    """What went wrong; ``field`` names the offending field (dotted path) when there is one."""

    code: str
    message: str
    field: str | None = None
    details: list[str] | None = None


class ErrorResponse(BaseModel):
    """Every error response."""

    error: ErrorBody


class ApiError(Exception):
    """An error to answer with ``status`` and the error shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        details: Sequence[str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.details = list(details) if details else None
        self.headers = dict(headers or {})


def not_found(what: str) -> ApiError:
    """404 for something missing or belonging to another organization (same answer)."""
    return ApiError(404, "not_found", f"no {what}")


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    details: list[str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    if details:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=dict(headers or {}))


def _dotted(loc: Sequence[Any]) -> str:
    # ("body", "inputs", "name") -> "inputs.name"; ("query", "limit") -> "limit".
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path", "header") else list(loc)
    return ".".join(str(p) for p in parts) or "body"


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(
        exc.status,
        exc.code,
        exc.message,
        field=exc.field,
        details=exc.details,
        headers=exc.headers,
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    field = _dotted(first.get("loc", ()))
    details = [f"{_dotted(e.get('loc', ()))}: {e.get('msg', '')}" for e in errors]
    return error_response(
        422, "invalid", f"{field}: {first.get('msg', 'invalid')}", field=field, details=details
    )


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return error_response(exc.status_code, code, message, headers=exc.headers)


# How long a client is told to wait when a store is unreachable (a restart takes seconds).
RETRY_AFTER_SECONDS = 5


async def _store_unreachable(_request: Request, exc: Exception) -> JSONResponse:
    # A database that is down (connection refused or dropped) is a passing state, not a bug:
    # 503 with Retry-After tells clients and load balancers to try again; the log keeps why.
    log.warning("the database is unreachable: %s", type(exc).__name__)
    return error_response(
        503,
        "unavailable",
        "the database is unreachable; try again shortly",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    # The message may hold anything (a URL with a password); the log keeps it, not the client.
    log.exception("unexpected error in the API", exc_info=exc)
    return error_response(500, "internal", "internal error; see the API's log")


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error with the one shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _store_unreachable)
    app.add_exception_handler(InterfaceError, _store_unreachable)
    app.add_exception_handler(Exception, _unexpected)


# For routes' ``responses=``: the error statuses documented in the OpenAPI spec.
def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for ``statuses``, all with the error shape."""
    return {
        s: {"model": ErrorResponse, "description": STATUS_CODES.get(s, "error")} for s in statuses
    }
