"""The service under real uvicorn on loopback, fal webhooks signed by the fake fal server with
its own Ed25519 key and verified against its JWKS over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from zencourt_pipeline.db.schema import generation_completions
from zencourt_pipeline.providers.fal_webhook import FalWebhookVerifier
from zencourt_pipeline.service.app import create_app
from zencourt_pipeline_tests.fakes.fal import FakeFal, FalScript
from zencourt_pipeline_tests.fakes.server import ServerThread

from .conftest import API_KEY, make_batch

MODEL = "fal-ai/kling-video/v2.1/standard/image-to-video"


@pytest.fixture
def fake_fal() -> Iterator[FakeFal]:
    with FakeFal(latency=0.05, webhook_retries=0) as fake:
        yield fake


@pytest.fixture
def service(settings, db, storage, fake_fal) -> Iterator[ServerThread]:
    settings = settings.model_copy(update={"fal_jwks_url": fake_fal.jwks_url})
    app = create_app(settings, db=db, storage=storage, verifier=FalWebhookVerifier(fake_fal.jwks_url))
    with ServerThread(app) as server:
        yield server


def completions(db) -> list[dict]:
    with db.db.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(sa.select(generation_completions))]


def test_fal_delivers_three_copies_and_one_completion_is_recorded(service, fake_fal, db):
    db.batches.insert_batch(*make_batch("e2e1", n_jobs=1))
    fake_fal.scripts.default = FalScript(webhook_copies=3)
    webhook_url = f"{service.url}/webhooks/fal"
    submit = httpx.post(
        f"{fake_fal.url}/{MODEL}",
        params={"fal_webhook": webhook_url},
        json={
            "prompt": "slow pan across the kitchen",
            "image_url": "https://example.com/k.jpg",
            "duration": "5",
        },
        headers={"Authorization": f"Key {fake_fal.key}"},
    )
    assert submit.status_code == 200, submit.text
    request_id = submit.json()["request_id"]
    row = db.ledger.begin_task("e2e1-0", "e2e1", "fal")
    db.ledger.task_submitted(row, "e2e1-0", "fal", request_id)

    deadline = time.monotonic() + 15
    while len(fake_fal.webhook_deliveries) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    statuses = [d.get("status", d.get("error")) for d in fake_fal.webhook_deliveries]
    assert statuses == [200, 200, 200]
    (completion,) = completions(db)
    assert completion["task_id"] == request_id and completion["status"] == "succeeded"
    assert completion["job_id"] == "e2e1-0" and completion["source"] == "webhook"
    assert completion["output_url"].startswith(fake_fal.url + "/files/")
    assert fake_fal.counts["jwks"] == 1  # the key set is cached


def test_refused_deliveries_over_http(service, fake_fal, db):
    url = f"{service.url}/webhooks/fal"
    body = json.dumps(
        {"request_id": "r-1", "status": "OK", "payload": {"video": {"url": "https://x/v.mp4"}}}
    ).encode()
    with httpx.Client() as client:
        good = fake_fal.sign_headers(body, "r-1")
        signature = good["X-Fal-Webhook-Signature"]
        flipped = "1" if signature[-1] == "0" else "0"  # always a different signature
        bad = {**good, "X-Fal-Webhook-Signature": signature[:-1] + flipped}
        stale = fake_fal.sign_headers(body, "r-1", timestamp=int(time.time()) - 301)
        missing = {k: v for k, v in good.items() if k != "X-Fal-Webhook-Timestamp"}
        for headers in (bad, stale, missing):
            response = client.post(url, content=body, headers=headers)
            assert response.status_code == 401 and response.json()["code"] == "UNAUTHORIZED"
        assert completions(db) == []
        unknown = client.post(url, content=body, headers=good)
        assert unknown.status_code == 200
        assert [c["task_id"] for c in completions(db)] == ["r-1"]


def test_oversized_bodies_over_http(service, fake_fal, db):
    url = f"{service.url}/webhooks/fal"
    big = json.dumps({"request_id": "r-big", "status": "OK", "pad": "x" * (1024 * 1024)}).encode()
    headers = fake_fal.sign_headers(big, "r-big")
    with httpx.Client() as client:
        response = client.post(url, content=big, headers=headers)
        assert response.status_code == 413 and response.json()["code"] == "PAYLOAD_TOO_LARGE"

    def chunks():
        for start in range(0, len(big), 32 * 1024):
            yield big[start : start + 32 * 1024]

    with httpx.Client() as client:
        response = client.post(url, content=chunks(), headers=headers)
        assert response.status_code == 413 and response.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert completions(db) == []
    # the service is still fine afterwards
    assert httpx.get(f"{service.url}/health").json()["status"] == "ok"


def test_protected_route_over_http(service, db):
    db.batches.insert_batch(*make_batch("e2e2"))
    with httpx.Client(base_url=service.url) as client:
        assert client.get("/video/batches/e2e2").status_code == 401
        response = client.get("/video/batches/e2e2", headers={"Authorization": f"Bearer {API_KEY}"})
        assert response.status_code == 200 and response.json()["progress"]["total"] == 2


def test_serve_binds_all_interfaces_on_the_configured_port(settings, db, storage, monkeypatch):
    """`serve(settings)` hands uvicorn 0.0.0.0:PORT, JSON logging and no access log."""
    import uvicorn

    from zencourt_pipeline.service import server

    port = 43_210
    seen = {}
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: seen.update(vars(self.config), server=self))
    monkeypatch.setattr(server, "configure_logging", lambda settings: None)
    server.serve(settings.model_copy(update={"port": port}), db=db, storage=storage, verifier=object())
    assert seen["host"] == "0.0.0.0" and seen["port"] == port
    assert seen["access_log"] is False and seen["log_config"] is None
    stopping = seen["app"].state.stopping
    seen["server"].handle_exit(15, None)  # SIGTERM: the live event streams are told to end
    assert stopping.is_set() and seen["server"].should_exit
