"""The pickup of pending batches: the batch sensor's claim, and the batches a `POST /video/generate`
names, made claimable again.

Over `video_gen_batch` and `video_gen_jobs`. The web app names batches by their job ids (the Node
server's shape), by batch id or by listing; only `pending` batches are made claimable again, nothing else is changed: a
processing or terminal batch, and its failed or canceled jobs, stay as they are.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import sqlalchemy as sa

from zencourt_pipeline.db.clock import utcnow
from zencourt_pipeline.db.core import Db
from zencourt_pipeline.db.records import Batch, BatchStatus
from zencourt_pipeline.db.schema import video_gen_batch, video_gen_jobs

# a claimed batch still pending this long is offered again (its run request may have been lost
# with a killed daemon: the soak caught one left pending for the old 10 min window)
RECLAIM_AFTER = timedelta(seconds=60)
RETRY_RECLAIM_AFTER = timedelta(minutes=10)


class PickupRepository:
    """The batch sensor's claim; `POST /video/generate`: the batches that job ids or batch ids name, and their pickup."""

    def __init__(self, db: Db):
        self.db = db

    # -- the batch sensor ------------------------------------------------------------------
    def claim_pending_batches(self, limit: int = 25, reclaim_after: timedelta = RECLAIM_AFTER) -> list[Batch]:
        """Pending batches not handed to Dagster recently, marked as handed over now.

        Claiming is by status plus a lag window, never by `id > cursor` (rows commit out of
        order). If the sensor or the daemon dies after this commit but before its run request
        lands, the batch is offered again after `reclaim_after`: the sensor requests its run again
        unless a run with its key exists (the run key stops a second run in any case).
        """
        now = utcnow()
        batch = video_gen_batch.c
        claimable = sa.and_(
            batch.status == BatchStatus.PENDING,
            sa.or_(
                batch.claimed_at.is_(None),
                # a first intake whose run request may be lost: again after `reclaim_after`
                sa.and_(batch.intake_attempts == 0, batch.claimed_at < now - reclaim_after),
                # a retried intake is the failure sensor's (`retry_intake` claims it and bumps the
                # attempt before that sensor's run exists): offered here only after RETRY_RECLAIM_AFTER
                batch.claimed_at < now - RETRY_RECLAIM_AFTER,
            ),
        )
        # never-claimed batches first: reclaims (a run request that may not have landed) never
        # crowd a new batch out of the tick
        query = (
            sa.select(video_gen_batch)
            .where(claimable)
            .order_by(batch.claimed_at.is_not(None), batch.created_at, batch.id)
            .limit(limit)
        )
        claimed = []
        for candidate in self.db.fetch(query, Batch):
            # compare-and-set in its own short transaction: of concurrent claimers, one wins
            with self.db.transaction() as conn:
                result = conn.execute(
                    sa.update(video_gen_batch).where(batch.id == candidate.id, claimable).values(claimed_at=now)
                )
            if result.rowcount == 1:
                claimed.append(replace(candidate, claimed_at=now))
        return claimed

    def request_pickup(self, batch_id: str) -> bool:
        """`POST /video/generate`: make a pending batch claimable at the next sensor tick."""
        with self.db.transaction() as conn:
            result = conn.execute(
                sa.update(video_gen_batch)
                .where(video_gen_batch.c.id == batch_id, video_gen_batch.c.status == BatchStatus.PENDING)
                .values(claimed_at=None, updated_at=utcnow())
            )
        return result.rowcount == 1


    def batch_ids_of_jobs(self, job_ids: list[str]) -> dict[str, list[str]]:
        """{batch id: the given job ids in it}, batches in the order their first job was given;
        unknown job ids are in no list."""
        if not job_ids:
            return {}
        jobs = video_gen_jobs.c
        with self.db.engine.connect() as conn:
            owner = dict(conn.execute(sa.select(jobs.id, jobs.batch_id).where(jobs.id.in_(set(job_ids)))).all())
        covered: dict[str, list[str]] = {}
        for job_id in dict.fromkeys(job_ids):
            if job_id in owner:
                covered.setdefault(owner[job_id], []).append(job_id)
        return covered

    def batches_with_job_ids(self, batch_ids: list[str]) -> list[tuple[Batch, list[str]]]:
        """Each existing batch of `batch_ids` (oldest first) with all its job ids (in sort order)."""
        if not batch_ids:
            return []
        batch, jobs = video_gen_batch.c, video_gen_jobs.c
        with self.db.engine.connect() as conn:
            batches = [
                Batch.from_row(row)
                for row in conn.execute(
                    sa.select(video_gen_batch).where(batch.id.in_(set(batch_ids))).order_by(batch.created_at, batch.id)
                )
            ]
            job_rows = conn.execute(
                sa.select(jobs.batch_id, jobs.id)
                .where(jobs.batch_id.in_([b.id for b in batches]))
                .order_by(jobs.batch_id, jobs.sort_order, jobs.id)
            ).all()
        by_batch: dict[str, list[str]] = {b.id: [] for b in batches}
        for batch_id, job_id in job_rows:
            by_batch[batch_id].append(job_id)
        return [(b, by_batch[b.id]) for b in batches]

    def request_pickups(self, batch_ids: list[str]) -> list[str]:
        """Make the `pending` batches of `batch_ids` claimable at the next sensor tick (one
        statement); returns the ids it did that for, sorted. Other statuses are left alone."""
        if not batch_ids:
            return []
        batch = video_gen_batch.c
        with self.db.transaction() as conn:
            rows = conn.execute(
                sa.update(video_gen_batch)
                .where(batch.id.in_(set(batch_ids)), batch.status == BatchStatus.PENDING)
                .values(claimed_at=None, updated_at=utcnow())
                .returning(batch.id)
            ).all()
        return sorted(row.id for row in rows)
