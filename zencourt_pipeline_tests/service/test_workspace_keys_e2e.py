"""Per-workspace API keys against a real `zencourt serve` process configured only through the
environment, on PostgreSQL: keys made and revoked with the `zencourt keys` CLI (a subprocess on the
same DATABASE_URL), then used over HTTP next to the admin key (`VIDEO_SERVER_API_KEY`)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline_tests.service.serve import ServeProcess
from zencourt_pipeline_tests.topology import ScratchDatabases

pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("workspace_keys")]  # one serve process

ADMIN_KEY = "keys-admin-9d3e5f1a7c"
RATE_LIMIT = 60  # ZENCOURT_API_KEY_REQUESTS_PER_MINUTE of the service under test
ERROR_FIELDS = {"success", "error", "code", "message", "details"}


class Serve(ServeProcess):
    """The service with the `zencourt keys` CLI on its database."""

    def keys(self, *args: str) -> subprocess.CompletedProcess:
        """Run `zencourt keys ...` on the service's database."""
        return self.cli("keys", *args)

    def create_key(self, workspace: str, *scopes: str) -> str:
        """A new key of the workspace: the last line `zencourt keys create` prints."""
        args = ["create", "--workspace", workspace] + [arg for scope in scopes for arg in ("--scope", scope)]
        done = self.keys(*args)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def serve(tmp_path_factory) -> Iterator[Serve]:
    scratch = ScratchDatabases("zc_keys", n=1)
    env = {"ZENCOURT_API_KEY_REQUESTS_PER_MINUTE": str(RATE_LIMIT)}
    service = Serve(tmp_path_factory.mktemp("keys"), scratch.urls[0], ADMIN_KEY, env)
    try:
        yield service
    finally:
        service.stop()
        scratch.close()


@pytest.fixture(scope="module")
def keys(serve) -> dict[str, str]:
    """Keys of workspaces A and B (every scope), and A's read-only and storage-only keys."""
    return {
        "A": serve.create_key("wsA"),
        "B": serve.create_key("wsB", "read", "write", "storage"),
        "A-read": serve.create_key("wsA", "read"),
        "A-storage": serve.create_key("wsA", "storage"),
    }


@pytest.fixture(scope="module")
def batches(serve, keys) -> dict[str, str]:
    """One batch made by each workspace's key, and one by the admin key for B."""
    made = {}
    for name, key, body in [
        ("A", keys["A"], {"id": "wk-a1", "listingId": "L-shared"}),
        ("B", keys["B"], {"id": "wk-b1", "listingId": "L-shared"}),
        ("B-admin", ADMIN_KEY, {"id": "wk-b2", "listingId": "L-b", "workspaceId": "wsB"}),
    ]:
        body["jobs"] = [{"id": f"{body['id']}-j0", "imageUrl": "https://example.com/k.jpg"}]
        response = serve.call("POST", "/video/batches", key, json=body)
        assert response.status_code == 201, response.text
        made[name] = body["id"]
    return made


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ERROR_FIELDS and body["success"] is False and body["code"] == code, body
    return body


def listed(serve, key: str, query: str = "") -> set[str]:
    response = serve.call("GET", f"/video/batches{query}", key)
    assert response.status_code == 200, response.text
    return {batch["id"] for batch in response.json()["batches"]}


