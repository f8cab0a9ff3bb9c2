"""Generation tasks: what was paid for (the completions, what came back, are in completions.py).

`TaskLedger`: one row per create sent to a provider, from the intent (`begin_task`, before the
call) to its answer, its completion and its cost.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from zencourt_pipeline.db.clock import utcnow
from zencourt_pipeline.db.completions import lock_task_key
from zencourt_pipeline.db.core import Db
from zencourt_pipeline.db.records import (
    TERMINAL_STATUSES,
    BatchEventType,
    BatchStatus,
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

# what a regeneration supersedes: the task was paid and is finished
FINISHED_TASK_STATUSES = (
    GenerationTaskStatus.SUCCEEDED,
    GenerationTaskStatus.FAILED,
    GenerationTaskStatus.CANCELED,
    GenerationTaskStatus.ABANDONED,
)
# a task that is or will be paid and is not replaced: while one exists for a job and provider,
# nothing else submits that job there (`begin_task` refuses a second intent: `IntentOpen`)
LIVE_TASK_STATUSES = (GenerationTaskStatus.SUBMITTING, GenerationTaskStatus.SUBMITTED, GenerationTaskStatus.SUCCEEDED)
# what a regeneration moves back to processing
REGENERABLE_BATCH_STATUSES = (BatchStatus.PENDING, BatchStatus.PROCESSING, BatchStatus.COMPLETED, BatchStatus.FAILED)


def unfinished_accepted() -> tuple:
    """Conditions of an accepted provider task with no recorded completion (still live at the provider)."""
    task = generation_tasks.c
    done = sa.select(generation_completions.c.id).where(
        generation_completions.c.provider == task.provider, generation_completions.c.task_id == task.task_id
    )
    return task.status == GenerationTaskStatus.SUBMITTED, task.task_id.is_not(None), ~sa.exists(done)


class TaskIdTaken(Exception):  # noqa: N818 - a fact about the provider's answer, not a crash
    """The provider answered a create with a task id another ledger row already holds (a duplicate
    create answer): the task this create made, if any, is unknown."""

    def __init__(self, provider: str, task_id: str, owner_job_id: str):
        super().__init__(
            f"{provider} answered the create with task {task_id}, which the create of job {owner_job_id} already got: "
            "this create's own task is unknown"
        )
        self.provider, self.task_id, self.owner_job_id = provider, task_id, owner_job_id


class IntentOpen(Exception):  # noqa: N818 - a fact about the ledger, not a crash
    """The job already has a live task at this provider (an intent or an accepted task): another
    run is submitting it, or did. This one must not send (and pay for) a second create."""

    def __init__(self, job_id: str, provider: str, row_id: int):
        super().__init__(f"job {job_id} already has a live {provider} task (ledger row {row_id}): not sent again")
        self.job_id, self.provider, self.row_id = job_id, provider, row_id


class TaskLedger:
    """`generation_tasks`: what was paid for, and the jobs' side of it."""

    def __init__(self, db: Db):
        self.db = db

    # -- generation tasks (what we paid for) ---------------------------------------------------
    def begin_task(self, job_id: str, batch_id: str, provider: str, *, run_id: str | None = None) -> int:
        """Record the intent to submit (and which run holds it) before calling the provider.

        One live task per job and provider: under the job's row lock, an intent is refused
        (`IntentOpen`) while the job has a submitting, submitted or succeeded row there, so two
        runs racing over one job (a re-requested intake, a duplicate fallback) pay once.
        """
        with self.db.transaction() as conn:
            self.db.job_for_update(conn, job_id)
            task = generation_tasks.c
            live = conn.execute(
                sa.select(task.id)
                .where(task.job_id == job_id, task.provider == provider, task.status.in_(LIVE_TASK_STATUSES))
                .limit(1)
            ).scalar()
            if live is not None:
                raise IntentOpen(job_id, provider, int(live))
            result = conn.execute(
                sa.insert(generation_tasks).values(
                    job_id=job_id,
                    batch_id=batch_id,
                    provider=provider,
                    status=GenerationTaskStatus.SUBMITTING,
                    submitted_at=utcnow(),
                    provider_meta=json.dumps({"intent_run_id": run_id}) if run_id else None,
                )
            )
            return int(result.inserted_primary_key[0])

    def task_submitted(
        self,
        row_id: int,
        job_id: str,
        provider: str,
        task_id: str,
        *,
        cost: float | None = None,
        cost_usd: float | None = None,
        cost_source: str | None = None,
        meta: dict | None = None,
    ) -> None:
        """Persist the provider's task id on the task row and the job, in one transaction.

        A completion can arrive before this runs (a fast webhook, the local generator): it was
        recorded without its job, and is linked here. A task id another row holds raises
        TaskIdTaken, and nothing is written.
        """
        now = utcnow()
        with self.db.transaction() as conn:
            lock_task_key(conn, provider, task_id)  # against a webhook recording this id right now
            task = generation_tasks.c
            owner = conn.execute(
                sa.select(task.job_id).where(task.provider == provider, task.task_id == task_id, task.id != row_id)
            ).scalar()
            if owner is not None:
                raise TaskIdTaken(provider, task_id, owner)
            task_values: dict[str, Any] = {
                "task_id": task_id,
                "status": GenerationTaskStatus.SUBMITTED,
                "cost_credits": cost,
                "cost_usd": cost_usd,
                "cost_source": cost_source,
                "updated_at": now,
            }
            if meta is not None:
                task_values["provider_meta"] = json.dumps(meta)
            task_values.update(self._link_early_completion(conn, provider, task_id, job_id))
            try:
                with conn.begin_nested():
                    conn.execute(sa.update(generation_tasks).where(generation_tasks.c.id == row_id).values(**task_values))
            except sa.exc.IntegrityError:  # another create's answer named this id meanwhile
                raise TaskIdTaken(provider, task_id, "another job") from None
            self._job_submitted(conn, job_id, provider, task_id, now)

    def _link_early_completion(self, conn: sa.Connection, provider: str, task_id: str, job_id: str) -> dict[str, Any]:
        """A completion of this task recorded before its id was (a fast webhook) is linked to the
        job and batch; the task's values it settles (status, error, finish), {} when there is none."""
        completion = conn.execute(
            sa.select(generation_completions).where(
                generation_completions.c.provider == provider, generation_completions.c.task_id == task_id
            )
        ).first()
        if completion is None:
            return {}
        conn.execute(
            sa.update(generation_completions)
            .where(generation_completions.c.id == completion.id)
            .values(job_id=job_id, batch_id=self.db.batch_of_job(conn, job_id))
        )
        return {
            "status": completion.status, "error_code": completion.error_code,
            "error_message": completion.error_message, "finished_at": completion.received_at,
        }  # fmt: skip

    def _job_submitted(self, conn: sa.Connection, job_id: str, provider: str, task_id: str, now: datetime) -> None:
        """The job names its task and is processing. A job canceled (or failed) while its create
        was in flight stays so: the task is then live for an ended job, and the reconciler cancels
        it at the provider."""
        before = self.db.job_for_update(conn, job_id)
        job = video_gen_jobs.c
        status = sa.case((job.status.in_(list(TERMINAL_STATUSES)), job.status), else_=sa.literal(str(JobStatus.PROCESSING)))
        conn.execute(
            sa.update(video_gen_jobs)
            .where(job.id == job_id)
            .values(status=status, provider=provider, provider_task_id=task_id, updated_at=now)
        )
        self._record_submitted(conn, before, provider, task_id)

    def task_rejected(self, row_id: int, code: str, message: str) -> None:
        """The provider refused the submission (nothing to pay for)."""
        with self.db.transaction() as conn:
            conn.execute(
                sa.update(generation_tasks)
                .where(generation_tasks.c.id == row_id)
                .values(
                    status=GenerationTaskStatus.FAILED, error_code=code, error_message=message[:2000], finished_at=utcnow()
                )
            )

    def task_answer_lost(
        self, row_id: int, code: str, message: str, *, cost_usd: float | None = None, cost_source: str | None = None
    ) -> None:
        """The create reached the provider and its answer was lost: the task may exist and be paid.

        Kept on the ledger as a possibly paid task (`possibly_orphaned`, with its estimated cost),
        unlike a refused create (`task_rejected`: no flag, no cost). Its job names the provider.
        """
        now = utcnow()
        with self.db.transaction() as conn:
            conn.execute(
                sa.update(generation_tasks)
                .where(generation_tasks.c.id == row_id)
                .values(
                    status=GenerationTaskStatus.FAILED,
                    error_code=code,
                    error_message=message[:2000],
                    possibly_orphaned=True,
                    cost_usd=cost_usd,
                    cost_source=cost_source,
                    finished_at=now,
                    updated_at=now,
                )
            )
            task = conn.execute(sa.select(generation_tasks).where(generation_tasks.c.id == row_id)).first()
            if task is not None:
                conn.execute(
                    sa.update(video_gen_jobs)
                    .where(video_gen_jobs.c.id == task.job_id)
                    .values(provider=task.provider, updated_at=now)
                )

    def task_output_rejected(self, row_id: int, code: str, message: str) -> None:
        """The finished (paid) task's output is the provider's bad output (INVALID_OUTPUT): the row
        stays `succeeded` and paid, with the reason its clip was not used."""
        with self.db.transaction() as conn:
            conn.execute(
                sa.update(generation_tasks)
                .where(generation_tasks.c.id == row_id)
                .values(error_code=code, error_message=message[:2000], updated_at=utcnow())
            )

    def task_download_failed(self, row_id: int, downloads: int, message: str) -> int:
        """Count `downloads` more failed downloads of a finished task's output; the new total."""
        with self.db.transaction() as conn:
            conn.execute(
                sa.update(generation_tasks)
                .where(generation_tasks.c.id == row_id)
                .values(
                    download_attempts=generation_tasks.c.download_attempts + downloads,
                    download_error=message[:2000],
                    updated_at=utcnow(),
                )
            )
            total = conn.execute(
                sa.select(generation_tasks.c.download_attempts).where(generation_tasks.c.id == row_id)
            ).scalar_one()
        return int(total)

    def tasks_for_job(self, job_id: str) -> list[Task]:
        """Every generation task of a job, in the order they were written."""
        return self.db.fetch(
            sa.select(generation_tasks).where(generation_tasks.c.job_id == job_id).order_by(generation_tasks.c.id), Task
        )

    def tasks_for_batch(self, batch_id: str) -> list[Task]:
        """Every generation task of a batch, in the order they were written."""
        return self.db.fetch(
            sa.select(generation_tasks)
            .where(generation_tasks.c.batch_id == batch_id)
            .order_by(generation_tasks.c.id),
            Task,
        )

    def task_known(self, provider: str, task_id: str) -> bool:
        """Whether a task row holds this provider task id (a webhook may come before it is persisted)."""
        task = generation_tasks.c
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(task.id).where(task.provider == provider, task.task_id == task_id)).first()
        return row is not None

    # -- completions ---------------------------------------------------------------------------
    def tasks_awaiting_completion(
        self, *, provider: str | None = None, submitted_before: timedelta = timedelta(0),
        polled_before: timedelta = timedelta(0), limit: int = 50,
    ) -> list[Task]:
        """Accepted tasks with no recorded completion, of jobs still in flight, least recently polled first."""
        now = utcnow()
        task, job = generation_tasks.c, video_gen_jobs.c
        query = (
            sa.select(generation_tasks)
            .join(video_gen_jobs, job.id == task.job_id)
            .where(*unfinished_accepted())
            .where(job.status.notin_(list(TERMINAL_STATUSES)), job.provider_task_id == task.task_id)
            .where(task.submitted_at <= now - submitted_before)
            .where(sa.or_(task.last_polled_at.is_(None), task.last_polled_at <= now - polled_before))
            .order_by(task.last_polled_at.is_not(None), task.last_polled_at, task.id)
            .limit(limit)
        )
        if provider is not None:
            query = query.where(task.provider == provider)
        return self.db.fetch(query, Task)

    def mark_polled(self, row_ids: Sequence[int], *, polled: bool = True) -> None:
        """Stamp the time these tasks were last polled at their provider (one statement);
        `polled=False` clears it: tasks claimed for a tick that ended before their poll went out
        come first in the next one."""
        if not row_ids:
            return
        with self.db.transaction() as conn:
            conn.execute(
                sa.update(generation_tasks)
                .where(generation_tasks.c.id.in_(list(row_ids)))
                .values(last_polled_at=utcnow() if polled else None)
            )

    def live_tasks_for_jobs(self, job_ids: list[str]) -> list[Task]:
        """Accepted tasks of these jobs that have no completion yet (to cancel at the provider)."""
        if not job_ids:
            return []
        task = generation_tasks.c
        query = sa.select(generation_tasks).where(
            task.job_id.in_(job_ids), *unfinished_accepted()
        )
        return self.db.fetch(query, Task)

    def record_task_cost(self, provider: str, task_id: str, *, credits: float, cost_usd: float) -> None:
        """The provider's own figure for a finished task replaces the rate-table estimate."""
        with self.db.transaction() as conn:
            conn.execute(
                sa.update(generation_tasks)
                .where(generation_tasks.c.provider == provider, generation_tasks.c.task_id == task_id)
                .values(cost_credits=credits, cost_usd=cost_usd, cost_source="provider", updated_at=utcnow())
            )

    # -- an operator's regeneration ------------------------------------------------------------
    def reset_for_regeneration(self, batch_id: str, job_ids: list[str]) -> int:
        """Supersede the named jobs' finished tasks and reset the jobs (pending, clip cleared); the
        batch goes back to processing. Returns how many tasks were superseded (pipeline/regenerate.py)."""
        now = utcnow()
        ids = list(dict.fromkeys(job_ids))
        task, job = generation_tasks.c, video_gen_jobs.c
        superseded_now = {"status": GenerationTaskStatus.SUPERSEDED, "updated_at": now}
        with self.db.transaction() as conn:
            superseded = conn.execute(
                sa.update(generation_tasks)
                .where(task.job_id.in_(ids), task.batch_id == batch_id, task.status.in_(FINISHED_TASK_STATUSES))
                .values(**superseded_now)
            ).rowcount
            # a task whose completion is recorded but whose row still says submitted (the run died in
            # between) is finished too
            done = sa.select(generation_completions.c.id).where(
                generation_completions.c.provider == task.provider, generation_completions.c.task_id == task.task_id
            )
            superseded += conn.execute(
                sa.update(generation_tasks)
                .where(
                    task.job_id.in_(ids),
                    task.batch_id == batch_id,
                    task.status == GenerationTaskStatus.SUBMITTED,
                    sa.exists(done),
                )
                .values(**superseded_now)
            ).rowcount
            conn.execute(
                sa.update(video_gen_jobs)
                .where(job.id.in_(ids), job.batch_id == batch_id, job.status != JobStatus.CANCELED)
                .values(
                    status=JobStatus.PENDING,
                    provider=None,
                    provider_task_id=None,
                    video_url=None,
                    thumbnail_url=None,
                    error_code=None,
                    error_message=None,
                    raw_clip_key=None,
                    updated_at=now,
                )
            )
            reopened = conn.execute(
                sa.update(video_gen_batch)
                .where(video_gen_batch.c.id == batch_id, video_gen_batch.c.status.in_(REGENERABLE_BATCH_STATUSES))
                .values(status=BatchStatus.PROCESSING, error=None, updated_at=now)
            ).rowcount
            self._record_regeneration(conn, batch_id, ids, reopened=reopened > 0)
        return superseded

    def _record_submitted(self, conn: sa.Connection, before: Job | None, provider: str, task_id: str) -> None:
        """`task_submitted`'s event: the job (read before the update) is processing at `provider`, unless it had ended."""
        if before is not None and not before.terminal:  # processing, or a fallback's new provider
            self.db.record(
                conn, before.batch_id, BatchEventType.JOB_PROCESSING, job_id=before.id,
                status=JobStatus.PROCESSING, provider=provider, providerTaskId=task_id,
            )  # fmt: skip

    def _record_regeneration(self, conn: sa.Connection, batch_id: str, job_ids: list[str], *, reopened: bool) -> None:
        """`reset_for_regeneration`'s events: each reset job pending again, the batch processing if it reopened."""
        job = video_gen_jobs.c
        reset = sa.select(job.id).where(job.id.in_(job_ids), job.batch_id == batch_id, job.status != JobStatus.CANCELED)
        for job_id in conn.execute(reset.order_by(job.sort_order, job.id)).scalars():
            self.db.record(conn, batch_id, BatchEventType.JOB_PENDING, job_id=job_id, status=JobStatus.PENDING)
        if reopened:
            self.db.record(conn, batch_id, BatchEventType.PROCESSING, status=BatchStatus.PROCESSING, regenerated=True)
