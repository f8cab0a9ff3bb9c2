"""POST /storage/signed-url, POST /storage/upload, DELETE /storage/delete."""

from __future__ import annotations

from fastapi.testclient import TestClient

from zencourt_pipeline.config import Settings
from zencourt_pipeline.service.app import create_app

from .conftest import assert_error


def test_signed_url(client, storage, auth):
    storage.put_bytes("clips/a.mp4", b"video")
    response = client.post("/storage/signed-url", json={"key": "clips/a.mp4", "expiresIn": 600}, headers=auth)
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "key": "clips/a.mp4",
        "url": storage.url("clips/a.mp4", 600),
        "expiresIn": 600,
    }
    ok = client.post("/storage/signed-url", json={"key": "clips/a.mp4", "expiresIn": 604800}, headers=auth)
    assert ok.status_code == 200
    default = client.post("/storage/signed-url", json={"key": "clips/a.mp4"}, headers=auth).json()
    assert default["expiresIn"] == 3600


def test_signed_url_expiry_bounds(client, auth):
    for expires in (604801, 0, -5, 10**12):
        body = assert_error(
            client.post("/storage/signed-url", json={"key": "a.mp4", "expiresIn": expires}, headers=auth),
            400,
            "INVALID_INPUT",
        )
        assert "604800" in body["message"]
    for expires in ("3600", 1.5, True, None):
        assert_error(
            client.post("/storage/signed-url", json={"key": "a.mp4", "expiresIn": expires}, headers=auth),
            400,
            "INVALID_INPUT",
        )


def test_invalid_keys_are_400(client, auth):
    for key in ("../etc/passwd", "/abs/path", "a b", "x" * 2000, "a/../../b"):
        assert_error(
            client.post("/storage/signed-url", json={"key": key}, headers=auth), 400, "INVALID_INPUT"
        )
        assert_error(
            client.request("DELETE", "/storage/delete", json={"key": key}, headers=auth), 400, "INVALID_INPUT"
        )
        response = client.post(
            "/storage/upload", data={"key": key}, files={"file": ("a.jpg", b"x")}, headers=auth
        )
        assert_error(response, 400, "INVALID_INPUT")
    assert_error(client.post("/storage/signed-url", json={}, headers=auth), 400, "MISSING_REQUIRED_FIELD")
    assert_error(client.post("/storage/signed-url", json={"key": ""}, headers=auth), 400, "INVALID_INPUT")


def test_upload_then_delete(client, storage, auth):
    data = b"\xff\xd8\xff" + b"jpeg" * 1000
    response = client.post(
        "/storage/upload",
        data={"key": "photos/listing-1/kitchen.jpg"},
        files={"file": ("kitchen.jpg", data, "image/jpeg")},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["key"] == "photos/listing-1/kitchen.jpg"
    assert body["url"] == storage.uri("photos/listing-1/kitchen.jpg")
    assert body["contentType"] == "image/jpeg" and body["size"] == len(data)
    assert storage.path("photos/listing-1/kitchen.jpg").read_bytes() == data

    delete = client.request(
        "DELETE", "/storage/delete", json={"key": "photos/listing-1/kitchen.jpg"}, headers=auth
    )
    assert delete.status_code == 200 and delete.json()["deleted"] is True
    assert not storage.exists("photos/listing-1/kitchen.jpg")
    again = client.request(
        "DELETE", "/storage/delete", json={"key": "photos/listing-1/kitchen.jpg"}, headers=auth
    )
    assert again.status_code == 200 and again.json()["deleted"] is False


def test_upload_content_type(client, storage, auth):
    seen = {}
    original = storage.put_file

    def put_file(key, path, content_type=None):
        seen[key] = content_type
        return original(key, path, content_type)

    storage.put_file = put_file
    client.post(
        "/storage/upload", data={"key": "v/a.mp4"}, files={"file": ("a", b"m", "video/mp4")}, headers=auth
    )
    client.post(
        "/storage/upload",
        data={"key": "v/b.png"},
        files={"file": ("b", b"p", "application/octet-stream")},
        headers=auth,
    )
    assert seen == {"v/a.mp4": "video/mp4", "v/b.png": "image/png"}
    bad = client.post(
        "/storage/upload",
        data={"key": "v/c.mp4"},
        files={"file": ("c", b"p", "video/mp4 <script>")},
        headers=auth,
    )
    assert bad.status_code == 400


def test_upload_missing_fields_and_wrong_encoding(client, auth):
    assert_error(
        client.post("/storage/upload", files={"file": ("a.jpg", b"x")}, headers=auth),
        400,
        "MISSING_REQUIRED_FIELD",
    )
    assert_error(client.post("/storage/upload", data={"key": "a.jpg"}, headers=auth), 400, "INVALID_INPUT")
    assert_error(
        client.post(
            "/storage/upload", data={"key": "a.jpg", "file": "text"}, files={"x": ("x", b"1")}, headers=auth
        ),
        400,
        "INVALID_INPUT",
    )
    assert_error(client.post("/storage/upload", json={"key": "a.jpg"}, headers=auth), 400, "INVALID_INPUT")


def test_upload_limit_is_configurable_and_larger_than_json(settings, db, storage, verifier, auth):
    app = create_app(settings, db=db, storage=storage, verifier=verifier, max_upload_bytes=2 * 1024 * 1024)
    with TestClient(app) as client:
        ok = client.post(
            "/storage/upload",
            data={"key": "big/ok.bin"},
            files={"file": ("ok", b"x" * 1_500_000)},
            headers=auth,
        )
        assert ok.status_code == 200, ok.text
        too_big = client.post(
            "/storage/upload",
            data={"key": "big/no.bin"},
            files={"file": ("no", b"x" * 2_100_000)},
            headers=auth,
        )
        assert_error(too_big, 413, "PAYLOAD_TOO_LARGE")
    assert not storage.exists("big/no.bin")


def test_upload_limit_from_environment(settings, db, storage, verifier, auth):
    from_env = Settings.from_env({"MAX_UPLOAD_BYTES": "1000"})  # read by Settings, as at start-up
    app = create_app(settings.model_copy(update={"max_upload_bytes": from_env.max_upload_bytes}), db=db,
                     storage=storage, verifier=verifier)
    with TestClient(app) as client:
        response = client.post(
            "/storage/upload", data={"key": "a.bin"}, files={"file": ("a", b"x" * 2000)}, headers=auth
        )
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_signed_url_expiry_may_be_an_integral_json_number(client, auth):
    """Found by fuzzing against docs/openapi.json: `3600.0` is a JSON Schema integer."""
    response = client.post("/storage/signed-url", json={"key": "a.mp4", "expiresIn": 3600.0}, headers=auth)
    assert response.status_code == 200 and response.json()["expiresIn"] == 3600
