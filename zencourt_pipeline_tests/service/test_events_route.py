"""`GET /video/batches/{id}/events` in process (SQLite): the wire format of a replay, the
`?lastEventId=` fallback, and a failed read ending the stream (the client reconnects)."""

from __future__ import annotations

import json

from zencourt_pipeline.db.events import EventCursor
from zencourt_pipeline.db.records import BatchStatus

from .conftest import make_batch


def parse(text: str) -> tuple[list[str], list[dict]]:
    """(the non-message blocks, the messages as {id, event, data}) of an SSE body."""
    others, messages = [], []
    for block in text.split("\n\n"):
        if not block:
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n") if not line.startswith(":"))
        if "data" in fields:
            messages.append({"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])})
        else:
            others.append(block)
    return others, messages


def test_a_terminal_batch_is_replayed_in_the_wire_format_and_the_stream_ends(client, auth, db):
    db.batches.insert_batch(*make_batch("w1", n_jobs=1))
    db.batches.start_batch("w1")
    db.batches.fail_job("w1-0", "INVALID_INPUT", "not a photo")
    db.batches.finish_batch("w1", BatchStatus.FAILED, error="no clip", error_code="ALL_CLIPS_FAILED")
    response = client.get("/video/batches/w1/events", headers=auth)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    others, messages = parse(response.text)
    assert others == ["retry: 2000"]
    assert [m["event"] for m in messages] == ["batch.created", "batch.processing", "job.failed", "batch.failed"]
    assert [m["id"] for m in messages] == [e.id for e in db.events.batch_events("w1")]
    assert messages[-1]["data"] == {
        **messages[-1]["data"], "event": "batch.failed", "batchId": "w1", "status": "failed",
        "errorCode": "ALL_CLIPS_FAILED", "error": "no clip",
    }  # fmt: skip
    resumed = client.get(f"/video/batches/w1/events?lastEventId={messages[1]['id']}", headers=auth)
    assert [m["event"] for m in parse(resumed.text)[1]] == ["job.failed", "batch.failed"]


def test_a_failed_read_ends_the_stream(client, auth, db, monkeypatch):
    db.batches.insert_batch(*make_batch("w2", n_jobs=1))

    def broken(self):
        raise RuntimeError("database away")

    monkeypatch.setattr(EventCursor, "poll", broken)
    response = client.get("/video/batches/w2/events", headers=auth)
    assert response.status_code == 200 and response.text == "retry: 2000\n\n"


def test_a_workspace_key_follows_its_workspace_batches_only(client, db):
    from zencourt_pipeline.domain import ApiScope

    db.batches.insert_batch(*make_batch("ws-own", workspace_id="ws1"))
    db.batches.insert_batch(*make_batch("ws-other", workspace_id="ws2"))
    db.cancels.cancel(batch_id="ws-own")
    db.cancels.cancel(batch_id="ws-other")
    _, key = db.api_keys.create_key("ws1", [ApiScope.READ])
    own = client.get("/video/batches/ws-own/events", headers={"x-api-key": key})
    assert own.status_code == 200 and parse(own.text)[1][-1]["event"] == "batch.canceled"
    other = client.get("/video/batches/ws-other/events", headers={"x-api-key": key})
    assert other.status_code == 404 and other.json()["code"] == "NOT_FOUND"  # as unknown: nothing tells it exists
    _, storage_only = db.api_keys.create_key("ws1", [ApiScope.STORAGE])
    refused = client.get("/video/batches/ws-own/events", headers={"x-api-key": storage_only})
    assert refused.status_code == 403 and refused.json()["code"] == "INSUFFICIENT_SCOPE"


def test_batch_completed_streams_every_output_with_playable_urls(client, auth, db, storage):
    from zencourt_pipeline.db.outputs import OutputRow, OutputStatus
    from zencourt_pipeline.domain import DEFAULT_OUTPUTS

    db.batches.insert_batch(*make_batch("w4", n_jobs=1))
    db.batches.start_batch("w4")
    uris = [storage.put_bytes(f"batches/w4/video/listing-{s.name}-default.mp4", b"mp4") for s in DEFAULT_OUTPUTS]
    rows = [OutputRow(s, OutputStatus.COMPLETED, primary=i == 0, video_uri=u) for i, (s, u) in enumerate(zip(DEFAULT_OUTPUTS, uris, strict=True))]
    db.batches.finish_batch("w4", BatchStatus.COMPLETED, video_url=uris[0], outputs=rows)
    _, messages = parse(client.get("/video/batches/w4/events", headers=auth).text)
    completed = messages[-1]["data"]
    assert completed["event"] == "batch.completed"
    assert [o["videoUri"] for o in completed["outputs"]] == uris
    for output, spec in zip(completed["outputs"], DEFAULT_OUTPUTS, strict=True):
        assert f"/media/batches/w4/video/listing-{spec.name}-default.mp4?expires=" in output["videoUrl"]
        assert output["thumbnailUrl"] is None and output["urlsExpireAt"].endswith("Z")
