"""Workspace keys in the app (TestClient, SQLite): with or without the admin key, when the service
refuses everything (503), the per-key token bucket, and the `last_used_at` throttle."""

from __future__ import annotations

from fastapi.testclient import TestClient

from zencourt_pipeline.db import api_keys
from zencourt_pipeline.db.api_keys import ApiKeyRepository
from zencourt_pipeline.domain import ApiScope
from zencourt_pipeline.service.app import create_app
from zencourt_pipeline.service.ratelimit import KeyRateLimiter

from .conftest import API_KEY, assert_error, make_batch


def app_without_admin_key(settings, db, storage, verifier, **updates):
    return create_app(
        settings.model_copy(update={"video_server_api_key": None, **updates}), db=db, storage=storage, verifier=verifier
    )


def test_without_the_admin_key_workspace_keys_still_work(settings, db, storage, verifier):
    db.batches.insert_batch(*make_batch("nw1", workspace_id="ws1"))
    with TestClient(app_without_admin_key(settings, db, storage, verifier)) as client:
        # neither an admin key nor a workspace key: everything refused, as before
        assert_error(client.get("/video/batches/nw1", headers={"x-api-key": API_KEY}), 503, "API_KEY_NOT_CONFIGURED")
        _, key = db.api_keys.create_key("ws1", [ApiScope.READ])
        assert client.get("/video/batches/nw1", headers={"x-api-key": key}).status_code == 200
        assert client.get("/video/batches/nw1", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert_error(client.get("/video/batches/nw1"), 401, "UNAUTHORIZED")
        assert_error(client.get("/video/batches/nw1", headers={"x-api-key": API_KEY}), 401, "INVALID_API_KEY")
        db.api_keys.revoke(api_keys.prefix_of(key))
        assert_error(client.get("/video/batches/nw1", headers={"x-api-key": key}), 401, "API_KEY_REVOKED")
        # the last key revoked: back to refusing everything
        assert_error(client.get("/video/batches/nw1"), 503, "API_KEY_NOT_CONFIGURED")


def test_the_admin_key_sees_every_workspace_and_is_not_limited(client, db, auth):
    db.batches.insert_batch(*make_batch("aw1", workspace_id="ws1"))
    db.batches.insert_batch(*make_batch("aw2"))  # a batch without a workspace: the admin key's only
    _, key = db.api_keys.create_key("ws1", list(ApiScope))
    assert client.get("/video/batches/aw2", headers=auth).status_code == 200
    assert client.get("/video/batches/aw1", headers=auth).json()["workspaceId"] == "ws1"
    assert_error(client.get("/video/batches/aw2", headers={"x-api-key": key}), 404, "NOT_FOUND")
    ids = {batch["id"] for batch in client.get("/video/batches", headers={"x-api-key": key}).json()["batches"]}
    assert ids == {"aw1"}
    client.app.state.key_limiter = KeyRateLimiter(1)
    for _ in range(3):
        assert client.get("/video/batches/aw1", headers=auth).status_code == 200
    assert client.get("/video/batches/aw1", headers={"x-api-key": key}).status_code == 200
    limited = assert_error(client.get("/video/batches/aw1", headers={"x-api-key": key}), 429, "RATE_LIMITED")
    assert limited["error"] == "Too Many Requests" and limited["details"]["retryAfterSeconds"] == 60


def test_the_token_bucket_refills_and_says_when():
    now = [0.0]
    limiter = KeyRateLimiter(6, clock=lambda: now[0])  # 6 a minute: one every 10 s
    assert [limiter.take("k") for _ in range(6)] == [None] * 6
    assert limiter.take("k") == 10
    assert limiter.take("other") is None  # buckets are per key
    now[0] = 4.0
    assert limiter.take("k") == 6
    now[0] = 10.0
    assert limiter.take("k") is None and limiter.take("k") == 10
    now[0] = 1000.0  # refilled to the burst, never above
    assert [limiter.take("k") for _ in range(7)] == [None] * 6 + [10]
    assert KeyRateLimiter(0).take("k") is None  # 0: unlimited


def test_the_bucket_table_is_bounded():
    now = [0.0]
    limiter = KeyRateLimiter(60, clock=lambda: now[0], max_keys=4)
    for i in range(10):
        now[0] += 100.0
        assert limiter.take(f"k{i}") is None
    assert len(limiter._buckets) <= 4


def test_last_used_is_written_once_a_minute_per_process(client, db, monkeypatch):
    db.batches.insert_batch(*make_batch("lu1", workspace_id="ws1"))
    record, key = db.api_keys.create_key("ws1", [ApiScope.READ])
    writes = []
    touch = ApiKeyRepository.touch
    monkeypatch.setattr(ApiKeyRepository, "touch", lambda *args, **kwargs: writes.append(args[1]) or touch(*args, **kwargs))
    for _ in range(5):
        assert client.get("/video/batches/lu1", headers={"x-api-key": key}).status_code == 200
    assert writes == [record.id]
    assert db.api_keys.find(record.id).last_used_at is not None


def test_a_database_failure_while_checking_a_key_is_503(client, db, auth, monkeypatch):
    _, key = db.api_keys.create_key("ws1", [ApiScope.READ])

    def down(*_args, **_kwargs):
        raise OSError("connection refused")

    monkeypatch.setattr(ApiKeyRepository, "verify", down)
    assert_error(client.get("/video/batches", headers={"x-api-key": key}), 503, "DATABASE_ERROR")
    assert client.get("/video/batches", headers=auth).status_code == 200  # the admin key needs no lookup


def test_the_keys_cli(monkeypatch, tmp_path, capsys):
    from zencourt_pipeline.cli import main

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    assert main(["keys", "create"]) == 2 and "--workspace" in capsys.readouterr().err
    assert main(["keys", "create", "--workspace", "a b"]) == 2
    assert main(["keys", "create", "--workspace", "ws9", "--scope", "storage", "--name", "uploader"]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert api_keys.KEY_RE.match(key)
    assert main(["keys", "list", "--workspace", "ws9"]) == 0
    listing = capsys.readouterr().out
    assert api_keys.prefix_of(key) in listing and "storage" in listing and "uploader" in listing and key not in listing
    assert main(["keys", "revoke"]) == 2
    assert main(["keys", "revoke", api_keys.prefix_of(key)]) == 0
    assert main(["keys", "list"]) == 0 and "revoked" in capsys.readouterr().out
    assert main(["keys", "revoke", "nope"]) == 1


def test_idempotency_keys_are_per_workspace(client, db, auth):
    _, key_a = db.api_keys.create_key("wsA", list(ApiScope))
    _, key_b = db.api_keys.create_key("wsB", list(ApiScope))
    body = {"listingId": "L-idem", "jobs": [{"imageUrl": "https://example.com/1.jpg"}]}
    made = {}
    for name, headers in (("A", {"x-api-key": key_a}), ("B", {"x-api-key": key_b}), ("admin", auth)):
        first = client.post("/video/batches", json=body, headers={**headers, "Idempotency-Key": "same"})
        assert first.status_code == 201, (name, first.text)
        replay = client.post("/video/batches", json=body, headers={**headers, "Idempotency-Key": "same"})
        assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]
        made[name] = first.json()["id"]
    assert len(set(made.values())) == 3  # B never replays A's batch (nor learns its id)
    assert db.batches.get_batch(made["A"]).workspace_id == "wsA" and db.batches.get_batch(made["admin"]).workspace_id is None


def test_generate_by_listing_leaves_other_workspaces_alone(client, db):
    db.batches.insert_batch(*make_batch("gl1", listing_id="L-g", workspace_id="wsA"))
    db.batches.insert_batch(*make_batch("gl2", listing_id="L-g", workspace_id="wsB"))
    _, key_a = db.api_keys.create_key("wsA", [ApiScope.WRITE])
    response = client.post("/video/generate", json={"listingId": "L-g"}, headers={"x-api-key": key_a})
    assert response.status_code == 202 and [b["batchId"] for b in response.json()["batches"]] == ["gl1"]
    _, key_c = db.api_keys.create_key("wsC", [ApiScope.WRITE])
    assert_error(client.post("/video/generate", json={"listingId": "L-g"}, headers={"x-api-key": key_c}), 404, "NOT_FOUND")
