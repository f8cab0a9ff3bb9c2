"""Service security: every route except the public ones (health, fal webhook, service info and
API description) needs the key (enumerated from the
app, so a route added later without it fails here), every body has a size limit, and no
configured secret shows up in logs, Dagster's event log or the database across a whole batch
run with provider faults, webhooks and service traffic (`provider_matrix`)."""

from __future__ import annotations

import json
import re

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from starlette.routing import Route

from zencourt_pipeline.config import Settings
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.schema import metadata
from zencourt_pipeline.service.app import DEFAULT_MAX_JSON_BYTES, create_app
from zencourt_pipeline.storage.local import LocalStorage

from .conftest import SECRETS, Driven

API_KEY = "svc-key-hardening-91f0"
PUBLIC = {
    ("GET", "/health"), ("HEAD", "/health"), ("POST", "/webhooks/fal"),
    ("GET", "/"), ("HEAD", "/"), ("GET", "/openapi.json"), ("HEAD", "/openapi.json"),  # service info, API description
}  # fmt: skip
# playable media URLs: their HMAC signature is the credential (a <video> tag sends no header)
SIGNED = {("GET", "/media/{key:path}"), ("HEAD", "/media/{key:path}")}
CONTRACT_PROTECTED = {
    ("POST", "/video/generate"),
    ("POST", "/video/cancel"),
    ("GET", "/video/batches/{batch_id}"),
    ("GET", "/video/batches/{batch_id}/events"),
    ("POST", "/storage/signed-url"),
    ("POST", "/storage/upload"),
    ("DELETE", "/storage/delete"),
}


class _NeverVerifies:
    def verify(self, headers, raw_body) -> None:
        from zencourt_pipeline.providers.fal_webhook import WebhookVerificationError

        raise WebhookVerificationError("test verifier refuses everything")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("security")
    db = AppDatabase.connect(f"sqlite:///{tmp / 'app.db'}")
    db.db.upgrade()
    settings = Settings(data_dir=tmp / "data", video_server_api_key=API_KEY)
    yield create_app(
        settings, db=db, storage=LocalStorage(tmp / "storage"), verifier=_NeverVerifies(), max_upload_bytes=64 * 1024
    )
    db.db.dispose()


def _routes(app) -> list[tuple[str, str]]:
    """(method, path) of every route, walking included routers (FastAPI includes them lazily)."""
    found = []

    def walk(routes, prefix: str) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                walk(inner.routes, prefix + getattr(getattr(route, "include_context", None), "prefix", ""))
            elif isinstance(route, Route):
                found.extend((method, prefix + route.path) for method in sorted(route.methods or ()))

    walk(app.routes, "")
    assert found, "no routes found: has FastAPI's router layout changed?"
    return found


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "b1", path)


def test_every_route_but_the_public_ones_needs_the_key(app):
    routes = _routes(app)
    assert CONTRACT_PROTECTED <= set(routes) and {("POST", "/webhooks/fal")} <= set(routes)
    protected = [(m, p) for m, p in routes if (m, p) not in PUBLIC | SIGNED]
    with TestClient(app, raise_server_exceptions=False) as client:
        assert SIGNED <= set(routes)
        for method, path in SIGNED:  # the API key is no way in: only a signature is
            response = client.request(method, "/media/batches/b1/v.mp4", headers={"x-api-key": API_KEY})
            assert response.status_code == 403, (method, path)
        for method, path in protected:
            url = _concrete(path)
            for headers, code in (
                ({}, "UNAUTHORIZED"),
                ({"x-api-key": API_KEY[:-1]}, "INVALID_API_KEY"),
                ({"x-api-key": API_KEY + " "}, None),  # stripped: the real key
                ({"Authorization": f"Bearer {API_KEY}0"}, "INVALID_API_KEY"),
                ({"Authorization": f"Token {API_KEY}"}, "UNAUTHORIZED"),
                ({"x-api-key": SECRETS["FAL_KEY"]}, "INVALID_API_KEY"),
            ):
                response = client.request(method, url, headers=headers, json={"batchId": "b1"})
                if code is None:
                    assert response.status_code not in (401, 403), (method, path)
                    continue
                assert response.status_code == 401, (method, path, headers, response.text)
                if method != "HEAD":
                    assert response.json()["code"] == code, (method, path)
                assert API_KEY not in response.text


