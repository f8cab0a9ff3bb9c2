"""The one error shape of the HTTP service (docs/contract.md section 4).

Every failure, whether raised by a route, by FastAPI (validation, unknown route, wrong
method) or by the body-size guard, answers

    {"success": false, "error": "<type>", "code": "<ERROR_CODE>", "details": {...}}

with a fitting HTTP status. `details` never echoes request bodies, headers or secrets.

`code` is an `ApiErrorCode` (what only the HTTP service answers: routing, auth, limits) or an
`errors.ErrorCode` (what also reaches the rows: a bad input, a missing field, a storage failure).
"""

from __future__ import annotations

import enum
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.storage.base import StorageError

logger = logging.getLogger("zencourt_pipeline.service")


class ApiErrorCode(enum.StrEnum):
    """The codes of the HTTP service's own errors (never on a job or batch row)."""

    UNAUTHORIZED = "UNAUTHORIZED"
    INVALID_API_KEY = "INVALID_API_KEY"
    API_KEY_NOT_CONFIGURED = "API_KEY_NOT_CONFIGURED"
    API_KEY_REVOKED = "API_KEY_REVOKED"  # a workspace key revoked with `zencourt keys revoke`
    FORBIDDEN = "FORBIDDEN"
    INSUFFICIENT_SCOPE = "INSUFFICIENT_SCOPE"  # the workspace key lacks the route's scope
    WORKSPACE_MISMATCH = "WORKSPACE_MISMATCH"  # a workspace key named another workspace
    STORAGE_KEY_OUTSIDE_WORKSPACE = "STORAGE_KEY_OUTSIDE_WORKSPACE"  # outside `workspaces/<id>/`
    RATE_LIMITED = "RATE_LIMITED"  # the workspace key's requests per minute are spent (Retry-After)
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    CONFLICT = "CONFLICT"
    BATCH_NOT_PENDING = "BATCH_NOT_PENDING"  # kept for old callers; /video/generate no longer answers it
    BATCH_EXISTS = "BATCH_EXISTS"  # POST /video/batches: the batch id is taken
    JOB_EXISTS = "JOB_EXISTS"  # POST /video/batches: a job id is taken by another batch
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"  # the Idempotency-Key was used with another body
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    DATABASE_ERROR = "DATABASE_ERROR"
    BAD_GATEWAY = "BAD_GATEWAY"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    WEBHOOK_VERIFICATION_UNAVAILABLE = "WEBHOOK_VERIFICATION_UNAVAILABLE"
    ERROR = "ERROR"  # a status without a code of its own


Code = ApiErrorCode | ErrorCode

# HTTP status -> the "error" type string
ERROR_TYPES: dict[int, str] = {
    400: "Validation Error",
    401: "Authentication Error",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    422: "Validation Error",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}

# Default code per status when none is given (e.g. Starlette's own 404/405)
DEFAULT_CODES: dict[int, Code] = {
    400: ErrorCode.INVALID_INPUT,
    401: ApiErrorCode.UNAUTHORIZED,
    403: ApiErrorCode.FORBIDDEN,
    404: ApiErrorCode.NOT_FOUND,
    405: ApiErrorCode.METHOD_NOT_ALLOWED,
    409: ApiErrorCode.CONFLICT,
    413: ApiErrorCode.PAYLOAD_TOO_LARGE,
    415: ApiErrorCode.UNSUPPORTED_MEDIA_TYPE,
    429: ApiErrorCode.RATE_LIMITED,
    422: ErrorCode.INVALID_INPUT,
    500: ApiErrorCode.INTERNAL_ERROR,
    502: ApiErrorCode.BAD_GATEWAY,
    503: ApiErrorCode.SERVICE_UNAVAILABLE,
}

