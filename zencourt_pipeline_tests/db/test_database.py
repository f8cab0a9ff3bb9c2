"""The database layer, the same tests on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from zencourt_pipeline.db.migrate import current_revision, head_revision
from zencourt_pipeline.db.records import (
    Batch,
    BatchStatus,
    CompletionRecord,
    GenerationTaskStatus,
    Job,
    JobStatus,
    OutboxEvent,
    OutboxStatus,
    Task,
)
from zencourt_pipeline.db.schema import metadata
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline_tests.conftest import make_batch


def test_migrations_create_the_schema_the_code_uses(app_db):
    assert current_revision(app_db.db.engine) == head_revision()
    inspector = sa.inspect(app_db.db.engine)
    for table in metadata.sorted_tables:
        columns = {column["name"] for column in inspector.get_columns(table.name)}
        assert columns == {column.name for column in table.columns}, table.name
    app_db.db.upgrade()  # idempotent


def test_contract_defaults(app_db):
    batch, jobs = make_batch("b1")
    app_db.batches.insert_batch(batch, jobs)
    row = app_db.batches.get_batch("b1")
    assert (row.status, row.orientation, row.created_at is not None) == ("pending", "landscape", True)
    job = app_db.batches.get_jobs("b1")[0]
    assert (job.status, job.duration_seconds, job.sort_order) == ("pending", 5, 0)


def test_claim_pending_batches_once_with_rows_arriving_between_claims(app_db):
    app_db.batches.insert_batch(*make_batch("a"))
    assert [b.id for b in app_db.pickup.claim_pending_batches()] == ["a"]
    app_db.batches.insert_batch(*make_batch("b"))
    app_db.batches.insert_batch(*make_batch("c"))
    assert sorted(b.id for b in app_db.pickup.claim_pending_batches()) == ["b", "c"]
    assert app_db.pickup.claim_pending_batches() == []
    # a claim that never turned into a run is offered again after the window
    assert {b.id for b in app_db.pickup.claim_pending_batches(reclaim_after=timedelta(seconds=-1))} == {"a", "b", "c"}


def test_claim_respects_limit_and_status(app_db):
    for name in ("x1", "x2", "x3"):
        app_db.batches.insert_batch(*make_batch(name))
    app_db.batches.start_batch("x2")
    first = app_db.pickup.claim_pending_batches(limit=1)
    second = app_db.pickup.claim_pending_batches(limit=5)
    assert len(first) == 1 and {b.id for b in first + second} == {"x1", "x3"}


def test_concurrent_claims_never_hand_out_a_batch_twice(app_db):
    for i in range(20):
        app_db.batches.insert_batch(*make_batch(f"c{i}"))
    claimed: list[str] = []
    lock = threading.Lock()

    def claim():
        rows = app_db.pickup.claim_pending_batches(limit=7)
        with lock:
            claimed.extend(row.id for row in rows)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claimed) == len(set(claimed)) > 0
    rest = [row.id for row in app_db.pickup.claim_pending_batches(limit=50)]
    assert sorted(claimed + rest) == sorted(f"c{i}" for i in range(20))


def test_task_ids_and_completions_are_recorded_once(app_db):
    app_db.batches.insert_batch(*make_batch("t"))
    row = app_db.ledger.begin_task("t-0", "t", "fal")
    app_db.ledger.task_submitted(row, "t-0", "fal", "req-1", meta={"status_url": "u"})
    first = app_db.completions.record_completion(provider="fal", task_id="req-1", status="succeeded", source="webhook", output_url="https://x/v.mp4")
    again = app_db.completions.record_completion(provider="fal", task_id="req-1", status="failed", source="webhook")
    assert (first, again) == (True, False)
    [completion] = app_db.completions.completions_for_batch("t")
    assert (completion.job_id, completion.status) == ("t-0", "succeeded")
    [task] = app_db.ledger.tasks_for_job("t-0")
    assert (task.status, json.loads(task.provider_meta)) == ("succeeded", {"status_url": "u"})
    job = app_db.batches.get_job("t-0")
    assert (job.status, job.provider, job.provider_task_id) == ("processing", "fal", "req-1")


def test_completion_arriving_before_the_task_id_is_linked_later(app_db):
    app_db.batches.insert_batch(*make_batch("early"))
    assert app_db.completions.record_completion(provider="fal", task_id="req-9", status="succeeded", source="webhook")
    assert app_db.completions.completions_for_batch("early") == []
    row = app_db.ledger.begin_task("early-1", "early", "fal")
    app_db.ledger.task_submitted(row, "early-1", "fal", "req-9")
    [completion] = app_db.completions.completions_for_batch("early")
    assert completion.job_id == "early-1"
    assert app_db.ledger.tasks_for_job("early-1")[0].status == "succeeded"


def _persist_task_id_unseen(app_db, row_id: int, task_id: str) -> None:
    """What the create's answer wrote when its transaction did not see a webhook's completion."""
    with app_db.db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE generation_tasks SET task_id = :t, status = 'submitted' WHERE id = :id"),
                     {"t": task_id, "id": row_id})
        conn.execute(sa.text("UPDATE video_gen_jobs SET provider_task_id = :t WHERE id = "
                             "(SELECT job_id FROM generation_tasks WHERE id = :id)"), {"t": task_id, "id": row_id})


def test_a_completion_left_unlinked_is_linked_by_link_completions(app_db):
    app_db.batches.insert_batch(*make_batch("race"))
    row = app_db.ledger.begin_task("race-0", "race", "fal")
    assert app_db.completions.record_completion(provider="fal", task_id="req-r", status="succeeded", source="webhook")
    _persist_task_id_unseen(app_db, row, "req-r")  # both committed, neither saw the other
    assert app_db.completions.completions_for_batch("race") == []
    assert [t.task_id for t in app_db.ledger.tasks_awaiting_completion()] == []  # not polled: a completion exists
    assert app_db.completions.link_completions() == 1
    [completion] = app_db.completions.completions_for_batch("race")
    assert (completion.job_id, completion.task_id) == ("race-0", "req-r")
    assert app_db.ledger.tasks_for_job("race-0")[0].status == "succeeded"
    assert app_db.completions.link_completions() == 0


@pytest.mark.postgres
def test_a_webhook_racing_the_create_answer_waits_for_it_and_is_linked(postgres_url):
    """The create's answer holds the task key's lock (db/completions.py): a webhook for the same id
    recorded meanwhile waits, then sees the task and links to it. Without the lock it records an
    unlinked completion that the batch never sees."""
    from zencourt_pipeline.db.completions import lock_task_key
    from zencourt_pipeline.db.database import AppDatabase

    db = AppDatabase.connect(postgres_url)
    db.db.upgrade()
    db.batches.insert_batch(*make_batch("lk"))
    row = db.ledger.begin_task("lk-0", "lk", "fal")
    recorded = threading.Event()
    with db.db.engine.connect() as conn, conn.begin():
        lock_task_key(conn, "fal", "req-lk")  # the answer's transaction, not committed yet
        webhook = threading.Thread(target=lambda: (db.completions.record_completion(
            provider="fal", task_id="req-lk", status="succeeded", source="webhook"), recorded.set()))
        webhook.start()
        assert not recorded.wait(1.0), "the webhook did not wait for the create's answer"
        conn.execute(sa.text("UPDATE generation_tasks SET task_id = 'req-lk', status = 'submitted' WHERE id = :id"),
                     {"id": row})
    webhook.join(10)
    [completion] = db.completions.completions_for_batch("lk")
    assert completion.job_id == "lk-0"
    assert db.ledger.tasks_for_job("lk-0")[0].status == "succeeded"


def test_state_changes_write_their_webhook_in_the_same_transaction(app_db):
    app_db.batches.insert_batch(*make_batch("w", n_jobs=3))
    assert app_db.batches.fail_job("w-0", "INVALID_INPUT", "not an image")
    assert not app_db.batches.fail_job("w-0", "INVALID_INPUT", "twice")
    assert app_db.batches.complete_job("w-1", "file:///clip.mp4", "file:///clip.jpg")
    app_db.batches.finish_batch("w", "completed", video_url="file:///v.mp4", thumbnail_url="file:///v.jpg")
    events = [json.loads(row.body) for row in app_db.outbox.rows("w")]
    assert [event["event"] for event in events] == ["clip.failed", "clip.completed", "batch.completed"]
    assert events[0]["error"] == "INVALID_INPUT: not an image" and events[0]["jobId"] == "w-0"
    assert events[2]["videoUrl"] == "file:///v.mp4" and events[2]["listingId"] == "listing-w"
    assert len({event["id"] for event in events}) == 3
    job = app_db.batches.get_job("w-0")
    assert (job.status, job.error_code, job.error_message) == ("failed", "INVALID_INPUT", "not an image")


def test_cancel_by_batch_listing_and_jobs(app_db):
    app_db.batches.insert_batch(*make_batch("k1", n_jobs=2))
    app_db.batches.insert_batch(*make_batch("k2", n_jobs=2, listing_id="shared"))
    app_db.batches.insert_batch(*make_batch("k3", n_jobs=2, listing_id="shared"))
    app_db.batches.complete_job("k1-0", "file:///a.mp4", None)
    assert [job.id for job in app_db.cancels.cancel(job_ids=["k1-1"])] == ["k1-1"]
    # issue 11, defect 1: canceling the last open job by id keeps the batch, which is composed
    # from its completed clip (it used to cancel the whole batch and throw k1-0 away)
    assert app_db.batches.get_batch("k1").status == "pending"
    assert app_db.batches.get_job("k1-0").status == "completed"
    app_db.batches.insert_batch(*make_batch("k4", n_jobs=2))
    app_db.cancels.cancel(job_ids=["k4-0", "k4-1"])  # nothing left to compose: the batch is canceled
    assert app_db.batches.get_batch("k4").status == "canceled"
    assert len(app_db.cancels.cancel(listing_id="shared")) == 4
    assert {app_db.batches.get_batch(b).status for b in ("k2", "k3")} == {"canceled"}
    assert app_db.cancels.cancel(batch_id="k2") == []
    assert not app_db.batches.finish_batch("k2", "completed")  # canceled stays canceled
    events = [row.event for row in app_db.outbox.rows()]
    assert events.count("batch.canceled") == 3  # k2, k3, k4


def test_request_pickup_only_for_pending(app_db):
    app_db.batches.insert_batch(*make_batch("p"))
    app_db.pickup.claim_pending_batches()
    assert app_db.pickup.request_pickup("p")
    assert [b.id for b in app_db.pickup.claim_pending_batches()] == ["p"]
    app_db.batches.start_batch("p")
    assert not app_db.pickup.request_pickup("p")


def test_reads_are_frozen_records_with_enum_statuses_and_utc_times(app_db):
    app_db.batches.insert_batch(*make_batch("r", n_jobs=1))
    row = app_db.ledger.begin_task("r-0", "r", "fal")
    app_db.ledger.task_submitted(row, "r-0", "fal", "req-r", meta={"model": "m"})
    app_db.completions.record_completion(provider="fal", task_id="req-r", status="succeeded", source="webhook")
    batch, [job], [task], [completion] = (
        app_db.batches.get_batch("r"), app_db.batches.get_jobs("r"), app_db.ledger.tasks_for_job("r-0"), app_db.completions.completions_for_batch("r")
    )
    assert (type(batch), type(job), type(task), type(completion)) == (Batch, Job, Task, CompletionRecord)
    assert batch.status is BatchStatus.PENDING and job.status is JobStatus.PROCESSING
    assert task.status is GenerationTaskStatus.SUCCEEDED and task.meta == {"model": "m"}
    assert completion.status is GenerationTaskStatus.SUCCEEDED
    assert all(value.tzinfo is not None for value in (batch.created_at, job.updated_at, task.submitted_at))
    assert app_db.batches.fail_job("r-0", ErrorCode.INVALID_INPUT, "bad")
    [event] = [e for e in app_db.outbox.rows("r") if e.event == "clip.failed"]
    assert isinstance(event, OutboxEvent) and event.status is OutboxStatus.PENDING
    assert app_db.batches.get_job("r-0").error_code == "INVALID_INPUT"  # an ErrorCode is stored as its string
    with pytest.raises(dataclasses.FrozenInstanceError):
        batch.status = BatchStatus.FAILED  # type: ignore[misc]


def test_a_job_canceled_while_its_create_was_in_flight_stays_canceled_and_its_task_is_cancelable(app_db):
    """The soak caught it: a cancel committed between the task row and the provider's answer was
    undone by `task_submitted` (the job went back to `processing` in a canceled batch, and its paid
    task was never canceled at the provider). Now the job stays canceled and the task is live for
    an ended job: what the reconciler cancels."""
    app_db.batches.insert_batch(*make_batch("race", n_jobs=2))
    app_db.batches.start_batch("race")
    row = app_db.ledger.begin_task("race-0", "race", "runway")  # the create is on its way to the provider
    assert [job.id for job in app_db.cancels.cancel(batch_id="race")] == ["race-0", "race-1"]
    app_db.ledger.task_submitted(row, "race-0", "runway", "rw-after-cancel")  # ... and its answer lands now

    job = app_db.batches.get_job("race-0")
    assert job.status == JobStatus.CANCELED and job.provider_task_id == "rw-after-cancel"
    assert app_db.batches.get_batch("race").status == BatchStatus.CANCELED
    assert [task.task_id for task in app_db.liveness.live_tasks_of_ended_jobs()] == ["rw-after-cancel"]


def test_task_submitted_moves_a_live_job_to_processing(app_db):
    app_db.batches.insert_batch(*make_batch("live", n_jobs=1))
    row = app_db.ledger.begin_task("live-0", "live", "fal")
    app_db.ledger.task_submitted(row, "live-0", "fal", "fal-1")
    job = app_db.batches.get_job("live-0")
    assert job.status == JobStatus.PROCESSING and job.provider == "fal" and job.provider_task_id == "fal-1"