def test_every_request_body_is_size_limited(app):
    """JSON routes and the webhook at 1 MiB, the upload at its own limit: a declared oversized
    body is refused (413) before any authentication or parsing work, a streamed one as soon as
    the limit is crossed."""
    big = b'{"pad": "' + b"x" * DEFAULT_MAX_JSON_BYTES + b'"}'
    with TestClient(app, raise_server_exceptions=False) as client:
        for method, path in _routes(app):
            if method not in ("POST", "PUT", "PATCH", "DELETE"):
                continue
            body, extra = big, {}
            if path == "/storage/upload":  # a real multipart upload, one byte over its limit
                body = (
                    b"--zcbound\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nup/big.bin\r\n"
                    b"--zcbound\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
                    b"Content-Type: application/octet-stream\r\n\r\n" + b"x" * (64 * 1024) + b"\r\n--zcbound--\r\n"
                )
                extra = {"content-type": "multipart/form-data; boundary=zcbound"}
            for headers in ({**extra}, {**extra, "x-api-key": API_KEY}):
                declared = client.request(method, _concrete(path), content=body, headers=headers)
                assert (declared.status_code, declared.json()["code"]) == (413, "PAYLOAD_TOO_LARGE"), (method, path)
                streamed = client.request(
                    method, _concrete(path), content=iter([body[i : i + 65536] for i in range(0, len(body), 65536)]),
                    headers=headers,
                )  # fmt: skip
                # streamed (no Content-Length): counted while read; a request without the key
                # may be refused before its body is read at all
                allowed = {413} if "x-api-key" in headers or path == "/webhooks/fal" else {401, 413}
                assert streamed.status_code in allowed, (method, path, headers)


def _db_text(db: AppDatabase) -> str:
    parts = []
    with db.db.engine.connect() as conn:
        for table in metadata.sorted_tables:
            if sa.inspect(db.db.engine).has_table(table.name):
                parts += [json.dumps(dict(row._mapping), default=str) for row in conn.execute(sa.select(table))]
    return "\n".join(parts)


def test_no_secret_in_logs_event_log_or_database(provider_matrix: Driven):
    """Every secret set to a distinctive value; the batch ran through Runway (429s, 503,
    failures), fal (webhooks through our service), downloads, composition. Nothing any code
    logged (all loggers at DEBUG, unredacted), nothing in Dagster's event log or runs, nothing
    stored in the database carries a secret."""
    service = provider_matrix.extra["service_url"]
    # service traffic with the right key and with wrong keys that are other secrets
    with httpx.Client(base_url=service, timeout=10) as client:
        assert client.get("/video/batches/provider-matrix", headers={"x-api-key": SECRETS["VIDEO_SERVER_API_KEY"]}).status_code == 200
        for name, secret in SECRETS.items():
            assert client.get("/video/batches/provider-matrix", headers={"x-api-key": secret + "x"}).status_code == 401
            answer = client.post("/video/cancel", json={"batchId": "no-such-batch"}, headers={"Authorization": f"Bearer {secret}"})
            assert answer.status_code == (404 if name == "VIDEO_SERVER_API_KEY" else 401)
    capture = provider_matrix.extra["capture"]
    logs = "\n".join(capture.lines)
    assert len(capture.lines) > 100 and "fal webhook recorded" in logs  # the capture saw the run

    instance = provider_matrix.instance
    runs = instance.get_runs()
    assert runs
    dagster_text = []
    for run in runs:
        dagster_text.append(json.dumps(run.run_config, default=str))
        dagster_text.append(json.dumps(run.tags, default=str))
        dagster_text += [dg.serialize_value(entry) for entry in instance.all_logs(run.run_id)]
        snapshot = instance.get_job_snapshot(run.job_snapshot_id)
        dagster_text.append(dg.serialize_value(snapshot))  # resource config shown in the UI
    event_log = "\n".join(dagster_text)
    stored = _db_text(provider_matrix.db)
    assert "RUNWAY_API_KEY" in event_log  # secrets reach Dagster as EnvVar names only

    for name, secret in SECRETS.items():
        for part in {secret, *secret.split(":")}:  # the fal key is id:secret
            if len(part) < 12:
                continue
            assert part not in logs, f"{name} in the logs"
            assert part not in event_log, f"{name} in Dagster's event log / runs"
            assert part not in stored, f"{name} in the database"