def test_the_cli_prints_the_key_last_and_lists_it_without_the_secret(serve, keys):
    done = serve.keys("list", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert {row["workspace_id"] for row in rows} == {"wsA", "wsB"} and len(rows) == 4
    assert all(key not in done.stdout for key in keys.values())
    assert {tuple(row["scopes"]) for row in rows if row["workspace_id"] == "wsA"} == {
        ("read", "write", "storage"), ("read",), ("storage",)
    }
    text = serve.keys("list").stdout
    assert keys["A"].rsplit("_", 1)[0] in text and keys["A"] not in text


def test_batches_belong_to_the_key_workspace(serve, keys, batches):
    assert listed(serve, keys["A"]) == {"wk-a1"}
    assert listed(serve, keys["B"]) == {"wk-b1", "wk-b2"}
    assert listed(serve, keys["A"], "?listingId=L-shared") == {"wk-a1"}
    everything = serve.call("GET", "/video/batches", ADMIN_KEY).json()["batches"]
    assert {(batch["id"], batch["workspaceId"]) for batch in everything} == {
        ("wk-a1", "wsA"), ("wk-b1", "wsB"), ("wk-b2", "wsB")
    }
    assert_error(serve.call("GET", "/video/batches?workspaceId=wsB", keys["A"]), 403, "WORKSPACE_MISMATCH")
    refused = serve.call(
        "POST", "/video/batches", keys["A"],
        json={"listingId": "L", "workspaceId": "wsB", "jobs": [{"imageUrl": "https://example.com/1.jpg"}]},
    )  # fmt: skip
    assert_error(refused, 403, "WORKSPACE_MISMATCH")
    bulk = serve.call(
        "POST", "/video/batches:bulk", keys["A"],
        json={"batches": [{"id": "wk-a2", "listingId": "L", "jobs": [{"imageUrl": "https://example.com/1.jpg"}]},
                          {"listingId": "L", "workspaceId": "wsB", "jobs": [{"imageUrl": "https://example.com/1.jpg"}]}]},
    )  # fmt: skip
    assert [result["status"] for result in bulk.json()["results"]] == [201, 403]
    assert listed(serve, keys["A"]) == {"wk-a1", "wk-a2"}


def test_another_workspace_batch_is_not_found(serve, keys, batches):
    assert serve.call("GET", "/video/batches/wk-a1", keys["A"], bearer=True).status_code == 200
    assert serve.call("GET", "/video/batches/wk-b1", ADMIN_KEY).status_code == 200
    for method, path, payload in [
        ("GET", "/video/batches/wk-b1", None),
        ("POST", "/video/generate", {"batchId": "wk-b1"}),
        ("POST", "/video/cancel", {"batchId": "wk-b1"}),
    ]:
        foreign = assert_error(serve.call(method, path, keys["A"], json=payload), 404, "NOT_FOUND")
        unknown = assert_error(serve.call(method, path.replace("wk-b1", "wk-none"), keys["A"],
                                          json=payload and {"batchId": "wk-none"}), 404, "NOT_FOUND")
        assert foreign["message"].replace("wk-b1", "X") == unknown["message"].replace("wk-none", "X")
    by_jobs = assert_error(serve.call("POST", "/video/generate", keys["A"], json={"jobIds": ["wk-b1-j0"]}), 404, "NOT_FOUND")
    assert by_jobs["details"]["unknownJobIds"] == ["wk-b1-j0"]
    mixed = serve.call("POST", "/video/generate", keys["A"], json={"jobIds": ["wk-a1-j0", "wk-b1-j0"]})
    assert mixed.status_code == 202 and mixed.json()["unknownJobIds"] == ["wk-b1-j0"]
    assert [batch["batchId"] for batch in mixed.json()["batches"]] == ["wk-a1"]
    # a listing cancel and a job cancel by A's key leave B's batches of the listing alone
    assert serve.call("POST", "/video/cancel", keys["A"], json={"jobIds": ["wk-b1-j0"]}).json()["canceled"] == 0
    canceled = serve.call("POST", "/video/cancel", keys["A"], json={"listingId": "L-shared"})
    assert canceled.status_code == 200 and canceled.json()["batchIds"] == ["wk-a1"], canceled.text
    assert serve.call("GET", "/video/batches/wk-b1", ADMIN_KEY).json()["status"] == "pending"
    assert serve.call("GET", "/video/batches/wk-a1", keys["A"]).json()["status"] == "canceled"


def test_storage_keys_are_limited_to_the_workspace_prefix(serve, keys):
    own, other = "workspaces/wsA/photos/1.jpg", "workspaces/wsB/photos/1.jpg"
    files = {"file": ("1.jpg", b"\xff\xd8\xff not a jpeg", "image/jpeg")}
    assert serve.call("POST", "/storage/upload", keys["A-storage"], data={"key": own}, files=files).status_code == 200
    assert serve.call("POST", "/storage/upload", ADMIN_KEY, data={"key": other}, files=files).status_code == 200
    denied = serve.call("POST", "/storage/upload", keys["A"], data={"key": other}, files=files)
    assert assert_error(denied, 403, "STORAGE_KEY_OUTSIDE_WORKSPACE")["details"]["prefix"] == "workspaces/wsA/"
    for key in (other, "listings/L/1.jpg", "workspaces/wsA-evil/1.jpg"):
        assert_error(serve.call("POST", "/storage/signed-url", keys["A"], json={"key": key}), 403,
                     "STORAGE_KEY_OUTSIDE_WORKSPACE")
        assert_error(serve.call("DELETE", "/storage/delete", keys["A"], json={"key": key}), 403,
                     "STORAGE_KEY_OUTSIDE_WORKSPACE")
    assert serve.call("POST", "/storage/signed-url", keys["A"], json={"key": own}).status_code == 200
    assert serve.call("DELETE", "/storage/delete", ADMIN_KEY, json={"key": other}).json()["deleted"] is True
    assert serve.call("DELETE", "/storage/delete", keys["A"], json={"key": own}).json()["deleted"] is True
    # a batch of A's key may not name B's stored photos either
    uploaded = serve.call("POST", "/storage/upload", ADMIN_KEY, data={"key": other}, files=files).json()["url"]
    body = {"listingId": "L", "jobs": [{"imageUrl": uploaded}]}
    assert_error(serve.call("POST", "/video/batches", keys["A"], json=body), 403, "STORAGE_KEY_OUTSIDE_WORKSPACE")


def test_a_key_without_the_route_scope_is_refused(serve, keys, batches):
    read_only, storage_only = keys["A-read"], keys["A-storage"]
    assert serve.call("GET", "/video/batches/wk-a1", read_only).status_code == 200
    body = {"listingId": "L", "jobs": [{"imageUrl": "https://example.com/1.jpg"}]}
    refused = assert_error(serve.call("POST", "/video/batches", read_only, json=body), 403, "INSUFFICIENT_SCOPE")
    assert refused["details"]["requiredScope"] == "write"
    assert_error(serve.call("POST", "/video/generate", read_only, json={"batchId": "wk-a1"}), 403, "INSUFFICIENT_SCOPE")
    assert_error(serve.call("POST", "/storage/signed-url", read_only, json={"key": "workspaces/wsA/x.jpg"}), 403,
                 "INSUFFICIENT_SCOPE")
    assert_error(serve.call("GET", "/video/batches", storage_only), 403, "INSUFFICIENT_SCOPE")


def test_a_revoked_key_is_refused_and_unknown_keys_stay_invalid(serve, batches):
    key = serve.create_key("wsA", "read")
    assert serve.call("GET", "/video/batches/wk-a1", key).status_code == 200
    prefix = key.rsplit("_", 1)[0]
    done = serve.keys("revoke", prefix)
    assert done.returncode == 0 and prefix in done.stdout, done.stderr
    assert_error(serve.call("GET", "/video/batches/wk-a1", key), 401, "API_KEY_REVOKED")
    assert_error(serve.call("GET", "/video/batches/wk-a1", key, bearer=True), 401, "API_KEY_REVOKED")
    forged = key[:-4] + ("0000" if not key.endswith("0000") else "1111")  # the prefix is right, the secret not
    assert_error(serve.call("GET", "/video/batches/wk-a1", forged), 401, "INVALID_API_KEY")
    assert_error(serve.call("GET", "/video/batches/wk-a1", None), 401, "UNAUTHORIZED")
    assert serve.keys("revoke", "zck_000000000000").returncode == 1


def test_a_workspace_key_is_rate_limited_and_its_use_recorded(serve, batches):
    key = serve.create_key("wsA", "read")
    statuses, limited = [], None
    for _ in range(RATE_LIMIT + 5):
        response = serve.call("GET", "/video/batches/wk-a1", key)
        statuses.append(response.status_code)
        if response.status_code == 429:
            limited = response
            break
    assert limited is not None, statuses
    assert statuses.count(200) >= RATE_LIMIT - 1  # the burst (a token may come back meanwhile)
    assert_error(limited, 429, "RATE_LIMITED")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60 // RATE_LIMIT + 1
    # another key, and the admin key, are not held back
    assert serve.call("GET", "/video/batches/wk-a1", ADMIN_KEY).status_code == 200
    rows = {row["prefix"]: row for row in json.loads(serve.keys("list", "--json").stdout)}
    assert rows[key.rsplit("_", 1)[0]]["last_used_at"] is not None


def test_the_database_holds_digests_only(serve, keys):
    database = AppDatabase.connect(serve.env["DATABASE_URL"])
    try:
        import sqlalchemy as sa

        with database.db.engine.connect() as conn:
            dump = repr(conn.execute(sa.text("SELECT * FROM api_keys")).all())
    finally:
        database.db.dispose()
    assert all(key not in dump and key.rsplit("_", 1)[1] not in dump for key in keys.values())
