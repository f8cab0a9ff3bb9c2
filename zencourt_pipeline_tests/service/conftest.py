"""Fixtures of the HTTP service tests: settings with secrets, a SQLite app database and local
storage in tmp_path, a fal signer (own Ed25519 key + JWKS), the app and a TestClient."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient

from zencourt_pipeline.config import Settings
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.records import Job
from zencourt_pipeline.pipeline.cancel import CancelReport
from zencourt_pipeline.providers.fal_webhook import FalWebhookVerifier
from zencourt_pipeline.service.app import create_app
from zencourt_pipeline.storage.local import LocalStorage

API_KEY = "svc-key-3f9a1c7e5b2d4a6c8e0f1a2b3c4d5e6f"
JWKS_URL = "https://fal.test/.well-known/jwks.json"
SECRETS = {
    "video_server_api_key": API_KEY,
    "fal_key": "fal-secret-77c1d2e3f4a5b6c7d8e9",
    "runway_api_key": "rw-secret-0a1b2c3d4e5f60718293",
    "vercel_webhook_secret": "vercel-secret-aa11bb22cc33dd44",
    "b2_application_key": "b2-secret-K005abcdef0123456789",
}


class FalSigner:
    """Signs webhook bodies the way fal does; `jwks` publishes the public key."""

    def __init__(self) -> None:
        self.private_key = Ed25519PrivateKey.generate()
        raw = self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        self.jwks = {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "test"}]}

    def headers(
        self,
        body: bytes,
        *,
        request_id: str = "req-1",
        user_id: str = "user-1",
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        message = f"{request_id}\n{user_id}\n{ts}\n{hashlib.sha256(body).hexdigest()}".encode()
        return {
            "content-type": "application/json",
            "x-fal-webhook-request-id": request_id,
            "x-fal-webhook-user-id": user_id,
            "x-fal-webhook-timestamp": ts,
            "x-fal-webhook-signature": signature or self.private_key.sign(message).hex(),
        }

    def delivery(self, request_id: str, **body_fields: Any) -> tuple[bytes, dict[str, str]]:
        """A signed OK delivery (raw body bytes, headers)."""
        body = {
            "request_id": request_id,
            "gateway_request_id": request_id,
            "status": "OK",
            "payload": {"video": {"url": f"https://v3.fal.media/files/{request_id}.mp4"}},
            **body_fields,
        }
        raw = json.dumps(body, indent=1).encode()  # not compact: the signature covers raw bytes
        return raw, self.headers(raw, request_id=request_id)


def make_batch(batch_id: str, n_jobs: int = 2, **batch_fields: Any) -> tuple[dict, list[dict]]:
    batch = {"id": batch_id, "listing_id": f"listing-{batch_id}", **batch_fields}
    jobs = [
        {
            "id": f"{batch_id}-{i}",
            "sort_order": i,
            "room_name": f"Room {i}",
            "image_url": f"https://example.com/{i}.jpg",
        }
        for i in range(n_jobs)
    ]
    return batch, jobs


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", fal_jwks_url=JWKS_URL, log_level="debug", **SECRETS)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[AppDatabase]:
    database = AppDatabase.connect(f"sqlite:///{tmp_path}/app.db")
    database.db.upgrade()
    yield database
    database.db.dispose()


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "storage")


@pytest.fixture
def signer() -> FalSigner:
    return FalSigner()


@pytest.fixture
def verifier(signer: FalSigner) -> Iterator[FalWebhookVerifier]:
    """The real verifier, its JWKS served through an httpx mock transport."""

    def handler(request: httpx.Request) -> httpx.Response:
        assert str(request.url) == JWKS_URL
        return httpx.Response(200, json=signer.jwks)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    yield FalWebhookVerifier(JWKS_URL, http_client=client)
    client.close()


class CancelRecorder:
    """Records what the route hands its canceller (the production canceller, built from the
    environment, is exercised in test_cancel_reporting.py)."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[list[Job], list[str]]] = []
        self.fail = fail

    def __call__(self, canceled_jobs: list[Job], batch_ids: list[str]) -> CancelReport:
        self.calls.append((canceled_jobs, batch_ids))
        if self.fail:
            raise RuntimeError("provider unreachable")
        return CancelReport()


@pytest.fixture
def canceller() -> CancelRecorder:
    return CancelRecorder()


@pytest.fixture
def app(settings, db, storage, verifier, canceller):
    return create_app(settings, db=db, storage=storage, verifier=verifier, canceller=canceller)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def auth() -> dict[str, str]:
    return {"x-api-key": API_KEY}


def new_id(prefix: str = "b") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["code"] == code, body
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["details"], dict)
    return body
