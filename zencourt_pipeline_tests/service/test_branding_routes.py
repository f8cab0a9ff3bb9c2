"""A workspace's branding profile over HTTP (`/video/workspaces/{workspaceId}/branding`, TestClient,
SQLite) and a batch's `branding` override in `POST /video/batches`: validated (400 naming the field,
nothing written), a workspace key reaches its own workspace only, the override stored on the batch."""

from __future__ import annotations

import base64
import io
import json

from PIL import Image

from zencourt_pipeline.domain import ApiScope

from .conftest import assert_error


def _png() -> str:
    buffer = io.BytesIO()
    Image.new("RGBA", (40, 20), (0, 0, 255, 255)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


PROFILE = {"agentName": "Jane Doe", "brokerage": "Acme Realty", "phone": "555-0100", "website": "acme.example",
           "primaryColor": "#0b4f4a", "logo": _png()}  # fmt: skip
URL = "/video/branding/ws1"


def test_put_and_get_a_workspace_profile(client, db, auth):
    assert_error(client.get(URL, headers=auth), 404, "NOT_FOUND")
    put = client.put(URL, headers=auth, json=PROFILE)
    assert put.status_code == 200, put.text
    fields = ["agentName", "brokerage", "phone", "email", "website", "logo", "primaryColor", "textColor"]
    expected = {**dict.fromkeys(fields), **PROFILE, "primaryColor": "#0B4F4A"}
    assert put.json() == {"success": True, "workspaceId": "ws1", "branding": expected}
    assert client.get(URL, headers=auth).json()["branding"]["agentName"] == "Jane Doe"
    assert db.branding.workspace_branding_profile("ws1").brokerage == "Acme Realty"
    for body, field in (({**PROFILE, "email": "jane"}, "email"), ({**PROFILE, "logo": "bm90IGFuIGltYWdl"}, "logo"),
                        ({**PROFILE, "fax": "1"}, "fax")):  # fmt: skip
        refused = assert_error(client.put(URL, headers=auth, json=body), 400, "INVALID_INPUT")
        assert field in json.dumps(refused["details"]), refused
    assert db.branding.workspace_branding_profile("ws1").email is None  # nothing written
    cleared = client.put(URL, headers=auth, json={}).json()["branding"]  # `{}` clears it
    assert cleared == dict.fromkeys(fields)


def test_a_workspace_key_reaches_its_own_profile_only(client, db):
    _, key = db.api_keys.create_key("ws1", [ApiScope.READ, ApiScope.WRITE])
    _, reader = db.api_keys.create_key("ws1", [ApiScope.READ])
    headers = {"x-api-key": key}
    assert client.put(URL, headers=headers, json=PROFILE).status_code == 200
    assert_error(client.put("/video/branding/ws2", headers=headers, json=PROFILE), 403, "WORKSPACE_MISMATCH")
    assert_error(client.get("/video/branding/ws2", headers=headers), 403, "WORKSPACE_MISMATCH")
    assert client.get(URL, headers={"x-api-key": reader}).status_code == 200
    assert_error(client.put(URL, headers={"x-api-key": reader}, json=PROFILE), 403, "INSUFFICIENT_SCOPE")


def test_a_batch_carries_its_override_of_the_workspace_profile(client, db, auth):
    body = {"listingId": "l-1", "workspaceId": "ws1", "jobs": [{"imageUrl": "https://example.com/a.jpg"}],
            "branding": {"agentName": "Sam Roe", "phone": "555-0199"}}  # fmt: skip
    created = client.post("/video/batches", headers=auth, json=body)
    assert created.status_code == 201, created.text
    stored = db.batches.get_batch(created.json()["id"]).branding
    assert json.loads(stored) == {"agent_name": "Sam Roe", "phone": "555-0199"}
    client.put(URL, headers=auth, json=PROFILE)
    merged = db.branding.batch_branding("ws1", stored)
    assert (merged.agent_name, merged.phone, merged.brokerage) == ("Sam Roe", "555-0199", "Acme Realty")
    refused = assert_error(client.post("/video/batches", headers=auth, json={**body, "branding": {"phone": "call"}}), 400, "INVALID_INPUT")
    assert "branding.phone" in json.dumps(refused["details"])
