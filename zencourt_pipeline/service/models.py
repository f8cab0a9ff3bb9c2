"""The service's response bodies (docs/contract.md section 4) as pydantic models.

Fields are snake_case; the JSON the web app receives is camelCase (`alias_generator=to_camel`,
serialized `by_alias`), in field order, with nulls written out: the same names, values and order
as the hand-written dicts these replace. Built from the database records (`from_records`); the
statuses are the records' `StrEnum`s (their JSON is the plain string).

URLs: `videoUrl`/`thumbnailUrl` are playable URLs resolved at each read (`storage.urls.MediaUrls`:
https, presigned or public), `videoUri`/`thumbnailUri` the canonical stored URIs, `urlsExpireAt`
when the URLs stop working (null: they do not expire).

Two members stay JSON payloads, not models: a batch's `spend` (`pipeline.spend.ledger_json`, the
same JSON `zencourt spend --json` prints) and the `/health` probe results (observability/health.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from zencourt_pipeline.db.clock import as_utc
from zencourt_pipeline.db.outbox import BatchWebhooks
from zencourt_pipeline.db.outputs import Output
from zencourt_pipeline.db.records import TERMINAL_STATUSES, Batch, BatchStatus, Job, JobStatus
from zencourt_pipeline.db.spend import SpendLedger
from zencourt_pipeline.domain import ListingFacts, stored_facts
from zencourt_pipeline.pipeline.actions import OperatorAction
from zencourt_pipeline.pipeline.cancel import CancelReport, UnstoppedTask
from zencourt_pipeline.pipeline.spend import ledger_json
from zencourt_pipeline.service.renditions import OutputResponse
from zencourt_pipeline.storage.urls import MediaUrls


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


def iso(value: datetime | None) -> str | None:
    """A stored time as the API writes it: ISO 8601, UTC, `Z`."""
    return as_utc(value).isoformat().replace("+00:00", "Z") if value is not None else None


# -- every error ---------------------------------------------------------------------------------
class ApiErrorBody(ApiModel):
    """The one error body (service/errors.py `error_body`): `code` an ApiErrorCode or an ErrorCode."""

    success: bool = False
    error: str  # the HTTP status's name, e.g. "Not Found"
    code: str
    message: str
    details: dict[str, Any] = {}


# -- POST /video/batches/{id}/recompose, /regenerate ------------------------------------------------
class ActionResponse(ApiModel):
    """An operator action's run was launched (202): the Dagster run's id."""

    success: bool = True
    batch_id: str
    run_id: str
    action: OperatorAction


# -- POST /video/generate, POST /video/cancel ---------------------------------------------------
class GeneratedBatch(ApiModel):
    """One batch a `POST /video/generate` named: its status now, the job ids of the call in it
    (all its jobs for a `batchId`/`listingId` call) and whether this call asked for its pickup
    (only a `pending` batch is picked up; a processing or terminal one is left as it is)."""

    batch_id: str
    status: BatchStatus
    job_ids: list[str]
    pickup_requested: bool


class GenerateResponse(ApiModel):
    """`batchId`/`status`: the first batch named (the only one of a `batchId` call); `batches`:
    every batch named; `unknownJobIds`: the given job ids that no batch has."""

    success: bool = True
    batch_id: str
    status: BatchStatus = BatchStatus.PENDING
    batches: list[GeneratedBatch] = []
    unknown_job_ids: list[str] = []


class PendingTaskCancel(ApiModel):
    """A provider task of a canceled job that is not confirmed stopped yet (retried until it is)."""

    job_id: str
    provider: str
    task_id: str
    error_code: str
    error: str

    @classmethod
    def from_unstopped(cls, item: UnstoppedTask) -> PendingTaskCancel:
        """The answer's entry for a provider task that could not be stopped yet."""
        task = item.task
        return cls(job_id=task.job_id, provider=task.provider, task_id=task.task_id,
                   error_code=item.error_code, error=item.error)


class CancelResponse(ApiModel):
    """`providerTasksPending` lists the live provider tasks whose cancel failed: the jobs are
    canceled all the same, and the reconciler retries those cancels until the provider confirms."""

    success: bool = True
    canceled: int
    job_ids: list[str]
    batch_ids: list[str]
    provider_tasks_stopped: int = 0
    provider_tasks_pending: list[PendingTaskCancel] = []
    runs_terminated: int = 0

    @classmethod
    def from_report(cls, canceled: list[Job], batch_ids: list[str], report: CancelReport) -> CancelResponse:
        """The cancel answer from the canceled jobs, their batches and the provider cancel report."""
        return cls(
            canceled=len(canceled),
            job_ids=[job.id for job in canceled],
            batch_ids=batch_ids,
            provider_tasks_stopped=len(report.stopped),
            provider_tasks_pending=[PendingTaskCancel.from_unstopped(item) for item in report.unstopped],
            runs_terminated=report.runs_terminated,
        )


