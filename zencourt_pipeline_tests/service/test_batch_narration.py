"""POST /video/batches with a narration (issue 14 point 4): `narrationUrl` (https or a storage URI,
checked as an `imageUrl` is; the file itself is fetched and checked at intake) and
`narrationIdentifiesAgent`, stored on the batch and shown by the status route."""

from __future__ import annotations

import pytest

from zencourt_pipeline.db.schema import video_gen_batch

from .conftest import assert_error
from .test_batches_api import batch_body, rows


def test_create_takes_a_narration_and_whether_it_names_the_agent(client, db, auth):
    body = batch_body(narrationUrl="https://voice.example.com/tour.mp3", narrationIdentifiesAgent=False)
    response = client.post("/video/batches", json=body, headers=auth)
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["narrationUrl"], created["narrationIdentifiesAgent"]) == ("https://voice.example.com/tour.mp3", False)
    assert created == client.get("/video/batches/b-1", headers=auth).json()
    stored = db.batches.get_batch("b-1")
    assert (stored.narration_url, stored.narration_identifies_agent, stored.narration_key) == (
        "https://voice.example.com/tour.mp3", False, None,
    )
    plain = client.post("/video/batches", json=batch_body("b-2"), headers=auth).json()
    assert plain["narrationUrl"] is None and plain["narrationIdentifiesAgent"] is None
    assert db.batches.get_batch("b-2").narration_names_agent  # unset: it names the agent (the MLS-safe side)


INVALID = [
    ("over http", {"narrationUrl": "http://voice.example.com/v.mp3"}, "narrationUrl", "use https"),
    ("ftp", {"narrationUrl": "ftp://voice.example.com/v.mp3"}, "narrationUrl", "unsupported URL"),
    ("not a flag", {"narrationIdentifiesAgent": "maybe"}, "narrationIdentifiesAgent", "boolean"),
]


@pytest.mark.parametrize(("change", "field", "why"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_bad_narration_fields_are_refused_naming_the_field(client, db, auth, change, field, why):
    body = batch_body(**change)
    error = assert_error(client.post("/video/batches", json=body, headers=auth), 400, "INVALID_INPUT")
    assert field in [item["field"] for item in error["details"]["errors"]], error
    assert why in error["message"], error
    assert rows(db, video_gen_batch) == 0
