"""The HTTP service (docs/contract.md section 4): fal webhooks, batch create/list/status, generate,
cancel, the operator actions (recompose, regenerate: `launcher`), storage, and the public `GET /`
(service info), `GET /health` and `GET /openapi.json` (service/openapi.py, docs/openapi.json).

`create_app(settings, ...)` builds the FastAPI app; `server.serve(settings)` runs it under
uvicorn. Collaborators can be injected (tests, the CLI):

* `db`: an `AppDatabase` (default: one on `settings.resolved_database_url`);
* `storage`: a `Storage` (default: built from `STORAGE_BACKEND`: `LocalStorage` under
  `settings.local_storage_root`, or `storage.b2.B2Storage` from the `B2_*` settings);
  Stored URIs reach the web app as playable URLs through `app.state.media_urls`
  (`storage.urls.MediaUrls`), which `GET /media/{key}` serves for local storage;
* `verifier`: an object with `verify(headers, raw_body) -> None` raising
  `WebhookVerificationError` (default: `FalWebhookVerifier(settings.fal_jwks_url)`);
* `canceller`: `canceller(canceled_jobs: list[Job], batch_ids: list[str]) -> CancelReport`, called
  (in a worker thread) after `POST /video/cancel` committed the cancellation, with the job records
  that were canceled (provider, provider_task_id, ...) and the ids of the batches that are now
  canceled as a whole. It cancels provider tasks and terminates Dagster runs, and reports the
  tasks it could not stop; if it raises, the answer lists every live task of the canceled jobs
  as not stopped (the reconciler retries their cancels either way).

Body limits are enforced while reading (Content-Length first, then counted bytes): 1 MiB for
JSON routes and the webhook, `max_upload_bytes` for `POST /storage/upload` (default 512 MiB,
or the `MAX_UPLOAD_BYTES` environment variable). Oversized bodies get 413 PAYLOAD_TOO_LARGE.

Logs are JSON lines (`configure_logging`), with every value of `settings.secret_values()`
redacted; the request log line carries method, path, status and duration, never headers,
query strings or bodies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import IO, Any

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zencourt_pipeline.config import Settings
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.events import EventListener
from zencourt_pipeline.db.records import Job
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.observability.health import (
    DaemonProbe,
    ProviderProbe,
    TtlCache,
    default_instance_factory,
    provider_base_urls,
)
from zencourt_pipeline.observability.logging import REDACTED, JsonFormatter, log_level  # noqa: F401
from zencourt_pipeline.observability.logging import configure_logging as _configure_logging
from zencourt_pipeline.pipeline.cancel import CancelReport
from zencourt_pipeline.service.errors import (
    ApiError,
    ApiErrorCode,
    PayloadTooLarge,
    error_body,
    install_error_handlers,
)
from zencourt_pipeline.service.launch import Launcher, launcher_from_settings
from zencourt_pipeline.service.openapi import install_openapi
from zencourt_pipeline.service.ratelimit import KeyRateLimiter
from zencourt_pipeline.service.routes import actions, batches, events, health, media, root, video, webhooks
from zencourt_pipeline.service.routes import branding as branding_routes
from zencourt_pipeline.service.routes import storage as storage_routes
from zencourt_pipeline.storage import storage_from_settings
from zencourt_pipeline.storage.base import Storage
from zencourt_pipeline.storage.urls import MediaUrls

logger = logging.getLogger("zencourt_pipeline.service")
access_logger = logging.getLogger("zencourt_pipeline.service.access")

MIB = 1024 * 1024
DEFAULT_MAX_JSON_BYTES = 1 * MIB
UPLOAD_PATHS = frozenset({"/storage/upload"})

Canceller = Callable[[list[Job], list[str]], CancelReport]


# -- logging --------------------------------------------------------------------------------
# The format lives in observability/logging.py (every process writes the same fields); these
# names stay importable from here.
def configure_logging(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    """The service's logging: JSON lines (role `service`) at `LOG_LEVEL`, secrets redacted."""
    return _configure_logging("service", settings, stream=stream)