# -- GET /video/batches/{id} ---------------------------------------------------------------------
class Progress(ApiModel):
    """Clips by status; `percent`: the share of clips that finished (completed, failed or canceled)."""

    total: int
    completed: int = 0
    failed: int = 0
    canceled: int = 0
    processing: int = 0
    pending: int = 0
    percent: int

    @classmethod
    def of(cls, jobs: list[Job], batch_status: BatchStatus) -> Progress:
        """Progress counts of a batch from its job rows."""
        by_status: dict[str, int] = {}
        for job in jobs:
            by_status[job.status] = by_status.get(job.status, 0) + 1
        return cls.from_counts(by_status, batch_status)

    @classmethod
    def from_counts(cls, by_status: dict[str, int], batch_status: BatchStatus) -> Progress:
        """From {job status: count} (`db.catalog.job_status_counts`); a status not listed counts in `total` only."""
        counts = dict.fromkeys(
            (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.PROCESSING, JobStatus.PENDING), 0
        )
        for status, n in by_status.items():
            if status in counts:
                counts[JobStatus(status)] += n
        total = sum(by_status.values())
        finished = counts[JobStatus.COMPLETED] + counts[JobStatus.FAILED] + counts[JobStatus.CANCELED]
        # the batch `status` says whether the listing video is done too
        if total:
            percent = int(finished * 100 / total)
        else:
            percent = 100 if batch_status in TERMINAL_STATUSES else 0
        return cls(total=total, **{str(status): n for status, n in counts.items()}, percent=percent)


class JobResponse(ApiModel):
    id: str
    room_name: str | None
    sort_order: int
    status: JobStatus
    provider: str | None
    provider_task_id: str | None
    video_url: str | None  # playable (https), refreshed at each read
    thumbnail_url: str | None
    video_uri: str | None  # the canonical stored URI (s3://bucket/key, file://...)
    thumbnail_uri: str | None
    urls_expire_at: str | None  # when the URLs stop working; null: they do not expire
    error_code: str | None
    error_message: str | None
    created_at: str | None
    updated_at: str | None
    # the provider's last reported progress of the job's running task (0..1); null when none runs
    # or its provider reports none (the same figure as the `job.progress` events)
    progress: float | None = None
    caption: str | None = None  # the caption asked for (null: the room name is the caption)
    transition: str | None = None  # the transition into the next clip asked for (null: the template's)
    clip_url: str | None = None  # a given clip (no generation), stitched from its in to its out point
    clip_in_seconds: float | None = None
    clip_out_seconds: float | None = None
    focus_x: float | None = None  # what a reframing crop keeps in view (0..1; null: the centre)
    focus_y: float | None = None

    @classmethod
    def from_record(cls, job: Job, urls: MediaUrls, progress: float | None = None) -> JobResponse:
        """A job row as the status API shows it, with playable media URLs and its task's progress."""
        return cls(
            id=job.id,
            room_name=job.room_name,
            sort_order=job.sort_order,
            status=job.status,
            provider=job.provider,
            provider_task_id=job.provider_task_id,
            **urls.fields(job.video_url, job.thumbnail_url),
            error_code=job.error_code,
            error_message=job.error_message,
            created_at=iso(job.created_at),
            updated_at=iso(job.updated_at),
            progress=progress if job.status == JobStatus.PROCESSING else None,
            caption=job.caption,
            transition=job.transition,
            clip_url=job.clip_url,
            clip_in_seconds=job.clip_in_seconds,
            clip_out_seconds=job.clip_out_seconds,
            focus_x=job.focus_x,
            focus_y=job.focus_y,
        )


class BatchResponse(ApiModel):
    """The status API's batch (also the answer of `POST /video/batches`)."""

    success: bool = True
    id: str
    listing_id: str
    workspace_id: str | None  # the workspace the batch belongs to (null: none)
    status: BatchStatus
    orientation: str
    template: str | None
    title: str | None
    video_url: str | None
    thumbnail_url: str | None
    video_uri: str | None
    thumbnail_uri: str | None
    urls_expire_at: str | None
    error: str | None
    error_code: str | None
    blocked_reason: str | None  # why a processing batch waits for an operator (CLIP_CHECK_FAILED)
    created_at: str | None
    updated_at: str | None
    # the delivery of the batch's terminal webhook (pending | delivered | dead; null before it has
    # one) and WEBHOOK_DELIVERY_FAILED while any of its webhooks is dead
    webhook_status: str | None = None
    webhook_error_code: str | None = None
    progress: Progress
    # what the batch's provider requests cost: {"usd", "tasks", "possiblyOrphaned", "byProvider", ...}
    spend: dict[str, Any]
    jobs: list[JobResponse]
    facts: ListingFacts | None = None  # the listing facts the template merges (null: none, or unreadable)
    instructions: str | None = None  # added to every job's motion prompt (null: none)
    callback_url: str | None = None  # the batch's own webhook URL, next to the global one (null: none)
    narration_url: str | None = None  # the voice-over as given (null: none)
    narration_identifies_agent: bool | None = None  # null: true (the MLS-unbranded cut leaves it out)
    outputs: list[OutputResponse] = []  # every output composed (the primary first); empty before composition

    @classmethod
    def from_records(
        cls,
        batch: Batch,
        jobs: list[Job],
        spend: SpendLedger | None,
        urls: MediaUrls,
        webhooks: BatchWebhooks | None = None,
        job_progress: dict[str, float] | None = None,
        outputs: list[Output] | None = None,
    ) -> BatchResponse:
        """`spend`: the batch's money ledger (`db.spend.spend_ledger(batch_id=...)`); `urls`: the app's
        `MediaUrls` (`request.app.state.media_urls`); `webhooks`: its webhooks' delivery
        (`outbox.batch_webhooks`); `job_progress`: the running tasks' progress (`db.events.running_progress`)."""
        webhooks = webhooks or BatchWebhooks()
        job_progress = job_progress or {}
        return cls(
            id=batch.id,
            listing_id=batch.listing_id,
            workspace_id=batch.workspace_id,
            **_batch_state(batch, urls),
            webhook_status=webhooks.terminal_status,
            webhook_error_code=webhooks.error_code,
            progress=Progress.of(jobs, batch.status),
            spend=ledger_json(spend or SpendLedger()),
            jobs=[JobResponse.from_record(job, urls, job_progress.get(job.id)) for job in jobs],
            facts=stored_facts(batch.facts),
            instructions=batch.instructions,
            callback_url=batch.callback_url,
            narration_url=batch.narration_url,
            narration_identifies_agent=batch.narration_identifies_agent,
            outputs=[OutputResponse.from_record(output, urls) for output in outputs or []],
        )


