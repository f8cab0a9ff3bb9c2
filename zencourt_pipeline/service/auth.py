"""API-key authentication and authorization of the protected routes.

A request presents a key as `x-api-key: <key>` or `Authorization: Bearer <key>`. Two kinds:

* the admin key, `VIDEO_SERVER_API_KEY` (what the web app holds): every workspace, every scope,
  not rate limited; compared in constant time;
* a workspace key (`zencourt keys create`, db/api_keys.py): one workspace and its scopes, looked up
  by its prefix, its SHA-256 compared in constant time. A revoked key is 401 `API_KEY_REVOKED`.

Scopes (`ApiScope`): `read` for GETs, `write` for creating, generate, cancel and the operator actions
(recompose, regenerate), `storage` for the storage routes; a key without the route's scope is 403 `INSUFFICIENT_SCOPE`. A workspace key sees
its workspace's batches only (another's answers 404, as an unknown one), and storage keys under
`workspaces/<workspace id>/` only (403 `STORAGE_KEY_OUTSIDE_WORKSPACE`). Each workspace key is rate
limited in this process (service/ratelimit.py: 429 `RATE_LIMITED` with `Retry-After`), and its
`last_used_at` is written at most once a minute. When the database cannot be read to check a
workspace key the answer is 503 `DATABASE_ERROR` (the admin key needs no lookup).

With neither `VIDEO_SERVER_API_KEY` nor any unrevoked workspace key, every protected call is
refused with 503 `API_KEY_NOT_CONFIGURED`: the service never runs open by accident. Neither the
expected nor the presented key is ever logged or echoed.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.concurrency import run_in_threadpool

from zencourt_pipeline.db import api_keys
from zencourt_pipeline.db.records import ApiKey
from zencourt_pipeline.domain import ApiScope
from zencourt_pipeline.service.errors import ApiError, ApiErrorCode

logger = logging.getLogger("zencourt_pipeline.service.auth")

WORKSPACE_STORAGE_PREFIX = "workspaces/{workspace_id}/"
TOUCH_SECONDS = api_keys.TOUCH_INTERVAL.total_seconds()
READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request is: the admin key (`workspace_id` None) or a workspace key with its scopes."""

    workspace_id: str | None
    scopes: frozenset[ApiScope]
    key_id: str | None = None
    prefix: str | None = None

    @property
    def admin(self) -> bool:
        """True for the admin key (`VIDEO_SERVER_API_KEY`): every workspace."""
        return self.workspace_id is None

    def can_see(self, workspace_id: str | None) -> bool:
        """Whether a batch of this workspace is the caller's (every batch for the admin key)."""
        return self.admin or workspace_id == self.workspace_id

    @property
    def storage_prefix(self) -> str | None:
        """The storage keys the caller may use start with this (None: any key)."""
        return None if self.admin else WORKSPACE_STORAGE_PREFIX.format(workspace_id=self.workspace_id)

    def require(self, scope: ApiScope) -> None:
        """Raise 403 INSUFFICIENT_SCOPE unless the key has `scope`."""
        if scope not in self.scopes:
            raise ApiError(
                403,
                ApiErrorCode.INSUFFICIENT_SCOPE,
                f"this API key lacks the {scope.value!r} scope",
                {"requiredScope": scope.value, "keyScopes": sorted(self.scopes)},
            )

    def check_storage_key(self, key: str) -> None:
        """Raise 403 STORAGE_KEY_OUTSIDE_WORKSPACE when a workspace key names a key outside its prefix."""
        prefix = self.storage_prefix
        if prefix is not None and not key.startswith(prefix):
            raise ApiError(
                403,
                ApiErrorCode.STORAGE_KEY_OUTSIDE_WORKSPACE,
                f"this API key may only use storage keys under {prefix!r}",
                {"field": "key", "prefix": prefix},
            )

    def workspace_for(self, requested: str | None) -> str | None:
        """The workspace a new batch belongs to: the key's (a different one asked for is 403)."""
        if self.admin:
            return requested
        if requested is not None and requested != self.workspace_id:
            raise ApiError(
                403,
                ApiErrorCode.WORKSPACE_MISMATCH,
                "this API key belongs to another workspace",
                {"field": "workspaceId"},
            )
        return self.workspace_id


ADMIN = Principal(None, frozenset(ApiScope))


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


