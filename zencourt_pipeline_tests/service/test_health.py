"""GET /health over real sockets: no auth; 503 when the database or storage is down (a closed
port, a dropped PostgreSQL database, a stopped S3 server); the Dagster daemon's heartbeats and
the providers' reachability (cached) reported as `degraded`, not 503."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa
from dagster._daemon.types import DaemonHeartbeat
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from zencourt_pipeline.config import Settings
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.service.app import create_app
from zencourt_pipeline.service.routes import health as health_route
from zencourt_pipeline_tests.conftest import POSTGRES_ADMIN_URL
from zencourt_pipeline_tests.fakes.server import ServerThread
from zencourt_pipeline_tests.topology import free_port, start_s3


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


def get_health(app) -> httpx.Response:
    with ServerThread(app) as server:
        return httpx.get(f"{server.url}/health", timeout=30)


class ProviderFake:
    """Answers anything with a 404, counting requests (a provider's base URL has no page)."""

    def __init__(self) -> None:
        self.count = 0

        async def anything(request):
            self.count += 1
            return PlainTextResponse("not found", status_code=404)

        self.app = Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "HEAD"])])


@pytest.fixture
def provider_fake() -> Iterator[tuple[ProviderFake, str]]:
    fake = ProviderFake()
    with ServerThread(fake.app) as server:
        yield fake, server.url


def test_health_ok_without_auth(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] is True and body["storage"] is True
    assert body["storageBackend"] == "local" and body["apiKeyConfigured"] is True
    checks = body["checks"]
    assert checks["database"]["ok"] is True and checks["storage"] == {**checks["storage"], "ok": True, "backend": "local"}
    assert checks["daemon"] == {"ok": None, "configured": False}  # no DAGSTER_HOME
    assert checks["providers"] == {}  # only the offline local generator
    assert response.headers["cache-control"] == "no-store"


