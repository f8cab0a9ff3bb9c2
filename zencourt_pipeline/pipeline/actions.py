"""Operator actions asked for over HTTP (`POST /video/batches/{id}/recompose` and `/regenerate`):
the same Dagster jobs, run config and refusals as the UI's Launchpad actions (docs/operations.md).

What can be checked from the database is checked here, before any run is launched, with the
functions the runs themselves use (`plan_regeneration`, `enforce_quota`): a refused action
launches nothing. The run checks again when it starts (the state may change in between).

The job names and run-config shapes live here, not in defs/: the HTTP service launches the jobs
by name and must not import the definitions (defs/jobs.py uses these names).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.records import Batch, BatchStatus, Job, JobStatus
from zencourt_pipeline.domain import Orientation
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.pipeline.intake import BatchRejected
from zencourt_pipeline.pipeline.quota import QuotaLimits, enforce_quota
from zencourt_pipeline.pipeline.regenerate import RegenerationRefused, plan_regeneration

RECOMPOSE_JOB = "batch_recompose_job"
REGENERATE_JOB = "batch_regenerate_job"
PARTITION_TAG = "dagster/partition"
BATCH_TAG = "zencourt/batch_id"
STAGE_TAG = "zencourt/stage"
REQUESTED_BY_TAG = "zencourt/requested_by"


class OperatorAction(enum.StrEnum):
    """An operator action on one batch; its value is the run's `zencourt/stage` tag."""

    RECOMPOSE = "recompose"
    REGENERATE = "regenerate"

    @property
    def job_name(self) -> str:
        """The Dagster job the action launches (the one the UI launches)."""
        return RECOMPOSE_JOB if self is OperatorAction.RECOMPOSE else REGENERATE_JOB


class ActionConflict(enum.StrEnum):
    """Why an action cannot be done in the batch's present state (HTTP 409)."""

    BATCH_BUSY = "BATCH_BUSY"  # not taken in yet, or its clips are still generating
    BATCH_FAILED = "BATCH_FAILED"  # a re-compose of a failed batch (final): regenerate its jobs instead
    NO_COMPLETED_CLIPS = "NO_COMPLETED_CLIPS"  # nothing to re-compose


class ActionRefused(Exception):
    """An action refused before launch: `status` 409 (the batch's state) or 422 (what was asked)."""

    def __init__(
        self, status: int, code: ErrorCode | ActionConflict, message: str, details: dict[str, Any] | None = None
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


# what a run refusal's code means for the caller: the state of the batch (409) or the request (422)
REFUSAL_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_INPUT: 422,
    ErrorCode.CANCELED: 409,
    ErrorCode.IN_FLIGHT: 409,
    ErrorCode.QUOTA_EXCEEDED: 409,
}


@dataclass(frozen=True)
class LaunchRequest:
    """One run to launch: the job, its run config and tags (the batch's partition among them)."""

    action: OperatorAction
    batch_id: str
    run_config: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def job_name(self) -> str:
        """The Dagster job to launch."""
        return self.action.job_name


def run_tags(action: OperatorAction, batch_id: str, requested_by: str) -> dict[str, str]:
    """The partition tag and the tags the sensors and the watchdog read (`zencourt/batch_id`, `zencourt/stage`)."""
    return {
        PARTITION_TAG: batch_id,
        BATCH_TAG: batch_id,
        STAGE_TAG: action.value,
        REQUESTED_BY_TAG: requested_by,
    }


def recompose_request(
    batch: Batch, jobs: list[Job], *, template: str | None, orientation: Orientation | None, requested_by: str
) -> LaunchRequest:
    """The recompose run for this batch, or ActionRefused (canceled, still generating, failed, no clip).

    Only a `completed` batch is re-composed: a failed one is final (`finish_batch` keeps its first
    terminal status, so the run would compose a video it cannot publish); regenerating its jobs
    opens it again."""
    if batch.status == BatchStatus.CANCELED:
        raise ActionRefused(409, ErrorCode.CANCELED, f"batch {batch.id} is canceled")
    if batch.status in (BatchStatus.PENDING, BatchStatus.PROCESSING):
        raise ActionRefused(
            409,
            ActionConflict.BATCH_BUSY,
            f"batch {batch.id} is {batch.status}: re-compose it once its clips are done",
            {"batchStatus": batch.status.value},
        )
    if batch.status == BatchStatus.FAILED:
        raise ActionRefused(
            409,
            ActionConflict.BATCH_FAILED,
            f"batch {batch.id} failed ({batch.error_code or 'no code'}): a failed batch is final; regenerate its jobs instead",
            {"batchStatus": batch.status.value, "errorCode": batch.error_code},
        )
    if not any(job.status == JobStatus.COMPLETED and job.video_url for job in jobs):
        raise ActionRefused(409, ActionConflict.NO_COMPLETED_CLIPS, f"batch {batch.id} has no completed clip to compose")
    config: dict[str, Any] = {}
    if template is not None:
        config["template"] = template
    if orientation is not None:
        config["orientation"] = orientation.value
    return LaunchRequest(
        OperatorAction.RECOMPOSE,
        batch.id,
        {"ops": {"composed_video": {"config": config}}},
        run_tags(OperatorAction.RECOMPOSE, batch.id, requested_by),
    )


def regenerate_request(
    db: AppDatabase, batch: Batch, jobs: list[Job], job_ids: Sequence[str], *, limits: QuotaLimits, requested_by: str
) -> LaunchRequest:
    """The regeneration run for these jobs, or ActionRefused with the refusal the run would fail with."""
    if batch.status == BatchStatus.PENDING:
        raise ActionRefused(
            409, ActionConflict.BATCH_BUSY, f"batch {batch.id} is not taken in yet", {"batchStatus": batch.status.value}
        )
    job_ids = list(dict.fromkeys(job_ids))
    try:
        plan = plan_regeneration(db, batch, jobs, job_ids)
        enforce_quota(
            db.quota, batch, len(plan.reset), listing_quota=limits.listing_quota, workspace_quota=limits.workspace_quota
        )
    except (RegenerationRefused, BatchRejected) as exc:
        details = {"jobIds": [job_id for job_id in job_ids if job_id not in {job.id for job in jobs}]}
        raise ActionRefused(
            REFUSAL_STATUS.get(exc.code, 409), exc.code, exc.message, details if details["jobIds"] else {}
        ) from None
    if not plan.reset:
        raise ActionRefused(
            409,
            ActionConflict.BATCH_BUSY,
            "none of the named jobs is finished: " + "; ".join(f"{job_id} {why}" for job_id, why in plan.skipped.items()),
            {"skipped": plan.skipped},
        )
    return LaunchRequest(
        OperatorAction.REGENERATE,
        batch.id,
        {"ops": {"clip_tasks": {"config": {"regenerate_job_ids": job_ids}}}},
        run_tags(OperatorAction.REGENERATE, batch.id, requested_by),
    )