# -- middleware -----------------------------------------------------------------------------
class ServiceMiddleware:
    """Body-size limits, the request log line, and a JSON 500 for anything unhandled."""

    def __init__(self, app: ASGIApp, *, max_json_bytes: int, max_upload_bytes: int):
        self.app = app
        self.max_json_bytes = max_json_bytes
        self.max_upload_bytes = max_upload_bytes

    def limit_for(self, path: str) -> int:
        """The largest body a path accepts: the upload limit for upload routes, the JSON limit otherwise."""
        return self.max_upload_bytes if path in UPLOAD_PATHS else self.max_json_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope.get("path", "")
        exchange = _Exchange(receive, send, self.limit_for(path))
        try:
            _check_declared_length(scope, exchange.limit)
            await self.app(scope, exchange.receive, exchange.send)
        except ApiError as exc:
            # raised here, or escaped from the app (e.g. the body limit hit outside a route)
            if exchange.status is None:
                body = error_body(exc.status_code, exc.code, exc.message, exc.details)
                await _send_json(exchange.send, exc.status_code, body, exc.headers)
        except Exception:
            logger.exception("unhandled error", extra={"method": scope.get("method"), "path": path})
            if exchange.status is None:
                body = error_body(500, ApiErrorCode.INTERNAL_ERROR, "internal server error")
                await _send_json(exchange.send, 500, body, {"Connection": "close"})
            else:
                raise
        finally:
            _log_request(scope, path, exchange, started)


class _Exchange:
    """One request's side of the middleware: the body it read against its limit (PayloadTooLarge
    past it) and the status of the response sent (None: nothing sent yet)."""

    def __init__(self, receive: Receive, send: Send, limit: int):
        self._receive, self._send, self.limit = receive, send, limit
        self.status: int | None = None
        self.received = 0

    async def send(self, message: Message) -> None:
        """Send `message`, noting the response's status."""
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)

    async def receive(self) -> Message:
        """The next message, its body counted against the limit."""
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                raise PayloadTooLarge(self.limit)
        return message


def _check_declared_length(scope: Scope, limit: int) -> None:
    """ApiError(400) for a Content-Length that is not a number, PayloadTooLarge for one over `limit`."""
    declared = Headers(scope=scope).get("content-length")
    if declared is None:
        return
    try:
        declared_bytes = int(declared)
    except ValueError:
        raise ApiError(400, ErrorCode.INVALID_INPUT, "invalid Content-Length header") from None
    if declared_bytes > limit:
        raise PayloadTooLarge(limit)