def test_database_on_a_closed_port_is_503(settings, storage, verifier):
    db = AppDatabase.connect(f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/nothing")
    response = get_health(create_app(settings, db=db, storage=storage, verifier=verifier))
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["database"] is False and body["storage"] is True
    assert body["checks"]["database"]["ok"] is False and body["checks"]["database"]["error"]
    db.db.dispose()


@pytest.mark.postgres
def test_a_dropped_postgres_database_is_503_and_recovers(settings, storage, verifier, postgres_url):
    db = AppDatabase.connect(postgres_url)
    app = create_app(settings, db=db, storage=storage, verifier=verifier)
    with ServerThread(app) as server:
        assert httpx.get(f"{server.url}/health").status_code == 200
        name = sa.make_url(postgres_url).database
        admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        down = httpx.get(f"{server.url}/health")
        assert down.status_code == 503 and down.json()["checks"]["database"]["ok"] is False
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        assert httpx.get(f"{server.url}/health").status_code == 200  # pool_pre_ping reconnects
    db.db.dispose()


def test_storage_down_is_503(settings, db, verifier):
    from zencourt_pipeline.storage.b2 import B2Storage

    moto, endpoint = start_s3("health-bucket")
    storage = B2Storage(
        endpoint=endpoint, key_id="k", application_key="secret", bucket="health-bucket", timeout_seconds=2
    )
    settings = settings.model_copy(update={"storage_health_cache_ms": 0})  # probe on every call
    app = create_app(settings, db=db, storage=storage, verifier=verifier)
    with ServerThread(app) as server:
        try:
            up = httpx.get(f"{server.url}/health", timeout=30)
            assert up.status_code == 200 and up.json()["checks"]["storage"]["backend"] == "b2"
        finally:
            moto.stop()
        started = time.monotonic()
        down = httpx.get(f"{server.url}/health", timeout=30)
        assert time.monotonic() - started < health_route.PROBE_TIMEOUT_SECONDS + 2
    assert down.status_code == 503
    body = down.json()
    assert body["status"] == "unavailable" and body["storage"] is False and body["database"] is True


def test_storage_health_is_cached_for_storage_health_cache_ms(tmp_path, db, storage, verifier, monkeypatch):
    """The Node server's STORAGE_HEALTH_CACHE_MS, read through Settings: a good storage probe is
    reused that long (an outage shows once it expires); a failed one is never reused."""
    monkeypatch.setenv("STORAGE_HEALTH_CACHE_MS", "1500")
    monkeypatch.setenv("ZENCOURT_DATA_DIR", str(tmp_path / "data"))
    settings = Settings.from_env()
    assert settings.storage_health_cache_ms == 1500 and settings.storage_health_cache_seconds == 1.5
    assert Settings(data_dir=tmp_path).storage_health_cache_seconds == Settings(data_dir=tmp_path).health_cache_seconds
    pings = {"n": 0, "down": False}
    real_ping = storage.ping

    def ping() -> bool:
        pings["n"] += 1
        if pings["down"]:
            raise OSError("storage gone")
        return real_ping()

    storage.ping = ping
    with ServerThread(create_app(settings, db=db, storage=storage, verifier=verifier)) as server:
        def health() -> tuple[int, dict]:
            response = httpx.get(f"{server.url}/health", timeout=30)
            return response.status_code, response.json()["checks"]["storage"]

        first, again = health(), health()
        assert (first[0], first[1]["ok"], first[1]["cached"]) == (200, True, False)
        assert (again[0], again[1]["cached"]) == (200, True) and pings["n"] == 1
        pings["down"] = True
        assert health()[0] == 200 and pings["n"] == 1  # within the cache: not asked
        time.sleep(1.6)
        down, down_again = health(), health()
        assert (down[0], down[1]["ok"], down[1]["error"]) == (503, False, "OSError")
        assert down_again[0] == 503 and pings["n"] == 3  # a failure is not cached
        pings["down"] = False
        assert health()[0] == 200 and pings["n"] == 4  # back at once


def test_a_hanging_probe_is_cut_off_and_does_not_block_the_event_loop(settings, db, storage, verifier, monkeypatch):
    monkeypatch.setattr(health_route, "PROBE_TIMEOUT_SECONDS", 0.5)
    release = threading.Event()
    storage.ping = lambda: release.wait(30)
    app = create_app(settings, db=db, storage=storage, verifier=verifier)
    try:
        with ServerThread(app) as server:
            results: list[httpx.Response] = []
            thread = threading.Thread(target=lambda: results.append(httpx.get(f"{server.url}/health", timeout=30)))
            thread.start()
            time.sleep(0.1)
            # while the probe hangs in its thread, the loop still answers other requests
            assert httpx.get(f"{server.url}/video/batches/x", timeout=2).status_code == 401
            thread.join(10)
            (response,) = results
    finally:
        release.set()
    assert response.status_code == 503
    assert response.json()["checks"]["storage"]["error"] == "Timeout"


def test_providers_reachability_is_cached(settings, db, storage, verifier, provider_fake):
    fake, url = provider_fake
    settings = settings.model_copy(
        update={"generation_providers": ["runway", "fal", "local"], "runway_api_url": url, "fal_queue_url": closed_port_url()}
    )
    app = create_app(settings, db=db, storage=storage, verifier=verifier)
    with ServerThread(app) as server:
        first = httpx.get(f"{server.url}/health").json()
        second = httpx.get(f"{server.url}/health").json()
    assert first["status"] == "degraded"  # fal unreachable: reported, not a 503
    providers = first["checks"]["providers"]
    assert providers["runway"]["ok"] is True and providers["runway"]["statusCode"] == 404
    assert providers["runway"]["url"] == url and providers["runway"]["cached"] is False
    assert providers["fal"]["ok"] is False and providers["fal"]["error"] == "ConnectError"
    assert providers["local"] == {"ok": True, "url": None, "local": True}
    assert second["checks"]["providers"]["runway"]["cached"] is True
    assert second["checks"]["providers"]["fal"]["cached"] is True
    assert fake.count == 1  # the second health check did not reach the provider


def test_provider_cache_expires(settings, db, storage, verifier, provider_fake):
    fake, url = provider_fake
    settings = settings.model_copy(
        update={"generation_providers": ["runway"], "runway_api_url": url, "health_cache_seconds": 0.3}
    )
    with TestClient(create_app(settings, db=db, storage=storage, verifier=verifier)) as client:
        for _ in range(3):
            assert client.get("/health").json()["status"] == "ok"
        assert fake.count == 1
        time.sleep(0.4)
        assert client.get("/health").json()["checks"]["providers"]["runway"]["cached"] is False
    assert fake.count == 2


def test_daemon_heartbeats_from_a_real_instance(settings, db, storage, verifier):
    settings = settings.model_copy(update={"health_cache_seconds": 0})
    with dg.instance_for_test() as instance:
        required = instance.get_required_daemon_types()
        assert "SENSOR" in required and "QUEUED_RUN_COORDINATOR" in required
        app = create_app(settings, db=db, storage=storage, verifier=verifier, dagster_instance=lambda: instance)
        with ServerThread(app) as server:
            never = httpx.get(f"{server.url}/health")
            assert never.status_code == 200 and never.json()["status"] == "degraded"
            daemon = never.json()["checks"]["daemon"]
            assert daemon["ok"] is False and set(daemon["daemons"]) == set(required)
            assert all(d["healthy"] is False and d["lastHeartbeatAgeSeconds"] is None for d in daemon["daemons"].values())

            now = time.time()
            for daemon_type in required:
                instance.add_daemon_heartbeat(DaemonHeartbeat(now - 5, daemon_type, "d1", []))
            alive = httpx.get(f"{server.url}/health").json()
            assert alive["status"] == "ok" and alive["checks"]["daemon"]["ok"] is True
            sensor = alive["checks"]["daemon"]["daemons"]["SENSOR"]
            assert sensor["healthy"] is True and 4 <= sensor["lastHeartbeatAgeSeconds"] < 60

            # the sensor daemon stopped beating an hour ago (Dagster's tolerance: 30 s + 30 min)
            instance.add_daemon_heartbeat(DaemonHeartbeat(now - 3600, "SENSOR", "d1", []))
            stale = httpx.get(f"{server.url}/health").json()
    assert stale["status"] == "degraded"
    assert stale["checks"]["daemon"]["daemons"]["SENSOR"]["healthy"] is False
    assert stale["checks"]["daemon"]["daemons"]["SENSOR"]["lastHeartbeatAgeSeconds"] >= 3600
    assert stale["checks"]["daemon"]["daemons"]["BACKFILL"]["healthy"] is True


def test_daemon_check_is_on_when_dagster_home_is_set(settings, db, storage, verifier, tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert Settings.from_env().dagster_home == str(home)
    settings = settings.model_copy(update={"dagster_home": str(home)})
    with TestClient(create_app(settings, db=db, storage=storage, verifier=verifier)) as client:
        body = client.get("/health").json()
    assert body["checks"]["daemon"]["configured"] is True
    assert body["checks"]["daemon"]["ok"] is False and body["status"] == "degraded"  # no daemon runs
