"""POST /video/generate, POST /video/cancel, GET /video/batches/{id}."""

from __future__ import annotations

from fastapi.testclient import TestClient

from zencourt_pipeline.service.app import create_app

from .conftest import CancelRecorder, assert_error, make_batch


def test_generate_requests_pickup_of_a_pending_batch(client, db, auth):
    db.batches.insert_batch(*make_batch("g1"))
    assert db.pickup.claim_pending_batches()  # the sensor saw it once
    assert db.pickup.claim_pending_batches() == []
    response = client.post("/video/generate", json={"batchId": "g1"}, headers=auth)
    assert response.status_code == 202 and "idempotent-replayed" not in response.headers
    assert response.json() == {
        "success": True, "batchId": "g1", "status": "pending",
        "batches": [{"batchId": "g1", "status": "pending", "jobIds": ["g1-0", "g1-1"], "pickupRequested": True}],
        "unknownJobIds": [],
    }  # fmt: skip
    assert [b.id for b in db.pickup.claim_pending_batches()] == ["g1"]  # claimable again now


def test_generate_unknown_batch_is_404_and_a_processing_one_is_a_replay(client, db, auth):
    body = assert_error(client.post("/video/generate", json={"batchId": "nope"}, headers=auth), 404, "NOT_FOUND")
    assert body["details"] == {"batchId": "nope"}
    db.batches.insert_batch(*make_batch("g2"))
    db.batches.start_batch("g2")
    response = client.post("/video/generate", json={"batchId": "g2"}, headers=auth)
    assert response.status_code == 200 and response.headers["idempotent-replayed"] == "true"
    assert response.json()["status"] == "processing"
    assert response.json()["batches"][0]["pickupRequested"] is False
    assert db.batches.get_batch("g2").status == "processing"


def test_generate_by_job_ids_of_two_batches_with_an_unknown_id(client, db, auth):
    db.batches.insert_batch(*make_batch("ga", n_jobs=2))
    db.batches.insert_batch(*make_batch("gb", n_jobs=3))
    db.pickup.claim_pending_batches()
    response = client.post(
        "/video/generate", json={"jobIds": ["gb-2", "ga-0", "nobody", "gb-0", "ga-0"]}, headers=auth
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["batchId"], body["status"]) == ("gb", "pending")
    assert body["batches"] == [
        {"batchId": "gb", "status": "pending", "jobIds": ["gb-2", "gb-0"], "pickupRequested": True},
        {"batchId": "ga", "status": "pending", "jobIds": ["ga-0"], "pickupRequested": True},
    ]
    assert body["unknownJobIds"] == ["nobody"]
    assert sorted(b.id for b in db.pickup.claim_pending_batches()) == ["ga", "gb"]


def test_generate_mixes_a_pending_and_a_finished_batch_and_restarts_nothing(client, db, auth):
    db.batches.insert_batch(*make_batch("gp", n_jobs=1))
    db.batches.insert_batch(*make_batch("gf", n_jobs=2))
    db.batches.start_batch("gf")
    assert db.batches.fail_job("gf-0", "INVALID_INPUT", "bad photo")
    db.cancels.cancel(job_ids=["gf-1"])
    assert db.batches.get_batch("gf").status == "canceled"
    mixed = client.post("/video/generate", json={"jobIds": ["gf-0", "gp-0"]}, headers=auth)
    assert mixed.status_code == 202 and "idempotent-replayed" not in mixed.headers
    assert [(b["batchId"], b["status"], b["pickupRequested"]) for b in mixed.json()["batches"]] == [
        ("gf", "canceled", False), ("gp", "pending", True),
    ]  # fmt: skip
    finished = client.post("/video/generate", json={"jobIds": ["gf-0", "gf-1"]}, headers=auth)
    assert finished.status_code == 200 and finished.headers["idempotent-replayed"] == "true"
    assert finished.json()["status"] == "canceled"
    assert [(j.id, j.status) for j in db.batches.get_jobs("gf")] == [("gf-0", "failed"), ("gf-1", "canceled")]
    assert db.batches.get_batch("gf").status == "canceled"