def _unauthorized(code: ApiErrorCode, message: str) -> ApiError:
    return ApiError(401, code, message, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(request: Request) -> Principal:
    """The principal of the request's key, or ApiError (401, or 503 when no key is configured)."""
    state = request.app.state
    admin_key = state.settings.video_server_api_key
    keys = presented_keys(request)
    # Compare every presented key with the admin key (no short-circuit on the first).
    if admin_key and any([key_matches(key, admin_key) for key in keys]):
        return ADMIN
    for key in keys:
        if api_keys.prefix_of(key) is None:
            continue
        record = await _read_keys(state.db.api_keys.verify, key)
        if record is None:
            continue
        if record.revoked:
            logger.warning("rejected a revoked API key", extra={"keyPrefix": record.prefix, "path": request.url.path})
            raise _unauthorized(ApiErrorCode.API_KEY_REVOKED, "this API key is revoked")
        await _note_use(request, record)
        return Principal(record.workspace_id, frozenset(record.scopes), record.id, record.prefix)
    if not admin_key and not await _read_keys(state.db.api_keys.any_active):
        raise ApiError(
            503,
            ApiErrorCode.API_KEY_NOT_CONFIGURED,
            "VIDEO_SERVER_API_KEY is not set on the server and no workspace key exists: protected routes are disabled",
        )
    if not keys:
        raise _unauthorized(
            ApiErrorCode.UNAUTHORIZED, "missing API key: send 'x-api-key: <key>' or 'Authorization: Bearer <key>'"
        )
    logger.warning("rejected request with an invalid API key", extra={"path": request.url.path})
    raise _unauthorized(ApiErrorCode.INVALID_API_KEY, "invalid API key")


async def _read_keys(function, *args):
    """Run a key read in a worker thread; a database failure is 503 DATABASE_ERROR (retry later)."""
    try:
        return await run_in_threadpool(function, *args)
    except Exception:
        logger.exception("could not read the API keys")
        raise ApiError(503, ApiErrorCode.DATABASE_ERROR, "the API key could not be checked; retry later") from None


async def _note_use(request: Request, record: ApiKey) -> None:
    """Write the key's `last_used_at` when this process has not within the last minute."""
    touched: dict[str, float] = request.app.state.key_touched
    now = time.monotonic()
    last = touched.get(record.id)
    if last is not None and now - last < TOUCH_SECONDS:
        return
    touched[record.id] = now
    try:
        await run_in_threadpool(request.app.state.db.api_keys.touch, record.id)
    except Exception:  # noqa: BLE001 - a lost "last used" never fails the request
        logger.warning("could not record the use of an API key", extra={"keyPrefix": record.prefix}, exc_info=True)


def _rate_limit(request: Request, principal: Principal) -> None:
    if principal.key_id is None:
        return
    retry_after = request.app.state.key_limiter.take(principal.key_id)
    if retry_after is not None:
        raise ApiError(
            429,
            ApiErrorCode.RATE_LIMITED,
            "too many requests with this API key",
            {"retryAfterSeconds": retry_after},
            headers={"Retry-After": str(retry_after)},
        )


# The OpenAPI security schemes of the protected routes (auto_error off: `authenticate` decides).
API_KEY_SCHEME = APIKeyHeader(name="x-api-key", scheme_name="ApiKeyHeader", auto_error=False,
                              description="the admin key (VIDEO_SERVER_API_KEY) or a workspace key")
BEARER_SCHEME = HTTPBearer(scheme_name="BearerAuth", auto_error=False,
                           description="the same key as `Authorization: Bearer <key>`")


def require(scope: ApiScope | None = None) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency: authenticate, rate limit, check `scope` (None: read for GETs, else write)."""

    async def dependency(
        request: Request, _key: str | None = Security(API_KEY_SCHEME), _bearer: object = Security(BEARER_SCHEME)
    ) -> Principal:
        principal = await authenticate(request)
        _rate_limit(request, principal)
        principal.require(scope or (ApiScope.READ if request.method in READ_METHODS else ApiScope.WRITE))
        request.state.principal = principal
        return principal

    return dependency


def principal_of(request: Request) -> Principal:
    """The principal the route's auth dependency found (an error when none ran: never open by default)."""
    return request.state.principal


require_api_key = require()
require_storage_key = require(ApiScope.STORAGE)