def _log_request(scope: Scope, path: str, exchange: _Exchange, started: float) -> None:
    """The request log line: method, path, status, duration and body bytes (a warning for no answer or a 5xx)."""
    status = exchange.status
    level = logging.WARNING if status is None or status >= 500 else logging.INFO
    access_logger.log(
        level,
        "request",
        extra={
            "method": scope.get("method"),
            "path": path,
            "status": status,
            "durationMs": round((time.perf_counter() - started) * 1000, 1),
            "bytesIn": exchange.received,
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
    return storage_from_settings(settings)


def default_verifier(settings: Settings):
    """The fal webhook verifier that checks signatures against the configured JWKS URL."""
    from zencourt_pipeline.providers.fal_webhook import FalWebhookVerifier

    return FalWebhookVerifier(settings.fal_jwks_url)


# -- the app --------------------------------------------------------------------------------
ROUTERS = (
    root.router, health.router, webhooks.router, video.router, batches.router, actions.router, events.router,
    storage_routes.router, media.router, branding_routes.router,
)  # fmt: skip


@dataclass
class _Parts:
    """What the app is built from, and which of it the app made (and so closes at shutdown)."""

    db: AppDatabase
    storage: Storage
    verifier: Any
    canceller: Canceller | None
    launcher: Launcher | None
    daemon_probe: DaemonProbe | None
    provider_probe: ProviderProbe | None
    wakeups: events.Wakeups
    listener: EventListener | None
    owns: frozenset[str]

    def start(self) -> None:
        """Bind the live streams' wake-ups to the running loop; start the NOTIFY listener."""
        self.wakeups.bind(asyncio.get_running_loop())
        if self.listener is not None:
            self.listener.start()

    def close(self) -> None:
        """Stop the listener; close what the app made (best effort for the verifier)."""
        if self.listener is not None:
            self.listener.stop()
        if self.provider_probe is not None and "provider_client" in self.owns:
            self.provider_probe.close()
        close = getattr(self.verifier, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # noqa: BLE001 - shutdown best effort
                logger.warning("closing the webhook verifier failed", exc_info=True)
        if "launcher" in self.owns and self.launcher is not None:
            self.launcher.close()
        if "db" in self.owns:
            self.db.db.dispose()


def _probes(
    settings: Settings, dagster_instance: Callable[[], Any] | None, provider_client
) -> tuple[DaemonProbe | None, ProviderProbe | None]:
    """The `/health` probes: the daemon's heartbeats (when there is an instance), the providers."""
    cache = TtlCache(settings.health_cache_seconds)
    if dagster_instance is None and settings.dagster_home:
        dagster_instance = default_instance_factory
    daemon_probe = DaemonProbe(dagster_instance, cache) if dagster_instance is not None else None
    has_provider = any(url for url in provider_base_urls(settings).values())
    provider_probe = ProviderProbe(settings, cache, client=provider_client) if has_provider else None
    return daemon_probe, provider_probe


def _build_parts(
    settings: Settings,
    *,
    db: AppDatabase | None,
    storage: Storage | None,
    verifier,
    canceller: Canceller | None,
    launcher: Launcher | None,
    dagster_instance: Callable[[], Any] | None,
    provider_client,
) -> _Parts:
    """The app's parts: the ones given, the defaults from `settings` for the others (owned: closed at shutdown)."""
    owns = {name for name, given in (("db", db), ("launcher", launcher), ("provider_client", provider_client)) if given is None}
    db = db if db is not None else AppDatabase.connect(settings.resolved_database_url)
    wakeups = events.Wakeups()
    parts = _Parts(
        db=db,
        storage=storage if storage is not None else default_storage(settings),
        verifier=verifier if verifier is not None else default_verifier(settings),
        canceller=canceller,
        launcher=launcher if launcher is not None else launcher_from_settings(settings),
        daemon_probe=None,
        provider_probe=None,
        wakeups=wakeups,
        # PostgreSQL: the event table's NOTIFYs wake the live streams at once (polling stays the guarantee)
        listener=EventListener(db.db.engine, wakeups.notify) if db.db.engine.dialect.name == "postgresql" else None,
        owns=frozenset(owns),
    )
    parts.daemon_probe, parts.provider_probe = _probes(settings, dagster_instance, provider_client)
    return parts


def create_app(
    settings: Settings,
    *,
    db: AppDatabase | None = None,
    storage: Storage | None = None,
    verifier=None,
    canceller: Canceller | None = None,
    max_json_bytes: int = DEFAULT_MAX_JSON_BYTES,
    max_upload_bytes: int | None = None,
    dagster_instance: Callable[[], Any] | None = None,
    provider_client=None,
    launcher: Launcher | None = None,
) -> FastAPI:
    """`dagster_instance`: a factory of the Dagster instance whose daemon heartbeats `/health`
    reports (default: `DagsterInstance.get()` when `DAGSTER_HOME` is set, else no daemon
    check); `provider_client`: the `httpx.Client` of the provider reachability probe;
    `launcher`: what launches the operator actions' runs (default: `DAGSTER_WEBSERVER_URL`'s
    GraphQL API, none when unset)."""
    parts = _build_parts(
        settings, db=db, storage=storage, verifier=verifier, canceller=canceller, launcher=launcher,
        dagster_instance=dagster_instance, provider_client=provider_client,
    )  # fmt: skip

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        parts.start()
        yield
        parts.close()

    app = FastAPI(
        title="zencourt_pipeline service",
        version=root.package_version(),
        docs_url=None,
        redoc_url=None,
        openapi_url=root.OPENAPI_PATH,  # the API description `GET /` links to (no auth)
        lifespan=lifespan,
    )
    _install_state(app, settings, parts)
    install_error_handlers(app)
    install_openapi(app)
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(
        ServiceMiddleware,
        max_json_bytes=max_json_bytes,
        max_upload_bytes=max_upload_bytes or settings.max_upload_bytes,
    )
    return app


def _install_state(app: FastAPI, settings: Settings, parts: _Parts) -> None:
    """What the routes read from `app.state`."""
    app.state.settings = settings
    app.state.db = parts.db
    app.state.storage = parts.storage
    app.state.media_urls = MediaUrls.from_settings(settings, parts.storage)
    app.state.verifier = parts.verifier
    app.state.canceller = parts.canceller
    app.state.launcher = parts.launcher
    app.state.started_at = time.monotonic()
    app.state.stopping = threading.Event()  # set when the server is told to exit: live streams end
    app.state.wakeups = parts.wakeups
    app.state.event_listener = parts.listener
    app.state.daemon_probe = parts.daemon_probe
    app.state.provider_probe = parts.provider_probe
    app.state.key_limiter = KeyRateLimiter(settings.api_key_requests_per_minute)
    app.state.key_touched = {}  # workspace key id -> when this process last wrote its last_used_at
    app.state.storage_health_cache = health.StorageHealthCache(settings.storage_health_cache_seconds)
