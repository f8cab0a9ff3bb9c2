"""Partial regeneration: an operator names some jobs of a batch to generate again.

The money rule: the named jobs' finished tasks were paid and stay on record; they are marked
`superseded` (so they no longer count as the job's live or current task) and the job goes back to
`pending` with its clip cleared, so the next `submit_jobs` gives it exactly one new task, starting
the provider chain over with a new seed. Jobs not named are not touched. A named job that is still
generating is left as it is (regenerating it would pay twice for one clip); canceled jobs and
batches, unknown job ids and jobs without a prepared photo are refused.
The batch goes back to `processing`; the completions sensor composes it again when the new
completions are in (its video stays published until the new one replaces it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from zencourt_pipeline.db.clock import utcnow
from zencourt_pipeline.db.database import AppDatabase, Row
from zencourt_pipeline.db.schema import (
    TERMINAL_STATUSES,
    generation_completions,
    generation_tasks,
    video_gen_batch,
    video_gen_jobs,
)
from zencourt_pipeline.pipeline.generation import SUPERSEDED

IN_FLIGHT_TASK_STATUSES = ("submitting", "submitted")
FINISHED_TASK_STATUSES = ("succeeded", "failed", "canceled", "abandoned")


class RegenerationRefused(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RegenerationPlan:
    reset: list[Row]  # finished jobs to reset (each gets one new task)
    skipped: dict[str, str]  # job id -> why it is left as it is (already generating)


def plan_regeneration(db: AppDatabase, batch: Row, jobs: list[Row], job_ids: Sequence[str]) -> RegenerationPlan:
    """Which named jobs to reset, or RegenerationRefused saying which job cannot be regenerated and why.

    A named job that is not finished (pending, or processing with a task in flight, e.g. after a
    retried regeneration run already reset it) is left alone: `submit_jobs` submits it only if it
    has no live task, so asking twice never pays twice.
    """
    by_id = {job["id"]: job for job in jobs}
    unknown = [job_id for job_id in job_ids if job_id not in by_id]
    if unknown:
        raise RegenerationRefused("INVALID_INPUT", f"job(s) {', '.join(unknown)} are not in batch {batch['id']}")
    if batch["status"] == "canceled":
        raise RegenerationRefused("CANCELED", f"batch {batch['id']} is canceled")
    completed = {(c["provider"], c["task_id"]) for c in db.completions_for_batch(batch["id"])}
    reset, skipped = [], {}
    for job_id in dict.fromkeys(job_ids):
        job = by_id[job_id]
        if job["status"] == "canceled":
            raise RegenerationRefused("CANCELED", f"job {job_id} is canceled")
        if not job["photo_key"]:
            raise RegenerationRefused(
                "INVALID_INPUT", f"job {job_id} has no prepared photo ({job['error_code'] or 'not taken in'}): re-run intake"
            )
        in_flight = [
            task for task in db.tasks_for_job(job_id)
            if task["status"] in IN_FLIGHT_TASK_STATUSES and (task["provider"], task["task_id"]) not in completed
        ]
        if job["status"] not in TERMINAL_STATUSES:
            skipped[job_id] = "still generating" if in_flight else "not finished yet"
            continue
        if in_flight:
            task = in_flight[-1]
            raise RegenerationRefused(
                "IN_FLIGHT",
                f"job {job_id} has a task still in flight ({task['provider']} {task['task_id'] or '(submitting)'}); "
                "wait for its completion or cancel it",
            )
        reset.append(job)
    return RegenerationPlan(reset, skipped)


def reset_for_regeneration(db: AppDatabase, batch_id: str, job_ids: Sequence[str]) -> int:
    """Supersede the named jobs' finished tasks and reset the jobs; returns how many tasks were superseded."""
    now = utcnow()
    ids = list(dict.fromkeys(job_ids))
    task, job = generation_tasks.c, video_gen_jobs.c
    with db.transaction() as conn:
        superseded = conn.execute(
            sa.update(generation_tasks)
            .where(task.job_id.in_(ids), task.batch_id == batch_id, task.status.in_(FINISHED_TASK_STATUSES))
            .values(status=SUPERSEDED, updated_at=now)
        ).rowcount
        # a task whose completion is recorded but whose row still says submitted (the run died in
        # between) is finished too
        done = sa.select(generation_completions.c.id).where(
            generation_completions.c.provider == task.provider, generation_completions.c.task_id == task.task_id
        )
        superseded += conn.execute(
            sa.update(generation_tasks)
            .where(task.job_id.in_(ids), task.batch_id == batch_id, task.status == "submitted", sa.exists(done))
            .values(status=SUPERSEDED, updated_at=now)
        ).rowcount
        conn.execute(
            sa.update(video_gen_jobs)
            .where(job.id.in_(ids), job.batch_id == batch_id, job.status != "canceled")
            .values(
                status="pending",
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
        conn.execute(
            sa.update(video_gen_batch)
            .where(video_gen_batch.c.id == batch_id, video_gen_batch.c.status.in_(["pending", "processing", "completed", "failed"]))
            .values(status="processing", error=None, updated_at=now)
        )
    return superseded
