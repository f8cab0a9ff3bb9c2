"""Dead outbox rows: listed, requeued (by id, by event, all), redelivered; a requeued row gets
new tries before it can be dead again. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.records import DeadSummary, OutboxEvent
from zencourt_pipeline.db.schema import webhook_outbox
from zencourt_pipeline.notify.deliverer import MIN_ATTEMPTS_BEFORE_DEAD, OutboxDeliverer
from zencourt_pipeline_tests.conftest import make_batch
from zencourt_pipeline_tests.fakes.fixtures import MaxJitter
from zencourt_pipeline_tests.topology import free_port


def kill(db: AppDatabase, ids: list[str]) -> None:
    """Make rows dead the way the deliverer does after its horizon."""
    old = datetime.now(UTC) - timedelta(days=5)
    with db.db.transaction() as conn:
        conn.execute(
            sa.update(webhook_outbox)
            .where(webhook_outbox.c.id.in_(ids))
            .values(status="dead", attempts=40, last_error="HTTP 500: down", created_at=old)
        )


def three_dead_rows(db: AppDatabase) -> list[OutboxEvent]:
    """Two `clip.failed` rows and the rows of a canceled batch, all dead."""
    for name in ("d1", "d2"):
        batch, jobs = make_batch(name, n_jobs=1)
        db.batches.insert_batch(batch, jobs)
        assert db.batches.fail_job(jobs[0]["id"], "INVALID_INPUT", "bad photo")
    db.batches.insert_batch(*make_batch("d3", n_jobs=1))
    db.cancels.cancel(batch_id="d3")
    rows = db.outbox.rows()
    assert len(rows) >= 3 and len({row.event for row in rows}) >= 2
    kill(db, [row.id for row in rows])
    return [db.outbox.get(row.id) for row in rows]


def test_list_and_requeue_dead_rows(app_db: AppDatabase):
    dead = three_dead_rows(app_db)
    listed = app_db.outbox.dead_rows()
    assert [row.id for row in listed] == sorted(
        [row.id for row in dead], key=lambda i: next((r.created_at, r.id) for r in dead if r.id == i)
    )
    assert listed[0].body is None and listed[0].last_error == "HTTP 500: down"
    summary = app_db.outbox.dead_summary()
    assert summary.dead == len(dead) and sum(summary.by_event.values()) == len(dead)
    assert summary.oldest_dead_created_at

    events = {row.event for row in dead}
    one_event = sorted(events)[0]
    expected = sum(1 for row in dead if row.event == one_event)
    assert app_db.outbox.requeue_dead(event=one_event) == expected
    assert app_db.outbox.requeue_dead(ids=[]) == 0
    assert app_db.outbox.requeue_dead(ids=["no-such-row"]) == 0
    remaining = [row for row in dead if row.event != one_event]
    if remaining:
        assert app_db.outbox.requeue_dead(ids=[remaining[0].id]) == 1
    now = datetime.now(UTC)
    assert app_db.outbox.requeue_dead(now=now) == max(0, len(remaining) - 1)
    assert app_db.outbox.requeue_dead() == 0  # nothing dead any more
    for row in dead:
        state = app_db.outbox.get(row.id)
        assert state.status == "pending" and state.attempts == 0
        assert state.next_attempt_at <= datetime.now(UTC)
    assert app_db.outbox.dead_summary() == DeadSummary(dead=0, by_event={}, oldest_dead_created_at=None)


def test_a_requeued_row_gets_new_tries_then_dies_again(app_db: AppDatabase):
    (row, *_rest) = three_dead_rows(app_db)
    app_db.outbox.requeue_dead(ids=[row.id])
    url = f"http://127.0.0.1:{free_port()}/hook"  # still down
    clock = [datetime.now(UTC).timestamp()]
    deliverer = OutboxDeliverer(app_db, url=url, secret="s", clock=lambda: clock[0], rng=MaxJitter(), timeout=2)
    outcomes = []
    for _ in range(MIN_ATTEMPTS_BEFORE_DEAD):
        counts = deliverer.deliver_due(limit=10)
        outcomes.append("dead" if counts["dead"] else "failed")
        clock[0] += 7200
    assert outcomes == ["failed"] * (MIN_ATTEMPTS_BEFORE_DEAD - 1) + ["dead"]
    state = app_db.outbox.get(row.id)
    assert state.status == "dead" and state.attempts == MIN_ATTEMPTS_BEFORE_DEAD
