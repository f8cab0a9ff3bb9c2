"""API-key authentication of the protected routes.

The web app sends `x-api-key: <VIDEO_SERVER_API_KEY>` (or `Authorization: Bearer <key>`).
Keys are compared in constant time. When `VIDEO_SERVER_API_KEY` is unset every protected call
is refused with 503 `API_KEY_NOT_CONFIGURED`: the service never runs open by accident.
Neither the expected nor the presented key is ever logged or echoed.
"""

from __future__ import annotations

import hmac
import logging

from fastapi import Request

from zencourt_pipeline.service.errors import ApiError, ApiErrorCode

logger = logging.getLogger("zencourt_pipeline.service.auth")


def presented_keys(request: Request) -> list[str]:
    """The API keys a request presents, from `x-api-key` and from an `Authorization: Bearer` header."""
    keys = []
    api_key = request.headers.get("x-api-key")
    if api_key:
        keys.append(api_key.strip())
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            keys.append(token.strip())
    return keys


def key_matches(presented: str, expected: str) -> bool:
    """Compare a presented key with the expected one in constant time."""
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def check_api_key(request: Request, expected: str | None) -> None:
    """Raise ApiError unless the request carries the configured key."""
    if not expected:
        raise ApiError(
            503,
            ApiErrorCode.API_KEY_NOT_CONFIGURED,
            "VIDEO_SERVER_API_KEY is not set on the server: protected routes are disabled",
        )
    keys = presented_keys(request)
    if not keys:
        raise ApiError(
            401,
            ApiErrorCode.UNAUTHORIZED,
            "missing API key: send 'x-api-key: <key>' or 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # Compare every presented key (no short-circuit on the first), accept if any matches.
    results = [key_matches(key, expected) for key in keys]
    if not any(results):
        logger.warning("rejected request with an invalid API key", extra={"path": request.url.path})
        raise ApiError(401, ApiErrorCode.INVALID_API_KEY, "invalid API key", headers={"WWW-Authenticate": "Bearer"})


async def require_api_key(request: Request) -> None:
    """FastAPI dependency for the protected routes."""
    check_api_key(request, request.app.state.settings.video_server_api_key)