def test_generate_by_listing_and_nothing_known(client, db, auth):
    db.batches.insert_batch(*make_batch("gl1", n_jobs=1, listing_id="L-9"))
    db.batches.insert_batch(*make_batch("gl2", n_jobs=1, listing_id="L-9"))
    db.batches.start_batch("gl1")
    response = client.post("/video/generate", json={"listingId": "L-9"}, headers=auth)
    assert response.status_code == 202
    assert {(b["batchId"], b["pickupRequested"]) for b in response.json()["batches"]} == {
        ("gl1", False), ("gl2", True)
    }
    body = assert_error(client.post("/video/generate", json={"listingId": "L-0"}, headers=auth), 404, "NOT_FOUND")
    assert body["details"] == {"listingId": "L-0"}
    body = assert_error(client.post("/video/generate", json={"jobIds": ["x1", "x2"]}, headers=auth), 404, "NOT_FOUND")
    assert body["details"] == {"unknownJobIds": ["x1", "x2"]}


def test_generate_is_validated_like_cancel(client, auth):
    for route in ("/video/generate", "/video/cancel"):
        body = assert_error(client.post(route, json={}, headers=auth), 400, "MISSING_REQUIRED_FIELD")
        assert [e["field"] for e in body["details"]["errors"]] == ["batchId", "listingId", "jobIds"]
        assert_error(client.post(route, json={"batchId": "a", "jobIds": ["b"]}, headers=auth), 400, "INVALID_INPUT")
        assert_error(client.post(route, json={"jobIds": []}, headers=auth), 400, "INVALID_INPUT")
        assert_error(client.post(route, json={"jobIds": ["a,b"]}, headers=auth), 400, "INVALID_INPUT")
        assert_error(client.post(route, json={"jobIds": ["a"] * 1001}, headers=auth), 400, "INVALID_INPUT")


def test_cancel_by_batch(client, db, auth, canceller):
    db.batches.insert_batch(*make_batch("c1", n_jobs=3))
    db.batches.insert_batch(*make_batch("c2", n_jobs=1))
    row = db.ledger.begin_task("c1-0", "c1", "fal")
    db.ledger.task_submitted(row, "c1-0", "fal", "fal-task-1")
    db.batches.complete_job("c1-2", "file:///clip.mp4", None)

    response = client.post("/video/cancel", json={"batchId": "c1"}, headers=auth)
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and body["canceled"] == 2
    assert sorted(body["jobIds"]) == ["c1-0", "c1-1"]
    assert body["batchIds"] == ["c1"]
    assert db.batches.get_batch("c1").status == "canceled"
    assert db.batches.get_batch("c2").status == "pending"

    ((jobs, batch_ids),) = canceller.calls
    assert batch_ids == ["c1"]
    by_id = {job.id: job for job in jobs}
    assert by_id["c1-0"].provider == "fal" and by_id["c1-0"].provider_task_id == "fal-task-1"

    # again: nothing left to cancel
    again = client.post("/video/cancel", json={"batchId": "c1"}, headers=auth).json()
    assert again["canceled"] == 0 and again["jobIds"] == []


def test_cancel_by_listing(client, db, auth, canceller):
    db.batches.insert_batch(*make_batch("l1", listing_id="listing-x"))
    db.batches.insert_batch(*make_batch("l2", n_jobs=1, listing_id="listing-x"))
    db.batches.insert_batch(*make_batch("l3", listing_id="listing-y"))
    body = client.post("/video/cancel", json={"listingId": "listing-x"}, headers=auth).json()
    assert body["canceled"] == 3 and body["batchIds"] == ["l1", "l2"]
    assert sorted(body["jobIds"]) == ["l1-0", "l1-1", "l2-0"]
    assert db.batches.get_batch("l3").status == "pending"
    assert canceller.calls[0][1] == ["l1", "l2"]
    unknown = client.post("/video/cancel", json={"listingId": "nobody"}, headers=auth).json()
    assert unknown["canceled"] == 0


def test_cancel_by_job_ids(client, db, auth, canceller):
    db.batches.insert_batch(*make_batch("j1", n_jobs=3))
    body = client.post("/video/cancel", json={"jobIds": ["j1-0", "j1-1"]}, headers=auth).json()
    assert body["canceled"] == 2 and sorted(body["jobIds"]) == ["j1-0", "j1-1"]
    assert body["batchIds"] == []  # the batch goes on with its last job: no run to terminate
    assert db.batches.get_batch("j1").status != "canceled"
    assert sorted(job.id for job in canceller.calls[0][0]) == ["j1-0", "j1-1"]
    body = client.post("/video/cancel", json={"jobIds": ["j1-2"]}, headers=auth).json()
    assert body["batchIds"] == ["j1"]  # its last job: the batch is canceled as a whole
    assert db.batches.get_batch("j1").status == "canceled"