# Storage error codes (StorageError.code) -> HTTP status; anything else is a 500
STORAGE_STATUS: dict[str, int] = {
    ErrorCode.INVALID_INPUT: 400,
    ErrorCode.MISSING_REQUIRED_FIELD: 400,
    ApiErrorCode.NOT_FOUND: 404,
}


class ApiError(StarletteHTTPException):
    """Raise from a route (or from the body reader) to answer the error format.

    A Starlette HTTPException subclass so that FastAPI's body/form parsing re-raises it as is
    instead of turning it into a generic 400.
    """

    def __init__(
        self,
        status_code: int,
        code: Code,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(status_code=status_code, detail=message, headers=headers)
        self.code = code
        self.message = message
        self.details = details or {}


class PayloadTooLarge(ApiError):
    def __init__(self, limit: int):
        super().__init__(
            413,
            ApiErrorCode.PAYLOAD_TOO_LARGE,
            f"request body exceeds the limit of {limit} bytes",
            {"limitBytes": limit},
            headers={"Connection": "close"},
        )


def error_body(status_code: int, code: Code, message: str, details: dict[str, Any] | None = None) -> dict:
    """The Node server's error JSON: success false, the HTTP error name, code, message and details."""
    return {
        "success": False,
        "error": ERROR_TYPES.get(status_code, "Error"),
        "code": code,
        "message": message,
        "details": details or {},
    }


def error_response(
    status_code: int,
    code: Code,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A JSON response carrying `error_body` with the given status and headers."""
    return JSONResponse(
        error_body(status_code, code, message, details), status_code=status_code, headers=headers
    )


def validation_error(errors: list[dict[str, Any]]) -> ApiError:
    """400 from pydantic errors: MISSING_REQUIRED_FIELD when only fields are missing, else INVALID_INPUT.

    Only the location and message of each error are returned, never the offending input.
    """
    items = []
    for err in errors:
        loc = [str(part) for part in err.get("loc", ()) if part not in ("body",)]
        items.append({"field": ".".join(loc) or None, "message": err.get("msg", "invalid value")})
    missing = bool(errors) and all(err.get("type") == "missing" for err in errors)
    fields = [item["field"] for item in items if item["field"]]
    if missing:
        return ApiError(
            400,
            ErrorCode.MISSING_REQUIRED_FIELD,
            f"missing required field(s): {', '.join(fields)}",
            {"errors": items},
        )
    return ApiError(
        400,
        ErrorCode.INVALID_INPUT,
        "invalid request: "
        + "; ".join(
            f"{item['field']}: {item['message']}" if item["field"] else item["message"] for item in items
        ),
        {"errors": items},
    )


def storage_error(exc: StorageError) -> ApiError:
    """The API error for a storage failure; 5xx get a generic message (details stay in the logs)."""
    status = STORAGE_STATUS.get(exc.code, 500)
    if status >= 500:  # backend details (bucket, endpoint, SDK messages) stay in the logs
        return ApiError(status, exc.code, "storage operation failed")
    return ApiError(status, exc.code, exc.message)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn API, HTTP, validation and storage errors into the error JSON."""
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code
        code = DEFAULT_CODES.get(status, ApiErrorCode.ERROR)
        message = exc.detail if isinstance(exc.detail, str) else ERROR_TYPES.get(status, "error")
        return error_response(status, code, message, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        err = validation_error(list(exc.errors()))
        return error_response(err.status_code, err.code, err.message, err.details)

    @app.exception_handler(ValidationError)
    async def _pydantic_validation(_request: Request, exc: ValidationError) -> JSONResponse:
        err = validation_error(list(exc.errors()))
        return error_response(err.status_code, err.code, err.message, err.details)

    @app.exception_handler(StorageError)
    async def _storage_error(_request: Request, exc: StorageError) -> JSONResponse:
        if STORAGE_STATUS.get(exc.code, 500) >= 500:
            logger.error("storage operation failed: %s", exc)
        err = storage_error(exc)
        return error_response(err.status_code, err.code, err.message)
