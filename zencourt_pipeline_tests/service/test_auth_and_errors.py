"""API-key auth of the protected routes, and the one error format everywhere."""

from __future__ import annotations

import dataclasses

import pytest
from fastapi.testclient import TestClient

from zencourt_pipeline.service.app import create_app
from zencourt_pipeline.service.auth import key_matches

from .conftest import API_KEY, SECRETS, assert_error, make_batch

PROTECTED = [
    ("POST", "/video/generate", {"batchId": "ab1"}),
    ("POST", "/video/cancel", {"batchId": "ab1"}),
    ("GET", "/video/batches/ab1", None),
    ("GET", "/video/batches/ab1/events", None),
    ("GET", "/video/batches", None),
    ("POST", "/video/batches", {"listingId": "L", "jobs": [{"imageUrl": "https://x.example.com/1.jpg"}]}),
    ("POST", "/video/batches:bulk", {"batches": []}),
    ("POST", "/storage/signed-url", {"key": "a/b.mp4", "expiresIn": 60}),
    ("DELETE", "/storage/delete", {"key": "a/b.mp4"}),
    ("POST", "/storage/upload", None),
]


def call(client, method, path, body, headers):
    return client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_protected_routes_refuse_missing_and_wrong_keys(client, method, path, body):
    assert_error(call(client, method, path, body, {}), 401, "UNAUTHORIZED")
    assert_error(call(client, method, path, body, {"x-api-key": "not-the-key"}), 401, "INVALID_API_KEY")
    assert_error(
        call(client, method, path, body, {"Authorization": f"Bearer {API_KEY}x"}), 401, "INVALID_API_KEY"
    )
    assert_error(call(client, method, path, body, {"Authorization": f"Basic {API_KEY}"}), 401, "UNAUTHORIZED")
    # another configured secret is not the API key either
    assert_error(call(client, method, path, body, {"x-api-key": SECRETS["fal_key"]}), 401, "INVALID_API_KEY")


def test_both_header_forms_are_accepted(client, db):
    db.batches.insert_batch(*make_batch("ab1"))
    for headers in (
        {"x-api-key": API_KEY},
        {"Authorization": f"Bearer {API_KEY}"},
        {"authorization": f"bearer {API_KEY}"},
    ):
        response = client.get("/video/batches/ab1", headers=headers)
        assert response.status_code == 200, response.text


def test_unset_key_refuses_every_protected_call(settings, db, storage, verifier):
    app = create_app(
        settings.model_copy(update={"video_server_api_key": None}), db=db, storage=storage, verifier=verifier
    )
    with TestClient(app) as client:
        for method, path, body in PROTECTED:
            for headers in ({}, {"x-api-key": API_KEY}, {"x-api-key": ""}):
                assert_error(call(client, method, path, body, headers), 503, "API_KEY_NOT_CONFIGURED")
        assert client.get("/health").status_code == 200


def test_key_compare():
    assert key_matches("abc", "abc")
    assert not key_matches("abc", "abd")
    assert not key_matches("", "abc")
    assert key_matches("clé-ü", "clé-ü")


def test_unknown_route_and_wrong_method_use_the_error_format(client, auth):
    assert_error(client.get("/nope", headers=auth), 404, "NOT_FOUND")
    assert_error(client.get("/webhooks/fal"), 405, "METHOD_NOT_ALLOWED")


def test_validation_errors_use_the_error_format(client, auth):
    body = assert_error(client.post("/video/generate", json={}, headers=auth), 400, "MISSING_REQUIRED_FIELD")
    assert body["details"]["errors"][0]["field"] == "batchId"
    assert_error(client.post("/video/generate", json={"batchId": 5}, headers=auth), 400, "INVALID_INPUT")
    assert_error(client.post("/video/generate", json={"batchId": "a,b"}, headers=auth), 400, "INVALID_INPUT")
    assert_error(client.post("/video/generate", json=["ab1"], headers=auth), 400, "INVALID_INPUT")
    assert_error(client.post("/video/generate", content=b"{not json", headers=auth), 400, "INVALID_INPUT")
    assert_error(client.post("/video/generate", content=b"", headers=auth), 400, "MISSING_REQUIRED_FIELD")
    assert_error(client.get("/video/batches/bad%20id", headers=auth), 400, "INVALID_INPUT")


def test_json_body_over_limit_is_413_before_auth_work(client, auth):
    big = b'{"batchId": "' + b"a" * (1024 * 1024) + b'"}'
    assert_error(client.post("/video/generate", content=big, headers=auth), 413, "PAYLOAD_TOO_LARGE")
    assert_error(client.post("/video/generate", content=big), 413, "PAYLOAD_TOO_LARGE")


def test_invalid_content_length_is_400(client, auth):
    response = client.post("/video/generate", content=b"{}", headers={**auth, "content-length": "abc"})
    assert response.status_code == 400


def test_unhandled_error_is_a_json_500(settings, db, storage, verifier, auth):
    class ExplodingBatches:
        def get_batch(self, _batch_id):
            raise RuntimeError("kaboom")

    app = create_app(settings, db=dataclasses.replace(db, batches=ExplodingBatches()), storage=storage, verifier=verifier)
    with TestClient(app, raise_server_exceptions=False) as client:
        body = assert_error(client.get("/video/batches/ab1", headers=auth), 500, "INTERNAL_ERROR")
    assert "kaboom" not in str(body)