def test_cancel_needs_exactly_one_selector(client, auth):
    assert_error(client.post("/video/cancel", json={}, headers=auth), 400, "MISSING_REQUIRED_FIELD")
    assert_error(
        client.post("/video/cancel", json={"batchId": "a", "listingId": "b"}, headers=auth),
        400,
        "INVALID_INPUT",
    )
    assert_error(client.post("/video/cancel", json={"jobIds": []}, headers=auth), 400, "INVALID_INPUT")
    assert_error(client.post("/video/cancel", json={"jobIds": "j1-0"}, headers=auth), 400, "INVALID_INPUT")
    assert_error(client.post("/video/cancel", json={"batchId": "unknown"}, headers=auth), 404, "NOT_FOUND")


def test_a_canceller_that_raises_reports_every_live_task_as_not_stopped(settings, db, storage, verifier, auth):
    failing = CancelRecorder(fail=True)
    db.batches.insert_batch(*make_batch("f1"))
    row = db.ledger.begin_task("f1-0", "f1", "runway")
    db.ledger.task_submitted(row, "f1-0", "runway", "rw-live")
    app = create_app(settings, db=db, storage=storage, verifier=verifier, canceller=failing)
    with TestClient(app) as client:
        response = client.post("/video/cancel", json={"batchId": "f1"}, headers=auth)
    assert response.status_code == 200 and response.json()["canceled"] == 2
    assert len(failing.calls) == 1
    assert db.batches.get_batch("f1").status == "canceled"
    body = response.json()
    assert body["providerTasksStopped"] == 0
    assert body["providerTasksPending"] == [
        {"jobId": "f1-0", "provider": "runway", "taskId": "rw-live", "errorCode": "RUNWAY_CANCEL_FAILED",
         "error": "RuntimeError: provider unreachable"}
    ]
    # still live in the ledger: the reconciler asks Runway again
    assert [task.task_id for task in db.liveness.live_tasks_of_ended_jobs()] == ["rw-live"]


def test_batch_status_with_jobs_and_progress(client, db, auth, storage):
    db.batches.insert_batch(*make_batch("s1", n_jobs=5, title="12 Main St", orientation="vertical"))
    db.batches.start_batch("s1")
    db.batches.complete_job("s1-0", storage.uri("clips/s1-0.mp4"), storage.uri("thumbs/s1-0.jpg"))
    db.batches.fail_job("s1-1", "FAL_GENERATION_FAILED", "nope")
    row = db.ledger.begin_task("s1-2", "s1", "runway")
    db.ledger.task_submitted(row, "s1-2", "runway", "rw-1")
    db.events.record_task_progress(row, 0.4)
    db.cancels.cancel(job_ids=["s1-3"])

    response = client.get("/video/batches/s1", headers=auth)
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["id"] == "s1" and body["listingId"] == "listing-s1"
    assert (
        body["status"] == "processing" and body["orientation"] == "vertical" and body["title"] == "12 Main St"
    )
    assert body["createdAt"].endswith("Z") and body["updatedAt"].endswith("Z")
    assert body["progress"] == {
        "total": 5,
        "completed": 1,
        "failed": 1,
        "canceled": 1,
        "processing": 1,
        "pending": 1,
        "percent": 60,
    }
    jobs = body["jobs"]
    assert [job["id"] for job in jobs] == ["s1-0", "s1-1", "s1-2", "s1-3", "s1-4"]
    # the canonical stored URIs, and playable URLs (local storage: the service's signed /media URLs)
    assert (jobs[0]["videoUri"], jobs[0]["thumbnailUri"]) == (storage.uri("clips/s1-0.mp4"), storage.uri("thumbs/s1-0.jpg"))
    assert jobs[0]["videoUrl"].startswith("http://localhost:3001/media/clips/s1-0.mp4?expires=")
    assert jobs[0]["thumbnailUrl"].startswith("http://localhost:3001/media/thumbs/s1-0.jpg?expires=")
    assert jobs[0]["urlsExpireAt"].endswith("Z") and jobs[1]["urlsExpireAt"] is None
    assert jobs[1]["errorCode"] == "FAL_GENERATION_FAILED" and jobs[1]["errorMessage"] == "nope"
    assert jobs[2]["provider"] == "runway" and jobs[2]["providerTaskId"] == "rw-1"
    assert jobs[2]["status"] == "processing" and jobs[2]["roomName"] == "Room 2" and jobs[2]["sortOrder"] == 2
    # the running task's progress as the provider last reported it; none for the others
    assert [job["progress"] for job in jobs] == [None, None, 0.4, None, None]
    assert body["workspaceId"] is None
    expected_keys = {
        "id", "roomName", "sortOrder", "status", "provider", "providerTaskId",
        "videoUrl", "thumbnailUrl", "videoUri", "thumbnailUri", "urlsExpireAt", "errorCode", "errorMessage",
    }  # fmt: skip
    assert expected_keys <= set(jobs[0])
    assert (body["errorCode"], body["blockedReason"]) == (None, None)
    # one paid request so far, the provider's id known, no cost figure given
    assert body["spend"] == {
        "usd": 0.0, "tasks": 1, "possiblyOrphaned": 0, "usdProvider": 0.0, "usdRate": 0.0, "unpriced": 1,
        "orphanUsd": 0.0,
        "byProvider": {"runway": {
            "tasks": 1, "usd": 0.0, "usdProvider": 0.0, "usdRate": 0.0, "unpriced": 1, "orphanUsd": 0.0,
            "inFlight": 1, "completed": 0, "failed": 0, "canceled": 0, "superseded": 0, "possiblyOrphaned": 0,
            "other": 0, "unpaid": 0,
        }},
    }  # fmt: skip

    db.liveness.block_batch("s1", "CLIP_CHECK_FAILED")  # the web app sees why the batch waits
    assert client.get("/video/batches/s1", headers=auth).json()["blockedReason"] == "CLIP_CHECK_FAILED"
    db.batches.finish_batch("s1", "failed", error="CLIP_CHECK_FAILED: deadline", error_code="CLIP_CHECK_FAILED")
    failed = client.get("/video/batches/s1", headers=auth).json()
    assert (failed["status"], failed["errorCode"], failed["blockedReason"]) == ("failed", "CLIP_CHECK_FAILED", None)

    assert_error(client.get("/video/batches/missing", headers=auth), 404, "NOT_FOUND")


