"""The API's errors: `ApiError`, the structured body every 4xx/5xx carries
(`{"error": {"code", "message", "field"?}}`), the error responses the routes document, and the
exception handlers (`EXCEPTION_HANDLERS`) that keep every error structured, never a bare 500."""

import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from fournil.api.schemas import ErrorBody

log = logging.getLogger("fournil.api")


def describe(exc: BaseException) -> str:
    """An exception on one line, for logs and metrics labels, never for a response body."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if field:
        body["error"]["field"] = field
    return JSONResponse(body, status_code=status, headers=headers)


_MEANING = {
    400: "malformed request body (not JSON)",
    401: "missing, invalid or revoked API key",
    403: "the key lacks the scope",
    404: "unknown store, product or series",
    413: "request body too large",
    422: "invalid input (the field is named)",
    429: "rate limit for this key (see Retry-After)",
    503: "warehouse unavailable (see Retry-After)",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: these error statuses, with the structured body."""
    return {code: {"model": ErrorBody, "description": _MEANING[code]} for code in codes}


DATA_ERRORS = (401, 403, 404, 413, 422, 429, 503)


async def api_error(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)


async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    field = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
    return error_response(422, "invalid_input", str(first.get("msg")), field or None)


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {413: "too_large", 404: "not_found", 405: "method_not_allowed", 408: "request_timeout"}
    return error_response(
        exc.status_code,
        code.get(exc.status_code, "http_error"),
        str(exc.detail),
        None,
        dict(exc.headers or {}),
    )


async def db_error(request: Request, exc: SQLAlchemyError) -> JSONResponse:
    log.warning("database error: %s", describe(exc))
    return error_response(
        503,
        "warehouse_unavailable",
        "the warehouse is unavailable, retry later",
        headers={"Retry-After": "5"},
    )


EXCEPTION_HANDLERS: dict[int | type[Exception], Any] = {
    ApiError: api_error,
    RequestValidationError: invalid,
    StarletteHTTPException: http_error,
    SQLAlchemyError: db_error,
}