def _batch_state(batch: Batch, urls: MediaUrls) -> dict[str, Any]:
    """The batch fields the status route and the list share (field order is each model's own)."""
    return {
        "status": batch.status, "orientation": batch.orientation, "template": batch.template, "title": batch.title,
        **urls.fields(batch.video_url, batch.thumbnail_url), "error": batch.error,
        "error_code": batch.error_code, "blocked_reason": batch.blocked_reason,
        "created_at": iso(batch.created_at), "updated_at": iso(batch.updated_at),
    }


# -- GET /video/batches, POST /video/batches:bulk -------------------------------------------------
class BatchSummary(ApiModel):
    """A batch in the list: the status route's batch without its jobs and spend."""

    id: str
    listing_id: str
    workspace_id: str | None
    status: BatchStatus
    orientation: str
    template: str | None
    title: str | None
    video_url: str | None
    thumbnail_url: str | None
    video_uri: str | None
    thumbnail_uri: str | None
    urls_expire_at: str | None
    error: str | None
    error_code: str | None
    blocked_reason: str | None
    created_at: str | None
    updated_at: str | None
    progress: Progress
    outputs: list[OutputResponse] = []  # as in the status route

    @classmethod
    def from_record(
        cls, batch: Batch, job_counts: dict[str, int], urls: MediaUrls, outputs: list[Output] | None = None
    ) -> BatchSummary:
        """A batch row, its job counts and its outputs as a list entry of `GET /video/batches`."""
        return cls(
            id=batch.id,
            listing_id=batch.listing_id,
            workspace_id=batch.workspace_id,
            **_batch_state(batch, urls),
            progress=Progress.from_counts(job_counts, batch.status),
            outputs=[OutputResponse.from_record(output, urls) for output in outputs or []],
        )


class BatchListResponse(ApiModel):
    success: bool = True
    batches: list[BatchSummary]
    next_cursor: str | None  # null on the last page


class BulkResult(ApiModel):
    """One batch of a bulk create: `status` 201 with `batch`, or the single route's error status
    with `error` (the error body)."""

    index: int
    status: int
    batch: BatchResponse | None = None
    error: ApiErrorBody | None = None


class BulkResponse(ApiModel):
    success: bool = True
    results: list[BulkResult]


# -- POST /webhooks/fal ------------------------------------------------------------------------------
class FalWebhookResponse(ApiModel):
    success: bool = True
    request_id: str
    duplicate: bool


# -- storage -------------------------------------------------------------------------------------------
class SignedUrlResponse(ApiModel):
    success: bool = True
    key: str
    url: str
    expires_in: int


class UploadResponse(ApiModel):
    success: bool = True
    key: str
    url: str
    content_type: str
    size: int


class DeleteResponse(ApiModel):
    success: bool = True
    key: str
    deleted: bool


# -- GET / ------------------------------------------------------------------------------------------------
class ServiceLinks(ApiModel):
    health: str
    api: str  # the API description (OpenAPI JSON); docs/contract.md section 4 is the contract


class ServiceInfo(ApiModel):
    """`GET /`: what answers here, as the Node server's root route did."""

    success: bool = True
    service: str
    version: str
    status: str = "running"
    uptime_seconds: float
    links: ServiceLinks


# -- GET /health -----------------------------------------------------------------------------------------
class HealthChecks(ApiModel):
    """Each probe's result as observability/health.py reports it (`ok`, `latencyMs`, ...)."""

    database: dict[str, Any]
    storage: dict[str, Any]
    daemon: dict[str, Any]
    providers: dict[str, Any]


class HealthResponse(ApiModel):
    status: str  # ok | degraded | unavailable
    checks: HealthChecks
    database: bool
    storage: bool
    storage_backend: str | None
    api_key_configured: bool
    uptime_seconds: float
