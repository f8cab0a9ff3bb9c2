"""The HTTP service (CONTRACT.md section 4): fal webhooks, batch status, cancel, storage.

`create_app(settings, ...)` builds the FastAPI app; `server.serve(settings)` runs it under
uvicorn. Collaborators can be injected (tests, the CLI):

* `db`: an `AppDatabase` (default: one on `settings.resolved_database_url`);
* `storage`: a `Storage` (default: built from `STORAGE_BACKEND`: `LocalStorage` under
  `settings.local_storage_root`, or `storage.b2.B2Storage` from the `B2_*` settings);
* `verifier`: an object with `verify(headers, raw_body) -> None` raising
  `WebhookVerificationError` (default: `FalWebhookVerifier(settings.fal_jwks_url)`);
* `canceller`: `canceller(canceled_jobs: list[dict], batch_ids: list[str]) -> None`, called
  (in a worker thread) after `POST /video/cancel` committed the cancellation, with the job rows
  that were canceled (provider, provider_task_id, ...) and the ids of the batches that are now
  canceled as a whole. It cancels provider tasks and terminates Dagster runs; exceptions are
  logged, not fatal.

Body limits are enforced while reading (Content-Length first, then counted bytes): 1 MiB for
JSON routes and the webhook, `max_upload_bytes` for `POST /storage/upload` (default 512 MiB,
or the `MAX_UPLOAD_BYTES` environment variable). Oversized bodies get 413 PAYLOAD_TOO_LARGE.

Logs are JSON lines (`configure_logging`), with every value of `settings.secret_values()`
redacted; the request log line carries method, path, status and duration, never headers,
query strings or bodies.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import IO, Any

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zencourt_pipeline.config import Settings
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.service.errors import ApiError, PayloadTooLarge, error_body, install_error_handlers
from zencourt_pipeline.service.routes import health, video, webhooks
from zencourt_pipeline.service.routes import storage as storage_routes
from zencourt_pipeline.storage.base import Storage

logger = logging.getLogger("zencourt_pipeline.service")
access_logger = logging.getLogger("zencourt_pipeline.service.access")

MIB = 1024 * 1024
DEFAULT_MAX_JSON_BYTES = 1 * MIB
DEFAULT_MAX_UPLOAD_BYTES = 512 * MIB
UPLOAD_PATHS = frozenset({"/storage/upload"})

Canceller = Callable[[list[dict[str, Any]], list[str]], None]


# -- logging --------------------------------------------------------------------------------
_LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn: the message again, with ANSI colours
}
REDACTED = "[REDACTED]"


def log_level(name: str | None) -> int:
    return _LOG_LEVELS.get((name or "info").strip().lower(), logging.INFO)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; every secret value is replaced by `[REDACTED]`."""

    def __init__(self, secrets: Sequence[str] = ()):
        super().__init__()
        forms: set[str] = set()
        for secret in secrets:
            if secret:
                forms.add(secret)
                forms.add(json.dumps(secret)[1:-1])  # as it appears inside a JSON string
        # longest first, so a secret containing another is replaced whole
        self._secrets = sorted(forms, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and not key.startswith("_") and key not in data:
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exc"] = record.exc_text
        return self.redact(json.dumps(data, default=str))


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    """Route all logging through one JSON handler on the root logger at `LOG_LEVEL`.

    Replaces a handler installed by an earlier call (so it can be called again, e.g. in
    tests). Returns the handler.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_zencourt_json", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(settings.secret_values()))
    handler._zencourt_json = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(log_level(settings.log_level))
    # uvicorn's loggers propagate to the root handler; its access log is replaced by ours.
    for name in ("uvicorn", "uvicorn.error"):
        uv = logging.getLogger(name)
        uv.handlers.clear()
        uv.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs full request URLs at INFO: keep third-party clients quiet.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, log_level(settings.log_level)))
    return handler


# -- middleware -----------------------------------------------------------------------------
class ServiceMiddleware:
    """Body-size limits, the request log line, and a JSON 500 for anything unhandled."""

    def __init__(self, app: ASGIApp, *, max_json_bytes: int, max_upload_bytes: int):
        self.app = app
        self.max_json_bytes = max_json_bytes
        self.max_upload_bytes = max_upload_bytes

    def limit_for(self, path: str) -> int:
        return self.max_upload_bytes if path in UPLOAD_PATHS else self.max_json_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope.get("path", "")
        limit = self.limit_for(path)
        state = {"status": None, "received": 0}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            await send(message)

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    raise PayloadTooLarge(limit)
            return message

        try:
            declared = Headers(scope=scope).get("content-length")
            if declared is not None:
                try:
                    declared_bytes = int(declared)
                except ValueError:
                    raise ApiError(400, "INVALID_INPUT", "invalid Content-Length header") from None
                if declared_bytes > limit:
                    raise PayloadTooLarge(limit)
            await self.app(scope, limited_receive, send_wrapper)
        except ApiError as exc:
            # raised here, or escaped from the app (e.g. the body limit hit outside a route)
            if state["status"] is None:
                await _send_json(
                    send_wrapper,
                    exc.status_code,
                    error_body(exc.status_code, exc.code, exc.message, exc.details),
                    exc.headers,
                )
        except Exception:
            logger.exception("unhandled error", extra={"method": scope.get("method"), "path": path})
            if state["status"] is None:
                await _send_json(
                    send_wrapper,
                    500,
                    error_body(500, "INTERNAL_ERROR", "internal server error"),
                    {"Connection": "close"},
                )
            else:
                raise
        finally:
            status = state["status"]
            level = logging.WARNING if status is None or status >= 500 else logging.INFO
            access_logger.log(
                level,
                "request",
                extra={
                    "method": scope.get("method"),
                    "path": path,
                    "status": status,
                    "durationMs": round((time.perf_counter() - started) * 1000, 1),
                    "bytesIn": state["received"],
                },
            )


async def _send_json(send: Send, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
    payload = json.dumps(body, separators=(",", ":")).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    for name, value in (headers or {}).items():
        raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


# -- defaults -------------------------------------------------------------------------------
def default_storage(settings: Settings) -> Storage:
    """The configured storage (the same construction as the Dagster `StorageResource`)."""
    if settings.storage_backend == "b2":
        from zencourt_pipeline.storage.b2 import B2Storage

        return B2Storage(
            endpoint=settings.b2_endpoint,
            key_id=settings.b2_key_id,
            application_key=settings.b2_application_key,
            bucket=settings.b2_bucket_name,
            region=settings.b2_region,
        )
    from zencourt_pipeline.storage.local import LocalStorage

    return LocalStorage(settings.local_storage_root)


def default_verifier(settings: Settings):
    from zencourt_pipeline.providers.fal_webhook import FalWebhookVerifier

    return FalWebhookVerifier(settings.fal_jwks_url)


def _max_upload_bytes(settings: Settings) -> int:
    configured = getattr(settings, "max_upload_bytes", None) or os.environ.get("MAX_UPLOAD_BYTES")
    try:
        value = int(configured) if configured else DEFAULT_MAX_UPLOAD_BYTES
    except ValueError:
        raise ValueError("MAX_UPLOAD_BYTES must be an integer number of bytes") from None
    if value <= 0:
        raise ValueError("MAX_UPLOAD_BYTES must be positive")
    return value


# -- the app --------------------------------------------------------------------------------
def create_app(
    settings: Settings,
    *,
    db: AppDatabase | None = None,
    storage: Storage | None = None,
    verifier=None,
    canceller: Canceller | None = None,
    max_json_bytes: int = DEFAULT_MAX_JSON_BYTES,
    max_upload_bytes: int | None = None,
) -> FastAPI:
    owns_db = db is None
    db = db if db is not None else AppDatabase(settings.resolved_database_url)
    storage = storage if storage is not None else default_storage(settings)
    verifier = verifier if verifier is not None else default_verifier(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        close = getattr(verifier, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # noqa: BLE001 - shutdown best effort
                logger.warning("closing the webhook verifier failed", exc_info=True)
        if owns_db:
            db.dispose()

    app = FastAPI(
        title="zencourt_pipeline service",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.storage = storage
    app.state.verifier = verifier
    app.state.canceller = canceller
    app.state.started_at = time.monotonic()

    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(webhooks.router)
    app.include_router(video.router)
    app.include_router(storage_routes.router)
    app.add_middleware(
        ServiceMiddleware,
        max_json_bytes=max_json_bytes,
        max_upload_bytes=max_upload_bytes or _max_upload_bytes(settings),
    )
    return app
