"""The probes behind `GET /health` that look past this process: the Dagster daemon's heartbeats
and the generation providers' reachability. Both are blocking (call them off the event loop)
and cached for `ZENCOURT_HEALTH_CACHE_SECONDS` so that health checks do not hammer the Dagster
storage or the providers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from zencourt_pipeline.domain import provider_spec

DEFAULT_CACHE_SECONDS = 30.0
PROVIDER_TIMEOUT_SECONDS = 3.0
USER_AGENT = "zencourt-pipeline-health/1"


def _now_iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class TtlCache:
    """`get(key, compute)`: the cached value while younger than `ttl` seconds, else `compute()`.

    One computation per key at a time: concurrent callers of an expired key wait for it
    instead of each sending their own request.
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.clock = clock
        self._values: dict[str, tuple[float, Any]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: str, compute: Callable[[], Any]) -> tuple[Any, bool]:
        """(value, cached)."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            hit = self._values.get(key)
            if hit is not None and self.ttl > 0 and self.clock() - hit[0] < self.ttl:
                return hit[1], True
            value = compute()
            self._values[key] = (self.clock(), value)
            return value, False


def provider_base_urls(settings: Any) -> dict[str, str | None]:
    """Each configured provider's base URL (`None` for the offline `local` generator): the
    `Settings` field the registry names (`domain.PROVIDERS`)."""
    specs = {name: provider_spec(name) for name in settings.generation_providers}
    return {
        name: getattr(settings, spec.base_url_setting) if spec and spec.base_url_setting else None
        for name, spec in specs.items()
    }


def probe_url(client: httpx.Client, url: str, timeout: float = PROVIDER_TIMEOUT_SECONDS) -> dict[str, Any]:
    """One unauthenticated GET: any HTTP answer means reachable, a transport error does not."""
    started = time.perf_counter()
    checked_at = _now_iso(time.time())
    try:
        response = client.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        return {
            "ok": False,
            "url": url,
            "error": type(exc).__name__,
            "latencyMs": round((time.perf_counter() - started) * 1000, 1),
            "checkedAt": checked_at,
        }
    return {
        "ok": True,
        "url": url,
        "statusCode": response.status_code,
        "latencyMs": round((time.perf_counter() - started) * 1000, 1),
        "checkedAt": checked_at,
    }


class ProviderProbe:
    """Reachability of each configured provider, cached per provider."""

    def __init__(self, settings: Any, cache: TtlCache, client: httpx.Client | None = None):
        self.urls = provider_base_urls(settings)
        self.cache = cache
        self._client = client or httpx.Client(follow_redirects=False, headers={"User-Agent": USER_AGENT})

    def __call__(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, url in self.urls.items():
            if url is None:
                result[name] = {"ok": True, "url": None, "local": True}
                continue
            value, cached = self.cache.get(f"provider:{name}", lambda url=url: probe_url(self._client, url))
            result[name] = {**value, "cached": cached}
        return result

    def close(self) -> None:
        self._client.close()


def daemon_status(instance: Any, now: float | None = None) -> dict[str, Any]:
    """Per required daemon type: healthy (a heartbeat within Dagster's tolerance) and the age of
    its last heartbeat; `ok` when every required daemon is healthy."""
    now = time.time() if now is None else now
    statuses = instance.get_daemon_statuses()
    daemons: dict[str, Any] = {}
    for daemon_type, status in sorted(statuses.items()):
        if not status.required:
            continue
        heartbeat = status.last_heartbeat
        daemons[daemon_type] = {
            "healthy": bool(status.healthy),
            "lastHeartbeatAgeSeconds": round(now - heartbeat.timestamp, 1) if heartbeat else None,
            "lastHeartbeatAt": _now_iso(heartbeat.timestamp) if heartbeat else None,
        }
    return {"ok": all(d["healthy"] for d in daemons.values()), "configured": True, "daemons": daemons}


class DaemonProbe:
    """`daemon_status` of the instance from `instance_factory` (built once), cached."""

    def __init__(self, instance_factory: Callable[[], Any], cache: TtlCache):
        self.instance_factory = instance_factory
        self.cache = cache
        self._instance: Any = None
        self._lock = threading.Lock()

    def _status(self) -> dict[str, Any]:
        try:
            with self._lock:
                if self._instance is None:
                    self._instance = self.instance_factory()
            return daemon_status(self._instance)
        except Exception as exc:  # noqa: BLE001 - an unreadable instance is a result
            return {"ok": False, "configured": True, "error": f"{type(exc).__name__}: {exc}"[:300]}

    def __call__(self) -> dict[str, Any]:
        value, cached = self.cache.get("daemon", self._status)
        return {**value, "cached": cached}


def default_instance_factory() -> Any:
    """The instance of `DAGSTER_HOME` (the daemon's, when the service shares its config)."""
    import dagster as dg

    return dg.DagsterInstance.get()
