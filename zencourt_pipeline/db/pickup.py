"""The batches a `POST /video/generate` names, and their pickup.

A mixin of `AppDatabase` (through `BatchQueries`, see database.py), over `video_gen_batch` and
`video_gen_jobs`. The web app names batches by their job ids (the Node server's shape), by batch
id or by listing; only `pending` batches are made claimable again, nothing else is changed: a
processing or terminal batch, and its failed or canceled jobs, stay as they are.
"""

from __future__ import annotations

import sqlalchemy as sa

from zencourt_pipeline.db.clock import utcnow
from zencourt_pipeline.db.records import Batch, BatchStatus
from zencourt_pipeline.db.schema import video_gen_batch, video_gen_jobs


class PickupQueries:
    """`POST /video/generate`: the batches that job ids or batch ids name, and their pickup."""

    engine: sa.Engine

    def batch_ids_of_jobs(self, job_ids: list[str]) -> dict[str, list[str]]:
        """{batch id: the given job ids in it}, batches in the order their first job was given;
        unknown job ids are in no list."""
        if not job_ids:
            return {}
        jobs = video_gen_jobs.c
        with self.engine.connect() as conn:
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
        with self.engine.connect() as conn:
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
        with self.engine.begin() as conn:
            rows = conn.execute(
                sa.update(video_gen_batch)
                .where(batch.id.in_(set(batch_ids)), batch.status == BatchStatus.PENDING)
                .values(claimed_at=None, updated_at=utcnow())
                .returning(batch.id)
            ).all()
        return sorted(row.id for row in rows)