def test_batch_status_shows_what_the_batch_spent(client, db, auth):
    import sqlalchemy as sa

    from zencourt_pipeline.db.schema import generation_tasks

    db.batches.insert_batch(*make_batch("m1", n_jobs=3))
    db.batches.insert_batch(*make_batch("m2", n_jobs=1))
    done = db.ledger.begin_task("m1-0", "m1", "runway")
    db.ledger.task_submitted(done, "m1-0", "runway", "rw-m1", cost_usd=0.25, cost_source="rate")
    db.completions.record_completion(provider="runway", task_id="rw-m1", status="succeeded", source="poll")
    db.ledger.record_task_cost("runway", "rw-m1", credits=30, cost_usd=0.3)  # the provider's figure wins
    refused = db.ledger.begin_task("m1-1", "m1", "fal")
    db.ledger.task_rejected(refused, "FAL_GENERATION_FAILED", "refused")  # never paid
    live = db.ledger.begin_task("m1-1", "m1", "fal")
    db.ledger.task_submitted(live, "m1-1", "fal", "fal-m1", cost_usd=0.5, cost_source="rate")
    orphan = db.ledger.begin_task("m1-2", "m1", "fal")  # sent, answer lost
    with db.db.transaction() as conn:
        conn.execute(sa.update(generation_tasks).where(generation_tasks.c.id == orphan).values(possibly_orphaned=True))
    other = db.ledger.begin_task("m2-0", "m2", "runway")  # another batch: not counted
    db.ledger.task_submitted(other, "m2-0", "runway", "rw-m2", cost_usd=9.0, cost_source="rate")

    spend = client.get("/video/batches/m1", headers=auth).json()["spend"]
    assert (spend["usd"], spend["tasks"], spend["possiblyOrphaned"]) == (0.8, 3, 1)
    assert (spend["usdProvider"], spend["usdRate"], spend["unpriced"], spend["orphanUsd"]) == (0.3, 0.5, 1, 0.0)
    assert sorted(spend["byProvider"]) == ["fal", "runway"]
    fal, runway = spend["byProvider"]["fal"], spend["byProvider"]["runway"]
    assert (fal["tasks"], fal["usd"], fal["inFlight"], fal["possiblyOrphaned"], fal["unpaid"]) == (2, 0.5, 1, 1, 1)
    assert (runway["tasks"], runway["usd"], runway["usdProvider"], runway["completed"]) == (1, 0.3, 0.3, 1)
    assert client.get("/video/batches/m2", headers=auth).json()["spend"]["usd"] == 9.0
    empty = make_batch("m3", n_jobs=1)
    db.batches.insert_batch(*empty)
    assert client.get("/video/batches/m3", headers=auth).json()["spend"] == {
        "usd": 0.0, "tasks": 0, "possiblyOrphaned": 0, "usdProvider": 0.0, "usdRate": 0.0, "unpriced": 0,
        "orphanUsd": 0.0, "byProvider": {},
    }  # fmt: skip


