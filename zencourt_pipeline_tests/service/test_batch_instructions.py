"""POST /video/batches with custom instructions and a callback URL (issue 14 point 6): validated
with a clear error naming the field, stored on the batch, shown by the status route."""

from __future__ import annotations

import pytest

from zencourt_pipeline.db.schema import video_gen_batch
from zencourt_pipeline.domain import MAX_INSTRUCTIONS_CHARS

from .conftest import assert_error
from .test_batches_api import batch_body, rows

INSTRUCTIONS = "Keep the camera low and slow; no people; warm evening light."


def test_create_takes_instructions_and_a_callback_url(client, db, auth):
    body = batch_body(instructions=INSTRUCTIONS, callbackUrl="https://crm.example.com/hooks/zc?token=abc")
    response = client.post("/video/batches", json=body, headers=auth)
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["instructions"], created["callbackUrl"]) == (INSTRUCTIONS, "https://crm.example.com/hooks/zc?token=abc")
    assert created == client.get("/video/batches/b-1", headers=auth).json()
    stored = db.batches.get_batch("b-1")
    assert (stored.instructions, stored.callback_url) == (INSTRUCTIONS, "https://crm.example.com/hooks/zc?token=abc")
    plain = client.post("/video/batches", json=batch_body("b-2"), headers=auth).json()
    assert plain["instructions"] is None and plain["callbackUrl"] is None


def _long_prompt(body):
    body["instructions"] = "i" * 400
    body["jobs"][1]["prompt"] = "p" * 700


INVALID = [
    ("instructions too long", lambda b: b.update(instructions="x" * (MAX_INSTRUCTIONS_CHARS + 1)), "instructions",
     "at most 500 characters"),
    ("blank instructions", lambda b: b.update(instructions="   "), "instructions", "blank"),
    ("empty instructions", lambda b: b.update(instructions=""), "instructions", "at least 1 character"),
    ("prompt with instructions", _long_prompt, "jobs.1.prompt", "with the batch's instructions has 1102 characters"),
    ("callback over http", lambda b: b.update(callbackUrl="http://crm.example.com/h"), "callbackUrl", "use https"),
    ("callback to loopback", lambda b: b.update(callbackUrl="https://127.0.0.1/h"), "callbackUrl", "loopback"),
    ("callback to metadata", lambda b: b.update(callbackUrl="https://169.254.169.254/x"), "callbackUrl", "link-local"),
    ("callback to localhost", lambda b: b.update(callbackUrl="https://localhost:8080/h"), "callbackUrl", "loopback"),
    ("callback not a URL", lambda b: b.update(callbackUrl="crm"), "callbackUrl", "unsupported URL"),
]


@pytest.mark.parametrize(("change", "field", "why"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_bad_instructions_and_callbacks_are_refused_naming_the_field(client, db, auth, change, field, why):
    body = batch_body()
    change(body)
    error = assert_error(client.post("/video/batches", json=body, headers=auth), 400, "INVALID_INPUT")
    assert field in [item["field"] for item in error["details"]["errors"]], error
    assert why in error["message"], error
    assert rows(db, video_gen_batch) == 0
