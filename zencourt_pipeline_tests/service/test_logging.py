"""JSON logs: one object per line, a request line without headers/bodies, secrets never shown."""

from __future__ import annotations

import io
import json
import logging

import pytest
from fastapi.testclient import TestClient

from zencourt_pipeline.service.app import JsonFormatter, configure_logging, create_app, log_level
from zencourt_pipeline.storage.base import StorageError

from .conftest import API_KEY, SECRETS, make_batch


@pytest.fixture
def log_stream(settings):
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handler = configure_logging(settings, stream=stream)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_secret_values_never_appear_in_logs(settings, db, storage, verifier, signer, log_stream, caplog):
    secrets = settings.secret_values()
    assert sorted(secrets) == sorted(SECRETS.values())
    db.batches.insert_batch(*make_batch("lg1"))

    def leaky_url(key, expires_in=3600):
        raise StorageError(
            "STORAGE_DOWNLOAD_FAILED", f"signature failed with {SECRETS['b2_application_key']}"
        )

    storage.url = leaky_url

    def canceller(jobs, batch_ids):
        raise RuntimeError(f"runway said no to {SECRETS['runway_api_key']}")

    app = create_app(settings, db=db, storage=storage, verifier=verifier, canceller=canceller)
    with caplog.at_level(logging.DEBUG), TestClient(app, raise_server_exceptions=False) as client:
        # ordinary traffic: good key, wrong keys (that are other secrets), both header forms
        assert client.get("/video/batches/lg1", headers={"x-api-key": API_KEY}).status_code == 200
        assert (
            client.get("/video/batches/lg1", headers={"Authorization": f"Bearer {API_KEY}"}).status_code
            == 200
        )
        for secret in SECRETS.values():
            client.get("/video/batches/lg1", headers={"x-api-key": secret + "x"})
            client.post(
                "/video/generate", json={"batchId": secret}, headers={"Authorization": f"Bearer {secret}1"}
            )
        client.get(f"/health?token={SECRETS['vercel_webhook_secret']}")
        raw, headers = signer.delivery("req-log")
        assert client.post("/webhooks/fal", content=raw, headers=headers).status_code == 200
        assert (
            client.post(
                "/webhooks/fal", content=raw, headers={**headers, "x-fal-webhook-signature": "ab"}
            ).status_code
            == 401
        )
        ordinary = [record.getMessage() for record in caplog.records]
        # failures whose messages carry a secret: redaction is the last line of defence
        response = client.post("/storage/signed-url", json={"key": "a.mp4"}, headers={"x-api-key": API_KEY})
        assert response.status_code == 500
        assert SECRETS["b2_application_key"] not in response.text
        assert (
            client.post("/video/cancel", json={"batchId": "lg1"}, headers={"x-api-key": API_KEY}).status_code
            == 200
        )

    # nothing the service itself logs carries a secret, even before redaction
    for message in ordinary:
        for secret in secrets:
            assert secret not in message
    output = log_stream.getvalue()
    for secret in secrets:
        assert secret not in output
    assert "[REDACTED]" in output  # the leaky errors were logged, redacted

    records = lines(log_stream)
    requests = [r for r in records if r["logger"] == "zencourt_pipeline.service.access"]
    assert len(requests) >= 14
    for r in requests:
        assert {"ts", "level", "msg", "method", "path", "status", "durationMs"} <= set(r)
        assert "?" not in r["path"]
        assert not {"headers", "body", "query"} & set(r)
    assert any(r["path"] == "/health" and r["status"] == 200 for r in requests)
    assert any(r["path"] == "/webhooks/fal" and r["status"] == 401 for r in requests)
    assert any(r.get("msg") == "canceller failed" and "exc" in r for r in records)


def test_log_level_from_settings(settings):
    assert log_level("warn") == logging.WARNING
    assert log_level("DEBUG") == logging.DEBUG
    assert log_level("nonsense") == logging.INFO
    root = logging.getLogger()
    before = root.level
    stream = io.StringIO()
    handler = configure_logging(settings.model_copy(update={"log_level": "error"}), stream=stream)
    try:
        assert root.level == logging.ERROR
        logging.getLogger("zencourt_pipeline.service").info("hidden")
        logging.getLogger("zencourt_pipeline.service").error("shown", extra={"batchId": "b1"})
        (only,) = lines(stream)
        assert only["msg"] == "shown" and only["level"] == "error" and only["batchId"] == "b1"
        # calling again replaces the handler instead of doubling lines
        handler = configure_logging(settings.model_copy(update={"log_level": "error"}), stream=stream)
        logging.getLogger("zencourt_pipeline.service").error("once")
        assert [r["msg"] for r in lines(stream)] == ["shown", "once"]
    finally:
        root.removeHandler(handler)
        root.setLevel(before)


def test_formatter_redacts_json_escaped_secrets():
    secret = 'we"ird\\sec\nret'
    formatter = JsonFormatter([secret])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "value %s", (secret,), None)
    record.extra_field = {"nested": secret}
    line = formatter.format(record)
    assert json.loads(line)["msg"] == "value [REDACTED]"
    assert "ird" not in line
