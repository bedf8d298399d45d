"""One JSON error shape for every 4xx and 5xx answer, as OpenAI-compatible servers send it:
``{"error": {"message": "...", "type": "invalid_request_error", "code": "..."}}``."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
               403: "permission_error", 404: "not_found_error", 405: "invalid_request_error",
               408: "timeout_error", 413: "invalid_request_error",
               415: "invalid_request_error", 422: "invalid_request_error",
               429: "rate_limit_error", 503: "overloaded_error", 504: "timeout_error"}


class ApiError(Exception):
    """An answer other than 200: the status, a message saying why (and the limit), a code."""

    def __init__(self, status: int, message: str, code: str | None = None,
                 headers: dict[str, str] | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers, self.param = headers or {}, param


def error_body(status: int, message: str, code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    etype = ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": etype, "param": param, "code": code}}


def error_response(status: int, message: str, code: str | None = None,
                   headers: dict[str, str] | None = None,
                   param: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, code, param), status_code=status,
                        headers=headers)


def error_bytes(status: int, message: str, code: str | None = None) -> bytes:
    """The error body as bytes, for ASGI middleware that answers before the app runs."""
    return json.dumps(error_body(status, message, code)).encode()


def validation_message(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    """A readable message from pydantic errors, plus the first offending parameter."""
    parts, param = [], None
    for e in errors:
        if e.get("type") == "json_invalid":
            reason = (e.get("ctx") or {}).get("error", "")
            parts.append(f"the body is not valid JSON ({reason})" if reason else
                         "the body is not valid JSON")
            continue
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        param = param or loc
        value = e.get("input")
        shown = "" if isinstance(value, dict | list) or value is None else f" (got {value!r:.60})"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}{shown}")
    return "invalid request: " + "; ".join(parts), param


def install_error_handlers(app: FastAPI) -> None:
    """Every error FastAPI or the routes raise answers in the one JSON shape."""

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = validation_message(list(exc.errors()))
        return error_response(400, message, "invalid_value", param=param)

    @app.exception_handler(ApiError)
    async def on_api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.code, exc.headers, exc.param)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404:
            message = "no such route; see /docs for the routes"
        elif exc.status_code == 400 and "parsing the body" in message:
            message = "the body could not be parsed as JSON (invalid UTF-8 or nesting too deep)"
        return error_response(exc.status_code, message, None, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def on_crash(_request: Request, exc: Exception) -> JSONResponse:
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}",
                              "internal_error")
