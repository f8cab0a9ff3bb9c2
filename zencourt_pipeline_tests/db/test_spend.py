"""The money ledger (db/spend.py), on SQLite and on the real PostgreSQL server: every request in
exactly one ledger state, spend split by cost source, per batch, orphans, and the filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from zencourt_pipeline.db.schema import generation_tasks
from zencourt_pipeline.db.spend import LEDGER_STATES, BatchSpend, SpendLedger
from zencourt_pipeline_tests.conftest import make_batch

NOW = datetime.now(UTC).replace(microsecond=0)
OLD = NOW - timedelta(days=10)
RECENT = NOW - timedelta(hours=1)


def _task(db, job_id, provider, task_id, status, usd=None, source=None, *, orphan=False, at=RECENT, credits=None):
    """One generation_tasks row through the real writes (begin, submitted, provider cost), then
    the status, orphan flag and submission time set as the other code paths would."""
    batch_id = job_id.rsplit("-", 1)[0]
    row = db.ledger.begin_task(job_id, batch_id, provider)
    if task_id is not None:
        rate_usd = usd if source == "rate" else None
        db.ledger.task_submitted(row, job_id, provider, task_id, cost_usd=rate_usd, cost_source=source and "rate")
        if source == "provider":
            db.ledger.record_task_cost(provider, task_id, credits=credits or 0.0, cost_usd=usd)
    with db.db.transaction() as conn:
        conn.execute(
            sa.update(generation_tasks)
            .where(generation_tasks.c.id == row)
            .values(status=status, possibly_orphaned=orphan, submitted_at=at)
        )


@pytest.fixture
def ledger_db(app_db):
    """Rows in every ledger state, over three providers, four batches and two listings."""
    app_db.batches.insert_batch(*make_batch("sp1", n_jobs=3, listing_id="L1"))
    app_db.batches.insert_batch(*make_batch("sp2", n_jobs=2, listing_id="L1"))
    app_db.batches.insert_batch(*make_batch("sp3", n_jobs=1, listing_id="L2"))
    app_db.batches.insert_batch(*make_batch("sp4", n_jobs=1, listing_id="L2"))
    # sp1
    _task(app_db, "sp1-0", "runway", "rw-1", "succeeded", 0.25, "rate", at=OLD)  # completed, 10 days ago
    _task(app_db, "sp1-1", "runway", "rw-2", "superseded", 0.50, "provider", credits=50)  # superseded
    _task(app_db, "sp1-1", "runway", "rw-3", "submitted", 0.25, "rate")  # in flight
    _task(app_db, "sp1-2", "fal", None, "failed")  # refused by the provider: unpaid
    _task(app_db, "sp1-2", "fal", "fal-1", "failed", 0.25, "rate")  # failed
    # sp2
    _task(app_db, "sp2-0", "fal", "fal-2", "canceled", 0.50, "rate")  # canceled
    _task(app_db, "sp2-1", "fal", None, "submitting", orphan=True)  # ambiguous create, no figure
    _task(app_db, "sp2-1", "runway", "rw-4", "succeeded", 0.25, "rate", orphan=True)  # flagged: orphan wins
    # sp3
    _task(app_db, "sp3-0", "local", "loc-1", "succeeded", 0.0, "rate")  # completed, free
    _task(app_db, "sp3-0", "runway", "rw-5", "answer_lost", 0.30, "provider", credits=30)  # unknown status
    _task(app_db, "sp3-0", "runway", None, "submitting")  # an intent still being sent: unpaid
    _task(app_db, "sp3-0", "fal", "fal-3", "succeeded")  # completed, no cost figure: unpriced
    # sp4: nothing the provider accepted
    _task(app_db, "sp4-0", "local", None, "failed")
    return app_db


def _states(**counts) -> dict[str, int]:
    return {state: counts.get(state, 0) for state in LEDGER_STATES}


def test_every_request_is_in_one_ledger_state_with_its_cost(ledger_db):
    ledger = ledger_db.spend.spend_ledger()
    assert [p.provider for p in ledger.providers] == ["fal", "local", "runway"]
    fal, local, runway = ledger.providers

    assert runway.states == _states(completed=1, superseded=1, created=1, possibly_orphaned=1, other=1, unpaid=1)
    assert (runway.tasks, runway.possibly_orphaned, runway.unpaid, runway.unpriced) == (5, 1, 1, 0)
    assert (runway.usd_provider, runway.usd_rate, runway.usd, runway.orphan_usd) == (0.8, 0.75, 1.55, 0.25)

    assert fal.states == _states(unpaid=1, failed=1, canceled=1, possibly_orphaned=1, completed=1)
    assert (fal.tasks, fal.possibly_orphaned, fal.unpaid, fal.unpriced) == (4, 1, 1, 2)
    assert (fal.usd_provider, fal.usd_rate, fal.usd, fal.orphan_usd) == (0.0, 0.75, 0.75, 0.0)

    assert local.states == _states(completed=1, unpaid=1)
    assert (local.tasks, local.usd, local.unpriced) == (1, 0.0, 0)

    assert ledger.states == _states(
        created=1, completed=3, failed=1, canceled=1, superseded=1, possibly_orphaned=2, other=1, unpaid=3
    )
    assert sum(ledger.states.values()) == 13  # every row accounted for
    assert (ledger.tasks, ledger.possibly_orphaned, ledger.unpaid, ledger.unpriced) == (10, 2, 3, 2)
    assert (ledger.usd, ledger.usd_provider, ledger.usd_rate, ledger.orphan_usd) == (2.3, 0.8, 1.5, 0.25)


def test_spend_per_batch_most_expensive_first(ledger_db):
    assert ledger_db.spend.spend_by_batch() == [
        BatchSpend("sp1", "L1", tasks=4, usd=1.25, possibly_orphaned=0, unpriced=0),
        BatchSpend("sp2", "L1", tasks=3, usd=0.75, possibly_orphaned=2, unpriced=1),
        BatchSpend("sp3", "L2", tasks=3, usd=0.3, possibly_orphaned=0, unpriced=1),
    ]  # sp4 paid nothing
    assert [b.batch_id for b in ledger_db.spend.spend_by_batch(limit=2)] == ["sp1", "sp2"]
    assert ledger_db.spend.count_spending_batches() == 3
    assert ledger_db.spend.count_spending_batches(listing_id="L2") == 1


def test_filters_by_time_batch_and_listing(ledger_db):
    recent = ledger_db.spend.spend_ledger(since=NOW - timedelta(days=2))
    runway = recent.by_provider()["runway"]
    assert runway.states["completed"] == 0 and runway.tasks == 4 and runway.usd_rate == 0.5
    assert (recent.tasks, recent.usd) == (9, 2.05)
    assert ledger_db.spend.spend_by_batch(since=NOW - timedelta(days=2))[0] == BatchSpend("sp1", "L1", 3, 1.0, 0, 0)

    old = ledger_db.spend.spend_ledger(until=NOW - timedelta(days=2))
    assert [(p.provider, p.tasks, p.usd) for p in old.providers] == [("runway", 1, 0.25)]
    # a naive bound is UTC
    naive = ledger_db.spend.spend_ledger(until=(NOW - timedelta(days=2)).replace(tzinfo=None))
    assert naive.tasks == 1

    listing = ledger_db.spend.spend_ledger(listing_id="L1")
    assert [(p.provider, p.tasks, p.usd) for p in listing.providers] == [("fal", 3, 0.75), ("runway", 4, 1.25)]
    assert listing.possibly_orphaned == 2 and listing.unpaid == 1
    assert [b.batch_id for b in ledger_db.spend.spend_by_batch(listing_id="L1")] == ["sp1", "sp2"]

    batch = ledger_db.spend.spend_ledger(batch_id="sp2")
    fal, runway = batch.providers
    assert fal.states == _states(canceled=1, possibly_orphaned=1) and (fal.usd, fal.unpriced) == (0.5, 1)
    assert runway.states == _states(possibly_orphaned=1) and runway.orphan_usd == 0.25
    assert (batch.tasks, batch.usd, batch.possibly_orphaned, batch.orphan_usd) == (3, 0.75, 2, 0.25)
    assert ledger_db.spend.spend_by_batch(batch_id="sp4") == [] and ledger_db.spend.spend_ledger(batch_id="sp4").tasks == 0
    assert ledger_db.spend.spend_ledger(batch_id="sp4").unpaid == 1


def test_an_empty_ledger(app_db):
    ledger = app_db.spend.spend_ledger()
    assert ledger == SpendLedger()
    assert (ledger.tasks, ledger.usd, ledger.possibly_orphaned, ledger.states["unpaid"]) == (0, 0.0, 0, 0)
    assert app_db.spend.spend_by_batch() == [] and app_db.spend.count_spending_batches() == 0
