"""Cancels: of jobs, a batch or a listing (`POST /video/cancel`), and what the route reports after.

`CancelRepository`, over `video_gen_batch` and `video_gen_jobs`: a batch that ends canceled
reports `batch.canceled` (`Db.emit`) in the cancel's transaction, and drops the outputs its
composition published before the batch's end (`video_url` and `video_gen_outputs`).
"""

from __future__ import annotations

import sqlalchemy as sa

from zencourt_pipeline.db.clock import utcnow
from zencourt_pipeline.db.core import Db
from zencourt_pipeline.db.outputs import replace_outputs
from zencourt_pipeline.db.records import TERMINAL_STATUSES, BatchEventType, BatchStatus, Job, JobStatus
from zencourt_pipeline.db.schema import video_gen_batch, video_gen_jobs
from zencourt_pipeline.errors import ErrorCode

CANCELED_MESSAGE = "canceled by request"


class CancelRepository:
    """Cancels of jobs, batches and listings."""

    def __init__(self, db: Db):
        self.db = db

    def cancel(
        self, *, batch_id: str | None = None, listing_id: str | None = None, job_ids: list[str] | None = None
    ) -> list[Job]:
        """Cancel non-terminal jobs; a batch whose jobs are all canceled ends `canceled`.

        Returns the jobs that were canceled (with their provider and task id, so the caller
        can cancel the provider tasks).
        """
        jobs = video_gen_jobs.c
        of_listing = sa.select(video_gen_batch.c.id).where(video_gen_batch.c.listing_id == listing_id)
        query = sa.select(video_gen_jobs).where(jobs.status.notin_(list(TERMINAL_STATUSES)))
        if job_ids is not None:
            query = query.where(jobs.id.in_(job_ids))
        elif batch_id is not None:
            query = query.where(jobs.batch_id == batch_id)
        elif listing_id is not None:
            query = query.where(jobs.batch_id.in_(of_listing))
        else:
            raise ValueError("cancel needs batch_id, listing_id or job_ids")
        with self.db.transaction() as conn:
            canceled = [Job.from_row(row) for row in conn.execute(query)]
            self._cancel_jobs(conn, canceled)
            affected = {job.batch_id for job in canceled} | ({batch_id} if batch_id is not None else set())
            if listing_id is not None:
                affected |= {row.id for row in conn.execute(of_listing)}
            for affected_id in sorted(affected):
                self._cancel_batch_if_done(conn, affected_id, by_job_ids=job_ids is not None)
        return canceled

    def _cancel_jobs(self, conn: sa.Connection, canceled: list[Job]) -> None:
        if canceled:
            conn.execute(
                sa.update(video_gen_jobs)
                .where(video_gen_jobs.c.id.in_([job.id for job in canceled]))
                .values(
                    status=JobStatus.CANCELED, error_code=ErrorCode.CANCELED, error_message=CANCELED_MESSAGE,
                    updated_at=utcnow(),
                )
            )  # fmt: skip
        for job in canceled:
            self.db.record(
                conn, job.batch_id, BatchEventType.JOB_CANCELED, job_id=job.id, status=JobStatus.CANCELED,
                provider=job.provider, errorCode=ErrorCode.CANCELED, error=CANCELED_MESSAGE,
            )  # fmt: skip

    def _cancel_batch_if_done(self, conn: sa.Connection, batch_id: str, *, by_job_ids: bool) -> None:
        """A whole-batch or listing cancel ends the open batch `canceled`; canceling jobs by id
        does only when nothing of it is left to compose (with completed clips it goes on and is
        composed from them)."""
        batch = self.db.batch_for_update(conn, batch_id)
        if batch is None or batch.terminal:
            return
        jobs = video_gen_jobs.c

        def count(*where) -> int:
            return conn.execute(sa.select(sa.func.count()).select_from(video_gen_jobs).where(jobs.batch_id == batch_id, *where)).scalar()

        if by_job_ids:
            remaining = count(jobs.status.notin_(list(TERMINAL_STATUSES)))
            usable = count(sa.or_(jobs.status == JobStatus.COMPLETED, jobs.raw_clip_key.is_not(None)), jobs.status != JobStatus.CANCELED)
            if remaining or usable:
                return
        conn.execute(
            sa.update(video_gen_batch)
            .where(video_gen_batch.c.id == batch_id)
            .values(status=BatchStatus.CANCELED, error=CANCELED_MESSAGE, video_url=None, thumbnail_url=None, updated_at=utcnow())
        )
        replace_outputs(conn, batch_id, [])  # the outputs its composition published before its end, if any
        self.db.emit(conn, "batch.canceled", batch_id, error=CANCELED_MESSAGE)
        self.db.record(
            conn, batch_id, BatchEventType.CANCELED, status=BatchStatus.CANCELED,
            errorCode=ErrorCode.CANCELED, error=CANCELED_MESSAGE,
        )  # fmt: skip

    def listing_batch_ids(self, listing_id: str) -> set[str]:
        """The ids of every batch of this listing."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(sa.select(video_gen_batch.c.id).where(video_gen_batch.c.listing_id == listing_id))
            return {row.id for row in rows}

    def canceled_batch_ids(self, batch_ids: set[str] | list[str]) -> list[str]:
        """Which of these batches are `canceled`, sorted."""
        if not batch_ids:
            return []
        batch = video_gen_batch.c
        query = sa.select(batch.id).where(batch.id.in_(sorted(batch_ids)), batch.status == BatchStatus.CANCELED)
        with self.db.engine.connect() as conn:
            return sorted(row.id for row in conn.execute(query))
