"""Queries of the batch watchdog and the fair sensors: rotation, bulk generation state, attempts.

`LivenessRepository`, over the batches, jobs, tasks and completions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa

from zencourt_pipeline.db.clock import utcnow
from zencourt_pipeline.db.core import Db
from zencourt_pipeline.db.generation import unfinished_accepted
from zencourt_pipeline.db.records import (
    OPEN_BATCH_STATUSES,
    TERMINAL_STATUSES,
    Batch,
    BatchEventType,
    BatchStatus,
    CompletionRecord,
    GenerationTaskStatus,
    Job,
    JobStatus,
    Task,
)
from zencourt_pipeline.db.schema import (
    generation_completions,
    generation_tasks,
    video_gen_batch,
    video_gen_jobs,
)


@dataclass
class BatchGenerationRows:
    """Everything `generation_state` needs of one batch, read in bulk for a page of batches."""

    jobs: list[Job] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    completions: list[CompletionRecord] = field(default_factory=list)


class LivenessRepository:
    """What the watchdog and the fair sensors read and stamp."""

    def __init__(self, db: Db):
        self.db = db

    def rotate_batches(self, status: BatchStatus, limit: int) -> list[Batch]:
        """The `limit` batches in `status` a sensor looked at least recently (never-looked-at first),
        stamped as looked at now: every open batch gets its turn, whatever the others' state."""
        batch = video_gen_batch.c
        query = (
            sa.select(video_gen_batch)
            .where(batch.status == status)
            .order_by(batch.sensor_checked_at.is_not(None), batch.sensor_checked_at, batch.id)
            .limit(limit)
        )
        rows = self.db.fetch(query, Batch)
        if rows:
            with self.db.transaction() as conn:
                conn.execute(
                    sa.update(video_gen_batch)
                    .where(batch.id.in_([row.id for row in rows]))
                    .values(sensor_checked_at=utcnow())
                )
        return rows

    def defer_batches(self, batch_ids: list[str]) -> None:
        """These batches go to the front of the next rotation page (their turn was cut short)."""
        if batch_ids:
            with self.db.transaction() as conn:
                conn.execute(
                    sa.update(video_gen_batch).where(video_gen_batch.c.id.in_(batch_ids)).values(sensor_checked_at=None)
                )

    def generation_rows(self, batch_ids: list[str]) -> dict[str, BatchGenerationRows]:
        """Jobs, tasks and completions of these batches in three queries (not three per batch)."""
        out = {batch_id: BatchGenerationRows() for batch_id in batch_ids}
        if not batch_ids:
            return out
        jobs = self.db.fetch(
            sa.select(video_gen_jobs)
            .where(video_gen_jobs.c.batch_id.in_(batch_ids))
            .order_by(video_gen_jobs.c.sort_order, video_gen_jobs.c.id),
            Job,
        )
        tasks = self.db.fetch(
            sa.select(generation_tasks).where(generation_tasks.c.batch_id.in_(batch_ids)).order_by(generation_tasks.c.id),
            Task,
        )
        completions = self.db.fetch(
            sa.select(generation_completions)
            .where(generation_completions.c.batch_id.in_(batch_ids))
            .order_by(generation_completions.c.id),
            CompletionRecord,
        )
        for job in jobs:
            out[job.batch_id].jobs.append(job)
        for task in tasks:
            out[task.batch_id].tasks.append(task)
        for completion in completions:
            out[completion.batch_id].completions.append(completion)
        return out

    def mark_compose_requested(self, batch_id: str, digest: str, attempts: int) -> None:
        """The compose run for this completion state (attempt `attempts`) has been requested."""
        with self.db.transaction() as conn:
            conn.execute(
                sa.update(video_gen_batch)
                .where(video_gen_batch.c.id == batch_id)
                .values(composed_digest=digest, compose_attempts=attempts, blocked_reason=None)
            )

    def block_batch(self, batch_id: str, reason: str | None) -> None:
        """A batch composition cannot go on without an operator (CLIP_CHECK_FAILED), or not blocked."""
        batch = video_gen_batch.c
        with self.db.transaction() as conn:
            before = self.db.batch_for_update(conn, batch_id)
            conn.execute(
                sa.update(video_gen_batch)
                .where(batch.id == batch_id, batch.status.notin_(list(TERMINAL_STATUSES)))
                .values(blocked_reason=reason, updated_at=utcnow())
            )
            if before is not None and not before.terminal and before.blocked_reason != reason:
                self.db.record(conn, batch_id, BatchEventType.BLOCKED, blockedReason=reason)

    def retry_intake(self, batch_id: str) -> int | None:
        """A failed intake run of a still-open batch: count the attempt (the next run gets a new run
        key) and stamp the claim; returns the attempt count, None when the batch is not open."""
        batch = video_gen_batch.c
        with self.db.transaction() as conn:
            result = conn.execute(
                sa.update(video_gen_batch)
                .where(batch.id == batch_id, batch.status.in_(OPEN_BATCH_STATUSES))
                .values(intake_attempts=batch.intake_attempts + 1, claimed_at=utcnow(), updated_at=utcnow())
            )
            if result.rowcount != 1:
                return None
            return int(conn.execute(sa.select(batch.intake_attempts).where(batch.id == batch_id)).scalar())

    def live_tasks_of_ended_jobs(self, limit: int = 100) -> list[Task]:
        """Accepted, unfinished provider tasks whose job already ended (canceled, timed out, failed):
        what a cancel has still to stop at the provider. Durable: the reconciler retries them."""
        task, job = generation_tasks.c, video_gen_jobs.c
        query = (
            sa.select(generation_tasks)
            .join(video_gen_jobs, job.id == task.job_id)
            .where(*unfinished_accepted())
            .where(job.status.in_([JobStatus.CANCELED, JobStatus.FAILED]))
            .order_by(task.id)
            .limit(limit)
        )
        return self.db.fetch(query, Task)

    def intents_of_ended_jobs(self, older_than: timedelta, limit: int = 100) -> list[Task]:
        """Creates never answered (no task id, still `submitting`) of jobs that ended, begun more
        than `older_than` ago: a run stopped mid-create (a cancel's termination, a kill) and no
        later run looks at an ended job's tasks."""
        task, job = generation_tasks.c, video_gen_jobs.c
        query = (
            sa.select(generation_tasks)
            .join(video_gen_jobs, job.id == task.job_id)
            .where(task.status == GenerationTaskStatus.SUBMITTING, task.task_id.is_(None))
            .where(task.created_at < utcnow() - older_than)
            .where(job.status.in_(list(TERMINAL_STATUSES)))
            .order_by(task.id)
            .limit(limit)
        )
        return self.db.fetch(query, Task)

    def mark_task_canceled(self, row_id: int) -> None:
        """The provider confirmed (or no longer knows) the cancel of this task: it is not live any more."""
        with self.db.transaction() as conn:
            conn.execute(
                sa.update(generation_tasks)
                .where(generation_tasks.c.id == row_id, generation_tasks.c.status == GenerationTaskStatus.SUBMITTED)
                .values(status=GenerationTaskStatus.CANCELED, finished_at=utcnow(), updated_at=utcnow())
            )
