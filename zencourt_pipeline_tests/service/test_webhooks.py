"""POST /webhooks/fal through the TestClient: verify raw bytes, record durably, then 200."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest
import sqlalchemy as sa

from zencourt_pipeline.db.schema import generation_completions
from zencourt_pipeline.service.app import create_app

from .conftest import assert_error, make_batch


def completion_rows(db, task_id=None) -> list[dict]:
    query = sa.select(generation_completions)
    if task_id is not None:
        query = query.where(generation_completions.c.task_id == task_id)
    with db.db.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def test_valid_delivery_three_times_records_once(client, db, signer):
    batch, jobs = make_batch("wb1", n_jobs=1)
    db.batches.insert_batch(batch, jobs)
    row_id = db.ledger.begin_task("wb1-0", "wb1", "fal")
    db.ledger.task_submitted(row_id, "wb1-0", "fal", "req-known")

    raw, headers = signer.delivery("req-known")
    answers = [client.post("/webhooks/fal", content=raw, headers=headers) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.json()["duplicate"] for a in answers] == [False, True, True]
    rows = completion_rows(db)
    assert len(rows) == 1
    row = rows[0]
    assert (row["provider"], row["task_id"], row["status"], row["source"]) == (
        "fal",
        "req-known",
        "succeeded",
        "webhook",
    )
    assert row["output_url"] == "https://v3.fal.media/files/req-known.mp4"
    assert row["job_id"] == "wb1-0" and row["batch_id"] == "wb1"
    assert row["payload"] == raw.decode()  # the raw body, as received


def test_error_delivery_is_recorded_as_failed(client, db, signer):
    body = json.dumps(
        {
            "request_id": "req-err",
            "status": "ERROR",
            "error": "Invalid status code: 422",
            "payload": {"detail": "boom"},
        }
    ).encode()
    response = client.post("/webhooks/fal", content=body, headers=signer.headers(body, request_id="req-err"))
    assert response.status_code == 200
    (row,) = completion_rows(db, "req-err")
    assert row["status"] == "failed" and row["error_code"]


def test_unknown_request_id_is_accepted_and_recorded(client, db, signer, caplog):
    raw, headers = signer.delivery("req-not-persisted-yet")
    with caplog.at_level("INFO", logger="zencourt_pipeline.service"):
        response = client.post("/webhooks/fal", content=raw, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"success": True, "requestId": "req-not-persisted-yet", "duplicate": False}
    (row,) = completion_rows(db, "req-not-persisted-yet")
    assert row["job_id"] is None
    assert any("unknown request_id" in rec.getMessage() for rec in caplog.records)


def test_bad_signature_is_refused_and_nothing_recorded(client, db, signer):
    raw, headers = signer.delivery("req-bad")
    tampered = raw.replace(b"req-bad.mp4", b"evil.mp4")
    assert_error(client.post("/webhooks/fal", content=tampered, headers=headers), 401, "UNAUTHORIZED")
    headers["x-fal-webhook-signature"] = "00" * 64
    assert_error(client.post("/webhooks/fal", content=raw, headers=headers), 401, "UNAUTHORIZED")
    assert completion_rows(db) == []


@pytest.mark.parametrize("offset", [-301, 301, 3600])
def test_stale_or_future_timestamp_is_refused(client, db, signer, offset):
    raw, _ = signer.delivery("req-stale")
    headers = signer.headers(raw, request_id="req-stale", timestamp=int(time.time()) + offset)
    body = assert_error(client.post("/webhooks/fal", content=raw, headers=headers), 401, "UNAUTHORIZED")
    assert "off" in body["details"]["reason"]
    assert completion_rows(db) == []


@pytest.mark.parametrize(
    "header",
    [
        "x-fal-webhook-request-id",
        "x-fal-webhook-user-id",
        "x-fal-webhook-timestamp",
        "x-fal-webhook-signature",
    ],
)
def test_missing_header_is_refused(client, db, signer, header):
    raw, headers = signer.delivery("req-missing")
    del headers[header]
    body = assert_error(client.post("/webhooks/fal", content=raw, headers=headers), 401, "UNAUTHORIZED")
    assert "missing" in body["details"]["reason"]
    assert completion_rows(db) == []


def test_malformed_json_is_400(client, db, signer):
    for raw in (b'{"request_id": "req-x", "status": "OK"', b'{"status": "OK"}', b"[1, 2]"):
        response = client.post("/webhooks/fal", content=raw, headers=signer.headers(raw, request_id="req-x"))
        assert_error(response, 400, "INVALID_INPUT")
    assert completion_rows(db) == []


def test_body_over_one_mib_is_413(client, db, signer):
    raw = json.dumps({"request_id": "req-big", "status": "OK", "pad": "x" * (1024 * 1024)}).encode()
    response = client.post("/webhooks/fal", content=raw, headers=signer.headers(raw, request_id="req-big"))
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert completion_rows(db) == []


def test_streamed_body_without_length_is_counted(client, db, signer):
    """No Content-Length (chunked): the bytes are counted while reading."""
    raw = json.dumps({"request_id": "req-chunked", "status": "OK", "pad": "x" * (1024 * 1024)}).encode()

    def chunks():
        for start in range(0, len(raw), 64 * 1024):
            yield raw[start : start + 64 * 1024]

    response = client.post(
        "/webhooks/fal", content=chunks(), headers=signer.headers(raw, request_id="req-chunked")
    )
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert completion_rows(db) == []


def test_database_failure_answers_500_so_fal_retries(settings, db, storage, verifier, signer):
    from fastapi.testclient import TestClient

    class BrokenCompletions:
        def record_completion(self, **_kwargs):
            raise RuntimeError("database is down")

    app = create_app(settings, db=dataclasses.replace(db, completions=BrokenCompletions()), storage=storage, verifier=verifier)
    raw, headers = signer.delivery("req-dbdown")
    with TestClient(app, raise_server_exceptions=False) as client:
        assert_error(client.post("/webhooks/fal", content=raw, headers=headers), 500, "DATABASE_ERROR")
    # the same delivery, retried once the database is back, is recorded
    with TestClient(create_app(settings, db=db, storage=storage, verifier=verifier)) as client:
        assert client.post("/webhooks/fal", content=raw, headers=headers).status_code == 200
    assert len(completion_rows(db, "req-dbdown")) == 1


def test_unreachable_jwks_answers_503(settings, db, storage, signer):
    import httpx
    from fastapi.testclient import TestClient

    from zencourt_pipeline.providers.fal_webhook import FalWebhookVerifier

    def down(_request):
        raise httpx.ConnectError("refused")

    verifier = FalWebhookVerifier(
        settings.fal_jwks_url, http_client=httpx.Client(transport=httpx.MockTransport(down))
    )
    raw, headers = signer.delivery("req-nokeys")
    with TestClient(create_app(settings, db=db, storage=storage, verifier=verifier)) as client:
        assert_error(
            client.post("/webhooks/fal", content=raw, headers=headers),
            503,
            "WEBHOOK_VERIFICATION_UNAVAILABLE",
        )
    assert completion_rows(db) == []


def test_webhook_needs_no_api_key_and_ignores_one(client, signer):
    raw, headers = signer.delivery("req-nokey")
    assert (
        client.post("/webhooks/fal", content=raw, headers={**headers, "x-api-key": "wrong"}).status_code
        == 200
    )
