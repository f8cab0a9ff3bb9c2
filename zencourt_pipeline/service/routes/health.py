"""`GET /health` (no auth).

* **503** `{"status": "unavailable", ...}` when the database (`SELECT 1`) or the storage (local
  root writable / B2 `head_bucket`) does not answer within `PROBE_TIMEOUT_SECONDS`: this
  process cannot do its work, a load balancer should take it out of rotation.
* **200** `{"status": "degraded", ...}` when both answer but the Dagster daemon has no recent
  heartbeat (checked when `DAGSTER_HOME` is set) or a configured provider is unreachable: the
  service still accepts webhooks, status calls and cancels, but batches will not progress, so
  this is an alert, not a reason to restart the service.
* **200** `{"status": "ok", ...}` otherwise.

Body:

    {"status": "...",
     "checks": {"database": {"ok": true, "latencyMs": 1.2},
                "storage": {"ok": true, "backend": "b2", "latencyMs": 8.0, "cached": false},
                "daemon": {"ok": true, "configured": true, "cached": false,
                           "daemons": {"SENSOR": {"healthy": true, "lastHeartbeatAgeSeconds": 4.2,
                                                  "lastHeartbeatAt": "..."}, ...}},
                "providers": {"runway": {"ok": true, "url": "...", "statusCode": 404,
                                         "latencyMs": 30.1, "checkedAt": "...", "cached": true}}},
     "database": true, "storage": true, "storageBackend": "b2",
     "apiKeyConfigured": true, "uptimeSeconds": 12.3}

Every probe runs in a worker thread (never on the event loop) and is bounded by a timeout; the
daemon and provider probes are cached for `ZENCOURT_HEALTH_CACHE_SECONDS` (default 30). A
successful storage probe is reused for `STORAGE_HEALTH_CACHE_MS` (the Node server's setting; unset:
`ZENCOURT_HEALTH_CACHE_SECONDS`), so frequent health checks do not cost a B2 call each; a failed
one is never reused, so the storage coming back shows at the next call (`checks.storage.cached`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from zencourt_pipeline.service.models import HealthChecks, HealthResponse

logger = logging.getLogger("zencourt_pipeline.service.health")
router = APIRouter()

PROBE_TIMEOUT_SECONDS = 3.0


class StorageHealthCache:
    """The last successful storage probe, reused while younger than `ttl` seconds."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.clock = clock
        self._hit: tuple[float, dict[str, Any]] | None = None

    def get(self) -> dict[str, Any] | None:
        """The cached result, or None when there is none or it is too old."""
        hit = self._hit
        if hit is None or self.ttl <= 0 or self.clock() - hit[0] >= self.ttl:
            return None
        return hit[1]

    def put(self, result: dict[str, Any]) -> None:
        """Keep a successful result (a failed one clears the cache)."""
        self._hit = (self.clock(), dict(result)) if result.get("ok") else None
# the daemon and provider probes are cached; a cold one may take a provider timeout and more
CACHED_PROBE_TIMEOUT_SECONDS = 10.0


async def _timed(name: str, fn: Callable[[], Any], timeout: float) -> tuple[Any, float, str | None]:
    started = time.perf_counter()
    try:
        value = await asyncio.wait_for(run_in_threadpool(fn), timeout=timeout)
        error = None
    except TimeoutError:
        value, error = None, "Timeout"
    except Exception as exc:  # noqa: BLE001 - a failed probe is a result, not an error
        value, error = None, type(exc).__name__
    if error:
        logger.warning("health probe failed", extra={"probe": name, "errorType": error})
    return value, round((time.perf_counter() - started) * 1000, 1), error


async def _reachability(name: str, fn: Callable[[], Any]) -> dict[str, Any]:
    value, latency, error = await _timed(name, fn, PROBE_TIMEOUT_SECONDS)
    ok = bool(value) and error is None
    result: dict[str, Any] = {"ok": ok, "latencyMs": latency}
    if not ok:
        result["error"] = error or "unreachable"
    return result


async def _storage(state: Any) -> dict[str, Any]:
    cache: StorageHealthCache | None = getattr(state, "storage_health_cache", None)
    cached = cache.get() if cache is not None else None
    if cached is not None:
        return {**cached, "cached": True}
    result = await _reachability("storage", state.storage.ping)
    if cache is not None:
        cache.put(result)
    return {**result, "cached": False}


async def _optional(name: str, probe: Callable[[], dict] | None, absent: dict) -> dict[str, Any]:
    if probe is None:
        return absent
    value, _latency, error = await _timed(name, probe, CACHED_PROBE_TIMEOUT_SECONDS)
    return value if error is None else {"ok": False, "error": error}


@router.get(
    "/health",
    response_model=HealthResponse,
    response_model_by_alias=True,
    responses={503: {"model": HealthResponse, "description": "unavailable: the database or storage is down"}},
)
async def health(request: Request, response: Response) -> HealthResponse:
    """`GET /health`: probe database, storage, daemon and providers (503 unavailable, else 200)."""
    state = request.app.state
    database, storage, daemon, providers = await asyncio.gather(
        _reachability("database", state.db.db.ping),
        _storage(state),
        _optional("daemon", state.daemon_probe, {"ok": None, "configured": False}),
        _optional("providers", state.provider_probe, {}),
    )
    storage["backend"] = getattr(state.storage, "name", None)
    if not isinstance(providers, dict) or "ok" in providers and providers.get("ok") is False:
        providers = {"all": providers}
    if not (database["ok"] and storage["ok"]):
        status, code = "unavailable", 503
    elif daemon.get("ok") is False or any(p.get("ok") is False for p in providers.values()):
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    response.status_code = code
    response.headers["Cache-Control"] = "no-store"
    return HealthResponse(
        status=status,
        checks=HealthChecks(database=database, storage=storage, daemon=daemon, providers=providers),
        database=database["ok"],
        storage=storage["ok"],
        storage_backend=storage["backend"],
        api_key_configured=bool(state.settings.video_server_api_key),
        uptime_seconds=round(time.monotonic() - state.started_at, 1),
    )
