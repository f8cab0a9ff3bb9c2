"""Batch events (db/events.py): every state change writes its event in its own transaction, on
SQLite and on the real PostgreSQL server; the cursor hands them out in id order, each once, and
never moves past an id that a transaction still open may commit (PostgreSQL only: SQLite
serializes its writers)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from zencourt_pipeline.db.clock import utcnow
from zencourt_pipeline.db.core import Db
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.events import EventCursor, EventListener
from zencourt_pipeline.db.migrate import current_revision, downgrade, head_revision
from zencourt_pipeline.db.records import BatchEventType, BatchStage, BatchStatus, JobStatus
from zencourt_pipeline.db.schema import batch_events
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline_tests.conftest import make_batch

E = BatchEventType


def kinds(db: AppDatabase, batch_id: str) -> list[tuple[str, str | None]]:
    return [(event.event, event.job_id) for event in db.events.batch_events(batch_id)]


def test_migration_0008_downgrades_and_upgrades_again(app_db):
    app_db.batches.insert_batch(*make_batch("m7"))
    downgrade(app_db.db.engine, "0007")
    inspector = sa.inspect(app_db.db.engine)
    assert not inspector.has_table("batch_events")
    assert "progress" not in {column["name"] for column in inspector.get_columns("generation_tasks")}
    app_db.db.upgrade()
    assert current_revision(app_db.db.engine) == head_revision() and app_db.batches.get_batch("m7") is not None
    indexes = {ix["name"]: ix["column_names"] for ix in sa.inspect(app_db.db.engine).get_indexes("batch_events")}
    assert indexes["ix_batch_events_batch_id_id"] == ["batch_id", "id"]


def test_a_batch_life_writes_every_change_with_its_fields(app_db):
    app_db.batches.insert_batch(*make_batch("life", n_jobs=2))
    app_db.batches.start_batch("life")
    app_db.batches.start_batch("life")  # already processing: no second event
    row = app_db.ledger.begin_task("life-0", "life", "runway")
    app_db.ledger.task_submitted(row, "life-0", "runway", "rw-1")
    assert app_db.events.record_task_progress(row, 0.25)
    assert not app_db.events.record_task_progress(row, 0.2501)  # the same to two decimals: no event
    assert app_db.events.record_task_progress(row, 0.5)
    fb = app_db.ledger.begin_task("life-1", "life", "fal")
    app_db.ledger.task_submitted(fb, "life-1", "fal", "fal-1")
    assert app_db.batches.fail_job("life-1", ErrorCode.FAL_GENERATION_FAILED, "boom")
    assert app_db.events.record_stage("life", BatchStage.NORMALIZING, clips=1)
    assert app_db.batches.complete_job("life-0", "file:///c0.mp4", "file:///c0.jpg")
    app_db.liveness.block_batch("life", ErrorCode.CLIP_CHECK_FAILED)
    app_db.liveness.block_batch("life", ErrorCode.CLIP_CHECK_FAILED)  # unchanged: no event
    app_db.liveness.block_batch("life", None)
    assert app_db.events.record_stage("life", BatchStage.COMPOSING, clips=1)
    assert app_db.batches.finish_batch("life", BatchStatus.COMPLETED, video_url="file:///v.mp4", thumbnail_url="file:///v.jpg")
    assert not app_db.events.record_stage("life", BatchStage.UPLOADING)  # terminal: no more stages
    assert kinds(app_db, "life") == [
        (E.CREATED, None),
        (E.PROCESSING, None),
        (E.JOB_PROCESSING, "life-0"),
        (E.JOB_PROGRESS, "life-0"),
        (E.JOB_PROGRESS, "life-0"),
        (E.JOB_PROCESSING, "life-1"),
        (E.JOB_FAILED, "life-1"),
        (E.STAGE, None),
        (E.JOB_COMPLETED, "life-0"),
        (E.BLOCKED, None),
        (E.BLOCKED, None),
        (E.STAGE, None),
        (E.COMPLETED, None),
    ]
    events = app_db.events.batch_events("life")
    ids = [event.id for event in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    data = [event.data for event in events]
    assert data[0] == {**data[0], "status": "pending", "listingId": "listing-life", "jobIds": ["life-0", "life-1"]}
    assert data[2] == {**data[2], "jobId": "life-0", "status": "processing", "provider": "runway", "providerTaskId": "rw-1"}
    assert (data[3]["progress"], data[4]["progress"]) == (0.25, 0.5)
    assert data[6] == {**data[6], "status": "failed", "provider": "fal", "errorCode": "FAL_GENERATION_FAILED", "error": "boom"}
    assert data[7]["stage"] == "normalizing" and data[7]["clips"] == 1
    assert data[8] == {**data[8], "status": "completed", "videoUri": "file:///c0.mp4", "thumbnailUri": "file:///c0.jpg"}
    assert (data[9]["blockedReason"], data[10]["blockedReason"]) == ("CLIP_CHECK_FAILED", None)
    assert data[12] == {**data[12], "event": "batch.completed", "status": "completed", "videoUri": "file:///v.mp4"}
    assert all(item["batchId"] == "life" and item["occurredAt"].endswith("Z") for item in data)
    assert app_db.ledger.tasks_for_job("life-0")[0].progress == 0.5


def test_failure_cancel_and_regeneration_are_events(app_db):
    app_db.batches.insert_batch(*make_batch("c", n_jobs=3))
    app_db.batches.start_batch("c")
    app_db.cancels.cancel(job_ids=["c-0"])
    app_db.cancels.cancel(batch_id="c")
    assert kinds(app_db, "c")[2:] == [
        (E.JOB_CANCELED, "c-0"), (E.JOB_CANCELED, "c-1"), (E.JOB_CANCELED, "c-2"), (E.CANCELED, None),
    ]  # fmt: skip
    assert app_db.events.batch_events("c")[-1].data["errorCode"] == ErrorCode.CANCELED

    app_db.batches.insert_batch(*make_batch("f", n_jobs=2))
    app_db.batches.start_batch("f")
    app_db.batches.fail_job("f-0", ErrorCode.INVALID_INPUT, "bad photo")
    app_db.batches.finish_batch("f", BatchStatus.FAILED, error="no clip", error_code=ErrorCode.ALL_CLIPS_FAILED)
    assert not app_db.batches.finish_batch("f", BatchStatus.COMPLETED)  # terminal is final: no event either
    failed = app_db.events.batch_events("f")[-1]
    assert (failed.event, failed.data["errorCode"], failed.data["error"]) == (E.FAILED, "ALL_CLIPS_FAILED", "no clip")
    assert failed.event.terminal and not E.JOB_FAILED.terminal

    app_db.ledger.reset_for_regeneration("f", ["f-0"])
    assert kinds(app_db, "f")[-2:] == [(E.JOB_PENDING, "f-0"), (E.PROCESSING, None)]
    app_db.batches.update_job("f-1", status=JobStatus.PROCESSING)
    app_db.batches.update_job("f-1", photo_key="k")  # not a status change: no event
    assert kinds(app_db, "f")[-1] == (E.JOB_PROCESSING, "f-1")


def test_the_event_commits_or_rolls_back_with_its_change(app_db, monkeypatch):
    app_db.batches.insert_batch(*make_batch("tx"))
    original = Db.record

    def record_then_fail(self, conn, batch_id, event, **fields):
        original(self, conn, batch_id, event, **fields)
        raise RuntimeError("crash after the event insert")

    monkeypatch.setattr(Db, "record", record_then_fail)
    with pytest.raises(RuntimeError):
        app_db.batches.fail_job("tx-0", ErrorCode.INVALID_INPUT, "x")
    monkeypatch.setattr(Db, "record", original)
    assert app_db.batches.get_job("tx-0").status == JobStatus.PENDING  # the change rolled back with its event
    assert app_db.outbox.rows("tx") == [] and kinds(app_db, "tx") == [(E.CREATED, None)]
    assert app_db.batches.fail_job("tx-0", ErrorCode.INVALID_INPUT, "x")
    assert kinds(app_db, "tx")[-1] == (E.JOB_FAILED, "tx-0")


def test_the_cursor_hands_out_each_event_once_and_resumes_after_an_id(app_db):
    app_db.batches.insert_batch(*make_batch("r", n_jobs=1))
    app_db.batches.insert_batch(*make_batch("other", n_jobs=1))  # another batch's events interleave
    cursor = EventCursor(app_db.events, "r")
    first = cursor.poll()
    assert [event.event for event in first] == [E.CREATED] and cursor.poll() == []
    app_db.batches.start_batch("other")
    app_db.batches.start_batch("r")
    app_db.batches.fail_job("r-0", ErrorCode.INVALID_INPUT, "x")
    second = cursor.poll()
    assert [event.event for event in second] == [E.PROCESSING, E.JOB_FAILED] and not cursor.holding
    resumed = EventCursor(app_db.events, "r", after=second[0].id).poll()  # a reconnect with Last-Event-ID
    assert [event.id for event in resumed] == [second[1].id]
    # far behind (every event older than the settle window): read directly, same result
    late = EventCursor(app_db.events, "r", after=0, clock=lambda: utcnow() + timedelta(hours=1)).poll()
    assert [event.id for event in late] == [event.id for event in first + second]


@pytest.mark.postgres
def test_the_cursor_waits_for_an_id_that_commits_late_and_skips_one_rolled_back(postgres_url):
    db = AppDatabase.connect(postgres_url)
    db.db.upgrade()
    try:
        db.batches.insert_batch(*make_batch("g", n_jobs=1))
        cursor = EventCursor(db.events, "g", settle=timedelta(seconds=30))
        assert [event.event for event in cursor.poll()] == [E.CREATED]
        # a transaction takes an id and stays open; a later one commits a bigger id first
        slow = db.db.engine.connect()
        tx = slow.begin()
        db.db.record(slow, "g", E.STAGE, stage="normalizing")
        db.batches.start_batch("g")
        assert cursor.poll() == [] and cursor.holding  # the bigger id waits for the smaller one
        tx.commit()
        assert [event.event for event in cursor.poll()] == [E.STAGE, E.PROCESSING] and not cursor.holding

        # an id rolled back: the next one waits until it is older than the settle window
        tx = slow.begin()
        db.db.record(slow, "g", E.STAGE, stage="composing")
        db.batches.fail_job("g-0", ErrorCode.INVALID_INPUT, "x")
        tx.rollback()
        assert cursor.poll() == [] and cursor.holding
        cursor.clock = lambda: utcnow() + timedelta(seconds=31)
        assert [event.event for event in cursor.poll()] == [E.JOB_FAILED] and not cursor.holding
        slow.close()
        with db.db.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(batch_events)).scalar() == 4
    finally:
        db.db.dispose()


@pytest.mark.postgres
def test_the_listener_hears_each_committed_event_of_postgres(postgres_url):
    import queue

    db = AppDatabase.connect(postgres_url)
    db.db.upgrade()
    heard: queue.Queue = queue.Queue()
    listener = EventListener(db.db.engine, heard.put, retry_seconds=0.1)
    listener.start()
    try:
        assert listener.listening.wait(10)
        db.batches.insert_batch(*make_batch("n", n_jobs=1))
        assert heard.get(timeout=5) == "n"
        with db.db.engine.connect() as conn, conn.begin() as tx:
            db.db.record(conn, "n", E.STAGE, stage="composing")
            tx.rollback()  # never committed: nothing is heard
        db.batches.start_batch("n")
        assert heard.get(timeout=5) == "n" and heard.empty()
        # its connection killed (a database restart): it listens again by itself
        with db.db.engine.connect() as conn:
            killed = conn.execute(sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
            )).scalar()  # fmt: skip
        assert killed == 1
        deadline = time.monotonic() + 10
        while listener.connections < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert listener.connections == 2 and listener.listening.is_set()
        db.batches.fail_job("n-0", ErrorCode.INVALID_INPUT, "x")
        assert heard.get(timeout=5) == "n"
    finally:
        listener.stop()
        db.db.dispose()
