"""Cancels: of jobs, a batch or a listing (`POST /video/cancel`), and what the route reports after.

A mixin of `AppDatabase` (see database.py). Needs `self.engine`, `self.transaction()`,
`self._batch_for_update`, `self._emit` and `self._record`.
"""

from __future__ import annotations

import sqlalchemy as sa

from zencourt_pipeline.db.clock import utcnow
from zencourt_pipeline.db.records import TERMINAL_STATUSES, BatchEventType, BatchStatus, Job, JobStatus
from zencourt_pipeline.db.schema import video_gen_batch, video_gen_jobs
from zencourt_pipeline.errors import ErrorCode


class CancelQueries:
    def cancel(
        self, *, batch_id: str | None = None, listing_id: str | None = None, job_ids: list[str] | None = None
    ) -> list[Job]:
        """Cancel non-terminal jobs; a batch whose jobs are all canceled ends `canceled`.

        Returns the jobs that were canceled (with their provider and task id, so the caller
        can cancel the provider tasks).
        """
        jobs = video_gen_jobs.c
        query = sa.select(video_gen_jobs).where(jobs.status.notin_(list(TERMINAL_STATUSES)))
        if job_ids is not None:
            query = query.where(jobs.id.in_(job_ids))
        elif batch_id is not None:
            query = query.where(jobs.batch_id == batch_id)
        elif listing_id is not None:
            batch_ids = sa.select(video_gen_batch.c.id).where(video_gen_batch.c.listing_id == listing_id)
            query = query.where(jobs.batch_id.in_(batch_ids))
        else:
            raise ValueError("cancel needs batch_id, listing_id or job_ids")
        now = utcnow()
        with self.transaction() as conn:
            canceled = [Job.from_row(row) for row in conn.execute(query)]
            ids = [job.id for job in canceled]
            if ids:
                conn.execute(
                    sa.update(video_gen_jobs)
                    .where(jobs.id.in_(ids))
                    .values(
                        status=JobStatus.CANCELED,
                        error_code=ErrorCode.CANCELED,
                        error_message="canceled by request",
                        updated_at=now,
                    )
                )
            for job in canceled:
                self._record(
                    conn, job.batch_id, BatchEventType.JOB_CANCELED, job_id=job.id, status=JobStatus.CANCELED,
                    provider=job.provider, errorCode=ErrorCode.CANCELED, error="canceled by request",
                )  # fmt: skip
            affected = {job.batch_id for job in canceled}
            if batch_id is not None:
                affected.add(batch_id)
            if listing_id is not None:
                affected |= {
                    row.id
                    for row in conn.execute(
                        sa.select(video_gen_batch.c.id).where(video_gen_batch.c.listing_id == listing_id)
                    )
                }
            for affected_id in sorted(affected):
                batch = self._batch_for_update(conn, affected_id)
                if batch is None or batch.terminal:
                    continue
                remaining = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(video_gen_jobs)
                    .where(jobs.batch_id == affected_id, jobs.status.notin_(list(TERMINAL_STATUSES)))
                ).scalar()
                usable = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(video_gen_jobs)
                    .where(
                        jobs.batch_id == affected_id,
                        sa.or_(jobs.status == JobStatus.COMPLETED, jobs.raw_clip_key.is_not(None)),
                        jobs.status != JobStatus.CANCELED,
                    )
                ).scalar()
                # canceling jobs by id cancels the batch only when nothing of it is left to compose;
                # with completed clips the batch goes on and is composed from them
                if job_ids is None or (remaining == 0 and usable == 0):
                    conn.execute(
                        sa.update(video_gen_batch)
                        .where(video_gen_batch.c.id == affected_id)
                        .values(status=BatchStatus.CANCELED, error="canceled by request", updated_at=now)
                    )
                    self._emit(conn, "batch.canceled", affected_id, error="canceled by request")
                    self._record(
                        conn, affected_id, BatchEventType.CANCELED, status=BatchStatus.CANCELED,
                        errorCode=ErrorCode.CANCELED, error="canceled by request",
                    )  # fmt: skip
        return canceled


    def listing_batch_ids(self, listing_id: str) -> set[str]:
        """The ids of every batch of this listing."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(video_gen_batch.c.id).where(video_gen_batch.c.listing_id == listing_id))
            return {row.id for row in rows}

    def canceled_batch_ids(self, batch_ids: set[str] | list[str]) -> list[str]:
        """Which of these batches are `canceled`, sorted."""
        if not batch_ids:
            return []
        batch = video_gen_batch.c
        query = sa.select(batch.id).where(batch.id.in_(sorted(batch_ids)), batch.status == BatchStatus.CANCELED)
        with self.engine.connect() as conn:
            return sorted(row.id for row in conn.execute(query))
