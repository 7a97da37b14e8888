"""Every error leaves the API as ``{"error": {"code", "message"}}`` with a fitting status.

Callers' mistakes are 4xx with a code they can branch on; anything unexpected is a plain 500
without a stack trace (the trace goes to the log, not to the caller).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

IMAGE_ERROR_STATUS = {
    "empty_file": 400,
    "not_an_image": 415,
    "unsupported_format": 415,
    "truncated_image": 422,
    "corrupt_image": 422,
    "unreadable_file": 422,
    "file_too_large": 413,
    "too_many_pixels": 413,
}


HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    429: "rate_limited",
}
BODY_LIMIT_SCOPE_KEY = "starlette.max_body_size"  # set by Starlette's RequestBodyLimitMiddleware


class APIError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


ERROR_RESPONSE_SCHEMA = {
    "description": "Error",
    "content": {"application/json": {"example": error_body("not_an_image", "the file is not a recognised image")}},
}


def _describe(request: Request, exc: StarletteHTTPException) -> tuple[int, str, str]:
    """Status, code and message for Starlette's own errors, worded for the API's callers.

    Starlette's body limit says only "Content Too Large": the route's limit is in the scope. Its
    multipart parser reports too many parts as a 400 with a fixed message: that is the batch
    limit (the part limit is set to it), so it is the same 413 as a batch over the limit.
    """
    status, detail = exc.status_code, str(exc.detail)
    if status == 413:
        limit = request.scope.get(BODY_LIMIT_SCOPE_KEY)
        return 413, "request_too_large", f"the request body is over this route's {limit}-byte limit"
    if status == 400 and detail.startswith("Too many files"):
        return 413, "too_many_files", detail
    if status == 400 and detail.startswith("Too many fields"):
        return 413, "too_many_fields", detail
    return status, HTTP_CODES.get(status, "http_error"), detail


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
            parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg")))
        return JSONResponse(error_body("invalid_request", "; ".join(parts) or "invalid request"), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status, code, message = _describe(request, exc)
        return JSONResponse(error_body(code, message), status_code=status, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)
