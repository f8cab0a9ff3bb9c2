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

from zencourt_pipeline.db.completions import IN_FLIGHT_TASK_STATUSES
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.generation import TaskLedger
from zencourt_pipeline.db.records import Batch, BatchStatus, Job, JobStatus
from zencourt_pipeline.errors import CodedError, ErrorCode


class RegenerationRefused(CodedError):
    """An operator's regeneration that cannot be done (unknown or canceled job, a task in flight)."""


@dataclass(frozen=True)
class RegenerationPlan:
    reset: list[Job]  # finished jobs to reset (each gets one new task)
    skipped: dict[str, str]  # job id -> why it is left as it is (already generating)


def plan_regeneration(db: AppDatabase, batch: Batch, jobs: list[Job], job_ids: Sequence[str]) -> RegenerationPlan:
    """Which named jobs to reset, or RegenerationRefused saying which job cannot be regenerated and why.

    A named job that is not finished (pending, or processing with a task in flight, e.g. after a
    retried regeneration run already reset it) is left alone: `submit_jobs` submits it only if it
    has no live task, so asking twice never pays twice.
    """
    by_id = {job.id: job for job in jobs}
    unknown = [job_id for job_id in job_ids if job_id not in by_id]
    if unknown:
        raise RegenerationRefused(ErrorCode.INVALID_INPUT, f"job(s) {', '.join(unknown)} are not in batch {batch.id}")
    if batch.status == BatchStatus.CANCELED:
        raise RegenerationRefused(ErrorCode.CANCELED, f"batch {batch.id} is canceled")
    completed = {(c.provider, c.task_id) for c in db.completions.completions_for_batch(batch.id)}
    reset, skipped = [], {}
    for job_id in dict.fromkeys(job_ids):
        job = by_id[job_id]
        if job.status == JobStatus.CANCELED:
            raise RegenerationRefused(ErrorCode.CANCELED, f"job {job_id} is canceled")
        if job.clip_url:
            raise RegenerationRefused(
                ErrorCode.INVALID_INPUT, f"job {job_id} is a given clip (clip_url): there is nothing to generate"
            )
        if not job.photo_key:
            raise RegenerationRefused(
                ErrorCode.INVALID_INPUT, f"job {job_id} has no prepared photo ({job.error_code or 'not taken in'}): re-run intake"
            )
        in_flight = [
            task for task in db.ledger.tasks_for_job(job_id)
            if task.status in IN_FLIGHT_TASK_STATUSES and (task.provider, task.task_id) not in completed
        ]
        if not job.terminal:
            skipped[job_id] = "still generating" if in_flight else "not finished yet"
            continue
        if in_flight:
            task = in_flight[-1]
            raise RegenerationRefused(
                ErrorCode.IN_FLIGHT,
                f"job {job_id} has a task still in flight ({task.provider} {task.task_id or '(submitting)'}); "
                "wait for its completion or cancel it",
            )
        reset.append(job)
    return RegenerationPlan(reset, skipped)


def reset_for_regeneration(ledger: TaskLedger, batch_id: str, job_ids: Sequence[str]) -> int:
    """Supersede the named jobs' finished tasks and reset the jobs; returns how many tasks were superseded."""
    return ledger.reset_for_regeneration(batch_id, list(job_ids))