def test_batch_status_json_names_order_and_nulls_are_the_contracts(client, db, auth):
    """The response models write the same JSON as the hand-written dicts did: camelCase names in
    this order, nulls written out, statuses as plain strings."""
    db.batches.insert_batch(*make_batch("o1", n_jobs=1))
    raw = client.get("/video/batches/o1", headers=auth).content.decode()
    body = client.get("/video/batches/o1", headers=auth).json()
    assert list(body) == [
        "success", "id", "listingId", "workspaceId", "status", "orientation", "template", "title", "videoUrl", "thumbnailUrl",
        "videoUri", "thumbnailUri", "urlsExpireAt", "error", "errorCode", "blockedReason", "createdAt", "updatedAt",
        "webhookStatus", "webhookErrorCode", "progress", "spend", "jobs", "facts", "instructions", "callbackUrl",
        "narrationUrl", "narrationIdentifiesAgent", "outputs",
    ]  # fmt: skip
    assert list(body["progress"]) == ["total", "completed", "failed", "canceled", "processing", "pending", "percent"]
    assert list(body["jobs"][0]) == [
        "id", "roomName", "sortOrder", "status", "provider", "providerTaskId", "videoUrl", "thumbnailUrl",
        "videoUri", "thumbnailUri", "urlsExpireAt", "errorCode", "errorMessage", "createdAt", "updatedAt", "progress",
        "caption", "transition", "clipUrl", "clipInSeconds", "clipOutSeconds", "focusX", "focusY",
    ]  # fmt: skip
    assert raw.startswith('{"success":true,"id":"o1","listingId":"listing-o1","workspaceId":null,"status":"pending",')
    assert (
        '"videoUrl":null,"thumbnailUrl":null,"videoUri":null,"thumbnailUri":null,"urlsExpireAt":null,'
        '"error":null,"errorCode":null,"blockedReason":null'
    ) in raw
    generate = client.post("/video/generate", json={"batchId": "o1"}, headers=auth)
    assert generate.content == (
        b'{"success":true,"batchId":"o1","status":"pending",'
        b'"batches":[{"batchId":"o1","status":"pending","jobIds":["o1-0"],"pickupRequested":true}],"unknownJobIds":[]}'
    )
    cancel = client.post("/video/cancel", json={"batchId": "o1"}, headers=auth)
    assert cancel.content == (
        b'{"success":true,"canceled":1,"jobIds":["o1-0"],"batchIds":["o1"],'
        b'"providerTasksStopped":0,"providerTasksPending":[],"runsTerminated":0}'
    )


def test_batch_status_reports_a_dead_webhook_with_the_node_servers_code(client, db, auth):
    import sqlalchemy as sa

    from zencourt_pipeline.db.schema import webhook_outbox

    db.batches.insert_batch(*make_batch("wd", n_jobs=1))
    open_batch = client.get("/video/batches/wd", headers=auth).json()
    assert (open_batch["webhookStatus"], open_batch["webhookErrorCode"]) == (None, None)
    assert db.batches.complete_job("wd-0", "file:///clip.mp4", None)
    assert db.batches.finish_batch("wd", "completed", video_url="file:///v.mp4")
    terminal = next(row for row in db.outbox.rows("wd") if row.event == "batch.completed")
    pending = client.get("/video/batches/wd", headers=auth).json()
    assert (pending["webhookStatus"], pending["webhookErrorCode"]) == ("pending", None)
    with db.db.transaction() as conn:
        conn.execute(sa.update(webhook_outbox).where(webhook_outbox.c.id == terminal.id).values(status="dead"))
    dead = client.get("/video/batches/wd", headers=auth).json()
    assert (dead["webhookStatus"], dead["webhookErrorCode"]) == ("dead", "WEBHOOK_DELIVERY_FAILED")
    assert db.outbox.requeue(terminal.id)
    assert db.outbox.mark_delivered(terminal.id, 200)
    delivered = client.get("/video/batches/wd", headers=auth).json()
    assert (delivered["webhookStatus"], delivered["webhookErrorCode"]) == ("delivered", None)
