"""POST /video/batches (idempotent), POST /video/batches:bulk, GET /video/batches (keyset pages)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from zencourt_pipeline.db.schema import api_idempotency_keys, video_gen_batch, video_gen_jobs
from zencourt_pipeline.domain import MAX_JOBS_PER_BATCH
from zencourt_pipeline.service.app import create_app
from zencourt_pipeline_tests.fakes.server import ServerThread

from .conftest import API_KEY, assert_error, make_batch

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def batch_body(batch_id: str | None = "b-1", n_jobs: int = 2, **fields) -> dict:
    body = {
        "listingId": "L-9",
        "orientation": "vertical",
        "title": "12 Harbor View Lane",
        "jobs": [
            {
                "id": f"{batch_id}-{i}" if batch_id else None,
                "sortOrder": i,
                "roomName": ["Kitchen", "Living room", "Bath"][i % 3],
                "imageUrl": f"https://photos.example.com/{i}.jpg",
                "prompt": None,
                "durationSeconds": 5,
            }
            for i in range(n_jobs)
        ],
        **fields,
    }
    if batch_id is not None:
        body["id"] = batch_id
    else:
        for job in body["jobs"]:
            del job["id"]
    return body


def rows(db, table) -> int:
    with db.db.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()


# -- create ------------------------------------------------------------------------------------------
def test_create_answers_201_with_the_batch_as_the_status_route_shows_it(client, db, auth):
    response = client.post("/video/batches", json=batch_body(workspaceId="ws-1"), headers=auth)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created == client.get("/video/batches/b-1", headers=auth).json()
    assert (created["id"], created["listingId"], created["status"], created["orientation"]) == (
        "b-1", "L-9", "pending", "vertical",
    )  # fmt: skip
    assert [(j["id"], j["roomName"], j["status"]) for j in created["jobs"]] == [
        ("b-1-0", "Kitchen", "pending"), ("b-1-1", "Living room", "pending"),
    ]  # fmt: skip
    assert created["progress"]["total"] == 2
    row = db.batches.get_batch("b-1")
    assert (row.workspace_id, row.title, row.template) == ("ws-1", "12 Harbor View Lane", None)
    assert [job.image_url for job in db.batches.get_jobs("b-1")] == [
        "https://photos.example.com/0.jpg", "https://photos.example.com/1.jpg",
    ]  # fmt: skip
    # the intake sensor finds it as if the web app had inserted the rows
    assert [batch.id for batch in db.pickup.claim_pending_batches()] == ["b-1"]


def test_create_generates_ids_when_absent(client, db, auth):
    body = batch_body(None, n_jobs=3)
    body["jobs"][1]["id"] = "own-job"
    created = client.post("/video/batches", json=body, headers=auth).json()
    batch_id = created["id"]
    assert batch_id.startswith("b") and db.batches.get_batch(batch_id) is not None
    assert [job["id"] for job in created["jobs"]] == [f"{batch_id}-0", "own-job", f"{batch_id}-2"]
    again = client.post("/video/batches", json=body | {"jobs": [body["jobs"][0]]}, headers=auth).json()
    assert again["id"] != batch_id  # no key: another batch


def test_create_accepts_a_uri_of_the_configured_storage(client, db, auth, storage):
    body = batch_body()
    body["jobs"][0]["imageUrl"] = storage.uri("uploads/L-9/kitchen.jpg")
    assert client.post("/video/batches", json=body, headers=auth).status_code == 201
    assert db.batches.get_jobs("b-1")[0].image_url == storage.uri("uploads/L-9/kitchen.jpg")


def test_plain_http_only_for_allowed_private_hosts(settings, db, storage, verifier, auth):
    from fastapi.testclient import TestClient

    settings = settings.model_copy(update={"media_allowed_private_hosts": ["photos.internal"]})
    with TestClient(create_app(settings, db=db, storage=storage, verifier=verifier)) as client:
        body = batch_body()
        body["jobs"][0]["imageUrl"] = "http://photos.internal/0.jpg"
        assert client.post("/video/batches", json=body, headers=auth).status_code == 201
        body = batch_body("b-2")
        body["jobs"][0]["imageUrl"] = "http://elsewhere.example.com/0.jpg"
        assert_error(client.post("/video/batches", json=body, headers=auth), 400, "INVALID_INPUT")


def test_create_with_a_taken_id_is_a_conflict(client, db, auth):
    db.batches.insert_batch(*make_batch("b-1"))
    body = assert_error(client.post("/video/batches", json=batch_body(), headers=auth), 409, "BATCH_EXISTS")
    assert body["details"]["batchId"] == "b-1"
    taken = batch_body("b-2")
    taken["jobs"][1]["id"] = "b-1-0"  # a job of the other batch
    body = assert_error(client.post("/video/batches", json=taken, headers=auth), 409, "JOB_EXISTS")
    assert body["details"]["jobIds"] == ["b-1-0"]
    assert db.batches.get_batch("b-2") is None and [job.id for job in db.batches.get_jobs("b-1")] == ["b-1-0", "b-1-1"]


# -- idempotency ---------------------------------------------------------------------------------------
def test_idempotent_replay_answers_200_with_the_same_batch(client, db, auth):
    headers = {**auth, "Idempotency-Key": "create-b1-attempt"}
    body = batch_body(None)
    first = client.post("/video/batches", json=body, headers=headers)
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    # the same body (keys in another order) with the same key: the stored batch, nothing new
    reordered = dict(reversed(list(body.items())))
    replay = client.post("/video/batches", json=reordered, headers=headers)
    assert replay.status_code == 200, replay.text
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    assert (rows(db, video_gen_batch), rows(db, video_gen_jobs), rows(db, api_idempotency_keys)) == (1, 2, 1)


def test_same_key_with_another_body_is_a_conflict(client, db, auth):
    headers = {**auth, "Idempotency-Key": "k-1"}
    first = client.post("/video/batches", json=batch_body(None), headers=headers).json()
    other = batch_body(None, title="14 Harbor View Lane")
    body = assert_error(client.post("/video/batches", json=other, headers=headers), 409, "IDEMPOTENCY_KEY_REUSED")
    assert body["details"]["batchId"] == first["id"]
    assert rows(db, video_gen_batch) == 1
    # another key: a new batch
    assert client.post("/video/batches", json=other, headers={**auth, "Idempotency-Key": "k-2"}).status_code == 201


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "naïve"])
def test_malformed_idempotency_key(client, db, auth, key):
    headers = {**auth, "Idempotency-Key": key.encode("utf-8")}  # bytes: non-ASCII goes out as UTF-8
    body = assert_error(client.post("/video/batches", json=batch_body(), headers=headers), 400, "INVALID_INPUT")
    assert body["details"]["field"] == "Idempotency-Key"
    assert db.batches.get_batch("b-1") is None


def test_concurrent_creates_with_one_key_over_http_make_one_batch(settings, app_db, storage, verifier):
    """Real uvicorn on loopback, SQLite and PostgreSQL: one request creates, the others replay."""
    db = app_db
    app = create_app(settings, db=db, storage=storage, verifier=verifier)
    n = 8
    barrier = threading.Barrier(n)
    answers: list[httpx.Response] = []
    body = batch_body(None, n_jobs=3)  # generated ids: each request builds another batch id

    def post(client: httpx.Client) -> None:
        barrier.wait()
        answers.append(
            client.post("/video/batches", json=body, headers={"x-api-key": API_KEY, "Idempotency-Key": "race-1"})
        )

    with ServerThread(app) as server:
        clients = [httpx.Client(base_url=server.url, timeout=30) for _ in range(n)]
        threads = [threading.Thread(target=post, args=(client,)) for client in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for client in clients:
            client.close()
    assert sorted(answer.status_code for answer in answers) == [200] * (n - 1) + [201], [a.text for a in answers]
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert (rows(db, video_gen_batch), rows(db, video_gen_jobs), rows(db, api_idempotency_keys)) == (1, 3, 1)


# -- validation ------------------------------------------------------------------------------------------
def _without(name):
    def change(body):
        del body[name]
    return change


def _set(path, value):
    def change(body):
        target = body
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    return change


def _too_many_jobs(body):
    body["jobs"] = batch_body(n_jobs=MAX_JOBS_PER_BATCH + 1)["jobs"]


def _duplicate_job_ids(body):
    body["jobs"][1]["id"] = body["jobs"][0]["id"]


def _drop_image_url(body):
    del body["jobs"][0]["imageUrl"]


INVALID = [
    ("missing listingId", _without("listingId"), "MISSING_REQUIRED_FIELD", "listingId"),
    ("missing jobs", _without("jobs"), "MISSING_REQUIRED_FIELD", "jobs"),
    ("no jobs", _set(["jobs"], []), "INVALID_INPUT", "jobs"),
    ("too many jobs", _too_many_jobs, "INVALID_INPUT", "jobs"),
    ("bad orientation", _set(["orientation"], "square"), "INVALID_INPUT", "orientation"),
    ("duplicate job ids", _duplicate_job_ids, "INVALID_INPUT", "jobs"),
    ("plain http", _set(["jobs", 1, "imageUrl"], "http://photos.example.com/1.jpg"), "INVALID_INPUT", "jobs.1.imageUrl"),
    ("file url", _set(["jobs", 0, "imageUrl"], "file:///etc/passwd"), "INVALID_INPUT", "jobs.0.imageUrl"),
    ("another bucket", _set(["jobs", 0, "imageUrl"], "s3://someone-else/x.jpg"), "INVALID_INPUT", "jobs.0.imageUrl"),
    ("missing imageUrl", _drop_image_url, "MISSING_REQUIRED_FIELD", "jobs.0.imageUrl"),
    ("bad batch id", _set(["id"], "b/1"), "INVALID_INPUT", "id"),
    ("bad job id", _set(["jobs", 0, "id"], "x" * 65), "INVALID_INPUT", "jobs.0.id"),
    ("duration", _set(["jobs", 0, "durationSeconds"], 11), "INVALID_INPUT", "jobs.0.durationSeconds"),
    ("prompt", _set(["jobs", 0, "prompt"], "p" * 1001), "INVALID_INPUT", "jobs.0.prompt"),
    ("template", _set(["template"], "no-such-template"), "INVALID_INPUT", "template"),
    ("snake_case", _set(["listing_id"], "L-9"), "INVALID_INPUT", "listing_id"),
]


@pytest.mark.parametrize(("change", "code", "field"), [case[1:] for case in INVALID], ids=[c[0] for c in INVALID])
def test_validation_errors_name_the_field(client, db, auth, change, code, field):
    body = batch_body()
    change(body)
    error = assert_error(client.post("/video/batches", json=body, headers=auth), 400, code)
    assert field in [item["field"] for item in error["details"]["errors"]], error
    assert field in error["message"]
    assert rows(db, video_gen_batch) == 0


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]"])
def test_body_must_be_a_json_object(client, auth, raw):
    response = client.post("/video/batches", content=raw, headers={**auth, "content-type": "application/json"})
    assert response.status_code == 400 and response.json()["success"] is False


# -- bulk --------------------------------------------------------------------------------------------------
def test_bulk_accepts_and_refuses_each_batch_on_its_own(client, db, auth):
    db.batches.insert_batch(*make_batch("taken"))
    no_listing = batch_body("bad-1")
    del no_listing["listingId"]
    items = [batch_body("ok-1"), no_listing, batch_body("taken"), "not an object", batch_body("ok-2", n_jobs=1)]
    response = client.post("/video/batches:bulk", json={"batches": items}, headers=auth)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["index"], r["status"]) for r in results] == [(0, 201), (1, 400), (2, 409), (3, 400), (4, 201)]
    assert results[0]["batch"] == client.get("/video/batches/ok-1", headers=auth).json()
    assert results[4]["batch"]["id"] == "ok-2" and len(results[4]["batch"]["jobs"]) == 1
    assert results[1]["error"]["code"] == "MISSING_REQUIRED_FIELD"
    assert results[1]["error"]["details"]["errors"][0]["field"] == "listingId"
    assert results[2]["error"]["code"] == "BATCH_EXISTS"
    assert all(r["batch"] is None for r in results if r["status"] != 201)
    assert db.batches.get_batch("bad-1") is None
    assert sorted(batch.id for batch in db.pickup.claim_pending_batches()) == ["ok-1", "ok-2", "taken"]


@pytest.mark.parametrize(
    ("payload", "code"),
    [({}, "MISSING_REQUIRED_FIELD"), ({"batches": []}, "INVALID_INPUT"), ({"batches": {}}, "INVALID_INPUT"),
     ({"batches": [batch_body(f"n{i}", n_jobs=1) for i in range(101)]}, "INVALID_INPUT")],
)  # fmt: skip
def test_bulk_refuses_a_malformed_envelope(client, db, auth, payload, code):
    assert_error(client.post("/video/batches:bulk", json=payload, headers=auth), 400, code)
    assert rows(db, video_gen_batch) == 0


def test_bulk_takes_no_idempotency_key(client, db, auth):
    headers = {**auth, "Idempotency-Key": "k"}
    assert_error(client.post("/video/batches:bulk", json={"batches": [batch_body()]}, headers=headers), 400, "INVALID_INPUT")
    assert rows(db, video_gen_batch) == 0


# -- list ----------------------------------------------------------------------------------------------------
def seven(db) -> None:
    for i in range(7):
        listing = "L-even" if i % 2 == 0 else "L-odd"
        created = T0 + timedelta(seconds=i // 2 * 10)  # pairs share a time: the id breaks the tie
        db.batches.insert_batch(*make_batch(f"s{i}", n_jobs=i % 3, listing_id=listing, created_at=created))


def walk(client, auth, **params) -> list[list[str]]:
    pages, cursor = [], None
    while len(pages) < 20:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get("/video/batches", params=query, headers=auth)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([batch["id"] for batch in body["batches"]])
        cursor = body["nextCursor"]
        if cursor is None:
            return pages
    raise AssertionError("the pages never end")


def test_list_walks_every_batch_once_newest_first(client, db, auth):
    seven(db)
    pages = walk(client, auth, limit=3)
    assert pages == [["s6", "s5", "s4"], ["s3", "s2", "s1"], ["s0"]]
    assert walk(client, auth) == [["s6", "s5", "s4", "s3", "s2", "s1", "s0"]]  # default limit 50


def test_list_items_are_summaries(client, db, auth):
    seven(db)
    db.batches.start_batch("s5")
    body = client.get("/video/batches", params={"limit": 2}, headers=auth).json()
    assert body["success"] is True and isinstance(body["nextCursor"], str)
    s6, s5 = body["batches"]
    assert s5["status"] == "processing" and s5["listingId"] == "L-odd"
    assert s5["progress"] == {"total": 2, "completed": 0, "failed": 0, "canceled": 0, "processing": 0,
                              "pending": 2, "percent": 0}  # fmt: skip
    assert s6["progress"]["total"] == 0 and s6["createdAt"] == "2026-03-01T12:00:30Z"
    assert "jobs" not in s6 and "spend" not in s6


def test_list_filters(client, db, auth):
    seven(db)
    db.batches.start_batch("s4")
    db.batches.start_batch("s1")
    assert sum(walk(client, auth, listingId="L-odd", limit=2), []) == ["s5", "s3", "s1"]
    assert sum(walk(client, auth, status="processing", limit=1), []) == ["s4", "s1"]
    assert sum(walk(client, auth, listingId="L-even", status="pending"), []) == ["s6", "s2", "s0"]
    assert sum(walk(client, auth, since="2026-03-01T12:00:20Z", limit=2), []) == ["s6", "s5", "s4"]
    assert sum(walk(client, auth, since="2026-03-01T13:00:20+01:00"), []) == ["s6", "s5", "s4"]
    assert sum(walk(client, auth, listingId="", status=""), []) == [f"s{i}" for i in reversed(range(7))]
    assert walk(client, auth, listingId="nobody") == [[]]


def test_list_sees_created_batches_newest_first(client, db, auth):
    db.batches.insert_batch(*make_batch("old", created_at=T0))
    for i in range(3):
        assert client.post("/video/batches", json=batch_body(f"new{i}"), headers=auth).status_code == 201
    assert sum(walk(client, auth, limit=2), []) == ["new2", "new1", "new0", "old"]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"cursor": "garbage!"}, "cursor"), ({"cursor": "WyJ4IiwiYiJd"}, "cursor"), ({"cursor": "c" * 2000}, "cursor"),
     ({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"), ({"limit": "ten"}, "limit"),
     ({"status": "done"}, "status"), ({"since": "yesterday"}, "since")],
)  # fmt: skip
def test_list_refuses_bad_parameters(client, db, auth, params, field):
    seven(db)
    body = assert_error(client.get("/video/batches", params=params, headers=auth), 400, "INVALID_INPUT")
    assert body["details"]["field"] == field


def test_list_limit_bounds_are_inclusive(client, db, auth):
    seven(db)
    assert len(client.get("/video/batches", params={"limit": 200}, headers=auth).json()["batches"]) == 7
    assert len(client.get("/video/batches", params={"limit": 1}, headers=auth).json()["batches"]) == 1


def test_create_replay_and_list_on_sqlite_and_postgres(app_db, settings, storage, verifier, auth):
    """The routes over the application database of either dialect (the fixture's own)."""
    from fastapi.testclient import TestClient

    with TestClient(create_app(settings, db=app_db, storage=storage, verifier=verifier)) as client:
        app_db.batches.insert_batch(*make_batch("direct", created_at=T0))  # the web app's own insert
        headers = {**auth, "Idempotency-Key": "pg-1"}
        created = client.post("/video/batches", json=batch_body("api-1"), headers=headers)
        assert created.status_code == 201, created.text
        assert created.json() == client.get("/video/batches/api-1", headers=auth).json()
        replay = client.post("/video/batches", json=batch_body("api-1"), headers=headers)
        assert (replay.status_code, replay.json()) == (200, created.json())
        assert_error(client.post("/video/batches", json=batch_body("api-2"), headers=headers), 409, "IDEMPOTENCY_KEY_REUSED")
        assert client.post("/video/batches", json=batch_body("api-3"), headers=auth).status_code == 201
        assert sum(walk(client, auth, limit=1), []) == ["api-3", "api-1", "direct"]
        assert sum(walk(client, auth, since=created.json()["createdAt"]), []) == ["api-3", "api-1"]
        assert_error(client.get("/video/batches", params={"cursor": "WyJ4IiwiYiJd"}, headers=auth), 400, "INVALID_INPUT")


# -- facts, captions and transitions (issue 14 point 2) ----------------------------------------------------
FACTS = {"address": "12 Oak Lane", "price": 1250000, "beds": 3, "baths": 2.5, "sqft": 1850, "agentName": "Jane Doe"}


def test_create_takes_facts_and_job_captions_and_transitions(client, db, auth):
    body = batch_body(template="showcase", facts=FACTS)
    body["jobs"][0].update(caption="{{beds}}-bed kitchen", transition="circleopen")
    response = client.post("/video/batches", json=body, headers=auth)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["facts"] == FACTS
    assert [(j["caption"], j["transition"]) for j in created["jobs"]] == [("{{beds}}-bed kitchen", "circleopen"), (None, None)]
    assert created == client.get("/video/batches/b-1", headers=auth).json()
    row = db.batches.get_batch("b-1")
    assert json.loads(row.facts) == {**{k: v for k, v in FACTS.items() if k != "agentName"}, "agent_name": "Jane Doe"}
    assert db.batches.get_job("b-1-0").transition == "circleopen"
    plain = client.post("/video/batches", json=batch_body("b-2"), headers=auth).json()
    assert plain["facts"] is None and plain["jobs"][0]["caption"] is None


TEXT_PROBLEMS = [
    ("unknown fact", lambda b: b.update(facts={"bedrooms": 3}), "facts.bedrooms", "facts.bedrooms"),
    ("typed fact", lambda b: b.update(facts={"sqft": "big"}), "facts.sqft", "facts.sqft"),
    ("transition", lambda b: b["jobs"][0].update(transition="spin"), "jobs.0.transition", "jobs.0.transition"),
    ("unknown merge field", lambda b: b.update(title="{{zip}} sold"), "{{zip}}", "title"),
    ("missing merge value", lambda b: b["jobs"][1].update(caption="{{price}}"), "{{price}}", "jobs.1.caption"),
    ("caption that cannot fit", lambda b: b["jobs"][1].update(caption="W" * 200), "does not fit", "jobs.1.caption"),
    ("room name that cannot fit", lambda b: b["jobs"][0].update(roomName="W" * 200), "does not fit", "jobs.0.roomName"),
    ("fact that cannot fit", lambda b: b.update(template="showcase", facts={"address": "WWWWWWWWW " * 19}),
     "({{address}}) does not fit", "facts.address"),
    ("agent name that cannot fit", lambda b: b.update(template="luxury", facts={"agentName": "W" * 120}),
     "({{agent_name}}) does not fit", "facts.agentName"),
    # issue 15: the outputs asked for and the jobs' focus points
    ("unknown output shape", lambda b: b.update(outputs=[{"shape": "round"}]), "outputs.0.shape: Input should be 'landscape'", "outputs.0.shape"),
    ("output size of another shape", lambda b: b.update(outputs=[{"shape": "square", "width": 1920, "height": 1080}]),
     "a square output is 1080x1080", "outputs.0"),
    ("no output", lambda b: b.update(outputs=[]), "at least 1", "outputs"),
    ("an output twice", lambda b: b.update(outputs=[{"shape": "square"}, {"shape": "square", "branded": True}]),
     "square-1080x1080-branded twice", "outputs"),
    ("focus outside the frame", lambda b: b["jobs"][0].update(focusX=1.5), "less than or equal to 1", "jobs.0.focusX"),
]


def test_create_takes_the_outputs_and_focus_points_and_the_status_lists_what_was_composed(client, db, auth):
    from zencourt_pipeline.db.outputs import OutputRow, OutputStatus
    from zencourt_pipeline.db.records import BatchStatus
    from zencourt_pipeline.domain import OutputShape, OutputSpec, parse_outputs

    asked = [{"shape": "square", "branded": False}, {"shape": "vertical", "width": 720, "height": 1280}]
    body = batch_body(outputs=asked)
    body["jobs"][0].update(focusX=0.2, focusY=0.8)
    response = client.post("/video/batches", json=body, headers=auth)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["outputs"] == []  # nothing composed yet
    assert [(j["focusX"], j["focusY"]) for j in created["jobs"]] == [(0.2, 0.8), (None, None)]
    assert [s.name for s in parse_outputs(db.batches.get_batch("b-1").outputs)] == [
        "square-1080x1080-unbranded", "vertical-720x1280-branded",
    ]  # fmt: skip
    assert db.batches.get_batch(client.post("/video/batches", json=batch_body("b-2"), headers=auth).json()["id"]).outputs is None
    stored = "s3://bucket/batches/b-1/video/listing-vertical-720x1280-branded-default.mp4"
    db.batches.finish_batch("b-1", BatchStatus.COMPLETED, video_url=stored, outputs=[
        OutputRow(OutputSpec(shape=OutputShape.VERTICAL, width=720, height=1280), OutputStatus.COMPLETED, primary=True,
                  template="default", video_uri=stored, duration_s=9.5, size_bytes=123, source_resolution="720x1280"),
        OutputRow(OutputSpec(shape=OutputShape.SQUARE, branded=False), OutputStatus.FAILED, error="COMPOSITION_FAILED: x"),
    ])  # fmt: skip
    status = client.get("/video/batches/b-1", headers=auth).json()
    assert [(o["shape"], o["width"], o["height"], o["branded"], o["primary"], o["status"]) for o in status["outputs"]] == [
        ("vertical", 720, 1280, True, True, "completed"), ("square", 1080, 1080, False, False, "failed"),
    ]  # fmt: skip
    first = status["outputs"][0]
    assert (first["videoUri"], first["videoUrl"], first["durationSeconds"], first["bytes"]) == (
        stored, status["videoUrl"], 9.5, 123,
    )  # fmt: skip
    assert status["outputs"][1]["error"] == "COMPOSITION_FAILED: x" and status["outputs"][1]["videoUrl"] is None
    # the clips' size the output was made from (migration 0015); a failed output has none
    assert [o["sourceResolution"] for o in status["outputs"]] == ["720x1280", None]
    assert list(first) == [
        "shape", "width", "height", "branded", "primary", "status", "template", "videoUrl", "thumbnailUrl", "videoUri",
        "thumbnailUri", "urlsExpireAt", "durationSeconds", "bytes", "sourceResolution", "error",
    ]  # fmt: skip
    listed = {b["id"]: b for b in client.get("/video/batches", headers=auth).json()["batches"]}
    assert listed["b-1"]["outputs"] == status["outputs"] and listed["b-2"]["outputs"] == []


@pytest.mark.parametrize(("change", "named", "field"), [c[1:] for c in TEXT_PROBLEMS], ids=[c[0] for c in TEXT_PROBLEMS])
def test_texts_that_cannot_render_are_refused_naming_the_field(client, db, auth, change, named, field):
    body = batch_body()
    change(body)
    error = assert_error(client.post("/video/batches", json=body, headers=auth), 400, "INVALID_INPUT")
    assert named in error["message"], error
    assert field in [item["field"] for item in error["details"]["errors"]], error
    assert rows(db, video_gen_batch) == 0


def test_a_workspace_may_name_its_own_template(client, db, auth):

    db.templates.put_template("ws-1", {"name": "brand-a", "texts": [
        {"role": "lower_third", "text": "{{price}}", "position": "lower-right"}]})  # fmt: skip
    body = batch_body(workspaceId="ws-1", template="brand-a", facts={"price": "Offers over $900k"})
    response = client.post("/video/batches", json=body, headers=auth)
    assert response.status_code == 201, response.text
    assert response.json()["template"] == "brand-a"
    error = assert_error(client.post("/video/batches", json=batch_body("b-2", template="brand-a"), headers=auth), 400, "INVALID_INPUT")
    assert "template" in [item["field"] for item in error["details"]["errors"]]
