"""`POST /video/generate`'s queries (db/pickup.py) and a batch's webhook delivery state
(`outbox.batch_webhooks`), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from zencourt_pipeline.db import outbox
from zencourt_pipeline.db.schema import video_gen_batch, webhook_outbox
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline_tests.conftest import make_batch

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_batch_ids_of_jobs_groups_in_call_order_and_skips_unknown_ids(app_db):
    app_db.batches.insert_batch(*make_batch("pa", n_jobs=2))
    app_db.batches.insert_batch(*make_batch("pb", n_jobs=3))
    covered = app_db.pickup.batch_ids_of_jobs(["pb-1", "nobody", "pa-1", "pb-0", "pb-1"])
    assert covered == {"pb": ["pb-1", "pb-0"], "pa": ["pa-1"]}
    assert list(covered) == ["pb", "pa"]
    assert app_db.pickup.batch_ids_of_jobs(["nobody"]) == {}
    assert app_db.pickup.batch_ids_of_jobs([]) == {}


def test_batches_with_job_ids_oldest_first_with_their_jobs_in_sort_order(app_db):
    batch, jobs = make_batch("pc", n_jobs=3, created_at=T0 + timedelta(minutes=1))
    jobs[0]["sort_order"], jobs[2]["sort_order"] = 5, 0
    app_db.batches.insert_batch(batch, jobs)
    app_db.batches.insert_batch(*make_batch("pd", n_jobs=0, created_at=T0))
    found = app_db.pickup.batches_with_job_ids(["pc", "pd", "missing"])
    assert [(b.id, job_ids) for b, job_ids in found] == [("pd", []), ("pc", ["pc-2", "pc-1", "pc-0"])]
    assert app_db.pickup.batches_with_job_ids([]) == []


def test_request_pickups_only_touches_pending_batches(app_db):
    for name in ("pe", "pf", "pg"):
        app_db.batches.insert_batch(*make_batch(name, n_jobs=1))
    assert {b.id for b in app_db.pickup.claim_pending_batches()} == {"pe", "pf", "pg"}
    app_db.batches.start_batch("pf")
    app_db.cancels.cancel(batch_id="pg")
    assert app_db.pickup.request_pickups(["pg", "pe", "pf", "missing"]) == ["pe"]
    assert [b.id for b in app_db.pickup.claim_pending_batches()] == ["pe"]  # claimable again
    assert (app_db.batches.get_batch("pf").status, app_db.batches.get_batch("pg").status) == ("processing", "canceled")
    with app_db.db.engine.connect() as conn:
        claimed = conn.execute(sa.select(video_gen_batch.c.claimed_at).where(video_gen_batch.c.id == "pf")).scalar()
    assert claimed is not None  # a processing batch's claim is left alone
    assert app_db.pickup.request_pickups([]) == []


def test_batch_webhooks_terminal_status_and_dead_rows(app_db):
    app_db.batches.insert_batch(*make_batch("pw", n_jobs=2))
    assert app_db.outbox.batch_webhooks("pw") == outbox.BatchWebhooks(None, 0)
    assert app_db.batches.fail_job("pw-0", "INVALID_INPUT", "bad photo")
    assert app_db.batches.complete_job("pw-1", "file:///c.mp4", None)
    assert app_db.batches.finish_batch("pw", "completed", video_url="file:///v.mp4")
    state = app_db.outbox.batch_webhooks("pw")
    assert (state.terminal_status, state.dead, state.error_code) == ("pending", 0, None)

    clip = next(row for row in app_db.outbox.rows("pw") if row.event == "clip.failed")
    with app_db.db.transaction() as conn:
        conn.execute(sa.update(webhook_outbox).where(webhook_outbox.c.id == clip.id).values(status="dead"))
    state = app_db.outbox.batch_webhooks("pw")
    assert (state.terminal_status, state.dead) == ("pending", 1)
    assert state.error_code == ErrorCode.WEBHOOK_DELIVERY_FAILED == "WEBHOOK_DELIVERY_FAILED"
    (dead,) = app_db.outbox.dead_rows()
    assert dead.id == clip.id and dead.error_code == "WEBHOOK_DELIVERY_FAILED"
    assert app_db.outbox.get(clip.id).error_code == "WEBHOOK_DELIVERY_FAILED"
    assert app_db.outbox.requeue(clip.id)
    assert app_db.outbox.get(clip.id).error_code is None
    assert app_db.outbox.batch_webhooks("pw").error_code is None
