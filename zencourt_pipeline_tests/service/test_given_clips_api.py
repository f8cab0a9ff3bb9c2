"""POST /video/batches with given clips (issue 14 point 5): a job names a clip (`clipUrl`, storage
URI or https URL) with in/out points in place of a photo; mixed batches; refusals name the field.
As for `imageUrl`, nothing is fetched here: an address the fetch policy refuses fails the job at intake."""

from __future__ import annotations

import pytest

from zencourt_pipeline.db.schema import video_gen_batch

from .conftest import assert_error
from .test_batches_api import batch_body, rows


def test_create_takes_given_clips_beside_photos(client, db, auth, storage):
    body = batch_body(n_jobs=3)
    body["jobs"][0] = {"id": "b-1-0", "clipUrl": "https://cdn.example.com/porch.mp4", "clipInSeconds": 1.5,
                       "clipOutSeconds": 9.0, "caption": "The porch"}  # fmt: skip
    body["jobs"][2].update(clipUrl=storage.uri("uploads/b/kitchen.webm"), imageUrl="https://photos.example.com/poster.jpg")
    response = client.post("/video/batches", json=body, headers=auth)
    assert response.status_code == 201, response.text
    jobs = response.json()["jobs"]
    assert [(j["clipUrl"], j["clipInSeconds"], j["clipOutSeconds"]) for j in jobs] == [
        ("https://cdn.example.com/porch.mp4", 1.5, 9.0), (None, None, None), (storage.uri("uploads/b/kitchen.webm"), None, None),
    ]  # fmt: skip
    first, photo, third = db.batches.get_jobs("b-1")
    assert (first.image_url, first.seconds, first.duration_seconds) == ("https://cdn.example.com/porch.mp4", 7.5, 8)
    assert (photo.clip_url, photo.seconds) == (None, 5.0)
    assert (third.image_url, third.seconds) == ("https://photos.example.com/poster.jpg", 5.0)


@pytest.mark.parametrize(
    ("job", "code", "field", "why"),
    [
        ({"clipUrl": "http://cdn.example.com/a.mp4"}, "INVALID_INPUT", "jobs.0.clipUrl", "use https"),
        ({"clipUrl": "s3://someone-else/a.mp4"}, "INVALID_INPUT", "jobs.0.clipUrl", None),
        ({"clipUrl": "https://c.example.com/a.mp4", "clipInSeconds": 4, "clipOutSeconds": 3}, "INVALID_INPUT", "jobs.0",
         "clipOutSeconds 3.0 s is not after its in point 4.0 s"),
        ({"clipUrl": "https://c.example.com/a.mp4", "clipOutSeconds": 45}, "INVALID_INPUT", "jobs.0", "span 45 s is outside"),
        ({"clipUrl": "https://c.example.com/a.mp4", "clipInSeconds": -1}, "INVALID_INPUT", "jobs.0.clipInSeconds", None),
        ({"imageUrl": "https://p.example.com/a.jpg", "clipInSeconds": 1}, "INVALID_INPUT", "jobs.0", "need a clipUrl"),
        ({"roomName": "Kitchen"}, "MISSING_REQUIRED_FIELD", "jobs.0.imageUrl", None),
    ],
    ids=["http", "another bucket", "reversed", "too long a span", "negative in", "points without clip",
         "neither"],
)
def test_bad_given_clips_are_refused_naming_the_field(client, db, auth, job, code, field, why):
    body = batch_body()
    body["jobs"][0] = job
    del body["jobs"][1]["id"]
    error = assert_error(client.post("/video/batches", json=body, headers=auth), 400, code)
    assert field in [item["field"] for item in error["details"]["errors"]], error
    assert why is None or why in error["message"], error
    assert rows(db, video_gen_batch) == 0
