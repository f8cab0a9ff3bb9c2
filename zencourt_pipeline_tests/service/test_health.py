"""GET /health: no auth, 200 with status ok or degraded."""

from __future__ import annotations

from fastapi.testclient import TestClient

from zencourt_pipeline.service.app import create_app


def test_health_ok_without_auth(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] is True and body["storage"] is True
    assert body["storageBackend"] == "local" and body["apiKeyConfigured"] is True


def test_health_degraded(settings, db, storage, verifier):
    class DownDb:
        engine = db.engine

        def ping(self):
            raise OSError("connection refused")

    storage.ping = lambda: False
    with TestClient(create_app(settings, db=DownDb(), storage=storage, verifier=verifier)) as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["database"] is False and response.json()["storage"] is False
