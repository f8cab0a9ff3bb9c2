"""What the database layer hands out: one frozen dataclass per table row, and the statuses.

Every repository read (the repositories of db/database.py's `AppDatabase`) returns these records, built
from SQLAlchemy rows here (`Record.from_row`) and nowhere else: callers read attributes
(`batch.status`, `job.error_code`), never keys. A caller that needs a dict (a webhook payload,
Dagster metadata, JSON) converts explicitly with `as_dict`.

Statuses are `StrEnum`s: a member *is* its string, so the database, the webhook bodies and the
HTTP API carry the same values as before (`BatchStatus.PENDING == "pending"`). Times are UTC-aware
(SQLite hands them back naive; they were written as UTC). Error codes stay `str` on the records:
the web app's rows may carry codes of other writers; what the pipeline writes is an `ErrorCode`.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any, ClassVar, Self

from zencourt_pipeline.db.clock import as_utc
from zencourt_pipeline.domain import CLIP_SECONDS_DEFAULT, ApiScope, JobSource, Orientation, given_clip_span


class BatchStatus(enum.StrEnum):
    """`video_gen_batch.status` (docs/contract.md section 3)."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        """True for the statuses a batch never leaves (completed, failed, canceled)."""
        return self in TERMINAL_STATUSES


class JobStatus(enum.StrEnum):
    """`video_gen_jobs.status` (the same five values as a batch's)."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        """True for the statuses a job never leaves (completed, failed, canceled)."""
        return self in TERMINAL_STATUSES


# a terminal batch or job changes no more (both enums share the values: either member matches)
TERMINAL_STATUSES: frozenset[str] = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED})
OPEN_BATCH_STATUSES: tuple[BatchStatus, ...] = (BatchStatus.PENDING, BatchStatus.PROCESSING)


class GenerationTaskStatus(enum.StrEnum):
    """`generation_tasks.status`; a completion's status (`generation_completions.status`) is one of
    SUCCEEDED, FAILED, CANCELED. (`providers.base.TaskStatus` is a provider's poll answer.)"""

    SUBMITTING = "submitting"  # the intent, written before the provider is called
    SUBMITTED = "submitted"  # the provider accepted it: it has a task id (and is paid)
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    ABANDONED = "abandoned"  # an intent given up by earlier versions
    REJECTED = "rejected"  # a refusal, as earlier versions wrote it
    SUPERSEDED = "superseded"  # an operator regenerated the job: paid and finished, a newer task replaces it


class OutboxStatus(enum.StrEnum):
    """`webhook_outbox.status`: pending -> delivered | dead (and dead -> pending on a requeue)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class BatchEventType(enum.StrEnum):
    """`batch_events.event`: what `GET /video/batches/{id}/events` streams (docs/contract.md section 4)."""

    CREATED = "batch.created"
    PROCESSING = "batch.processing"
    BLOCKED = "batch.blocked"  # blockedReason set (waiting for an operator) or cleared (null)
    STAGE = "batch.stage"  # a composition stage started (BatchStage)
    COMPLETED = "batch.completed"
    FAILED = "batch.failed"
    CANCELED = "batch.canceled"
    OUTPUT_COMPLETED = "output.completed"  # one output published before the batch's end (the primary first)
    JOB_PENDING = "job.pending"  # reset for an operator's regeneration
    JOB_PROCESSING = "job.processing"  # submitted to a provider (again, on a fallback)
    JOB_PROGRESS = "job.progress"  # the provider's progress (0..1) changed
    JOB_COMPLETED = "job.completed"
    JOB_FAILED = "job.failed"
    JOB_CANCELED = "job.canceled"

    @property
    def terminal(self) -> bool:
        """True for the batch's terminal events (completed, failed, canceled): a live stream ends after one."""
        return self in (BatchEventType.COMPLETED, BatchEventType.FAILED, BatchEventType.CANCELED)

    @classmethod
    def of_batch(cls, status: str) -> BatchEventType:
        """The event of a batch entering `status`."""
        return cls(f"batch.{status}")

    @classmethod
    def of_job(cls, status: str) -> BatchEventType:
        """The event of a job entering `status`."""
        return cls(f"job.{status}")


class BatchStage(enum.StrEnum):
    """The `stage` of a `batch.stage` event."""

    NORMALIZING = "normalizing"
    COMPOSING = "composing"
    UPLOADING = "uploading"


class Record:
    """Base of the row records: `from_row` maps a SQLAlchemy row (or mapping) onto the fields."""

    __slots__ = ()
    _ENUMS: ClassVar[dict[str, type[enum.StrEnum]]] = {}

    @classmethod
    def from_row(cls, row: Any, **overrides: Any) -> Self:
        """The record of a result row or mapping (unselected columns keep defaults, datetimes in UTC)."""
        mapping = row._mapping if hasattr(row, "_mapping") else row
        values = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name in overrides:
                value = overrides[f.name]
            elif f.name in mapping:
                value = mapping[f.name]
            else:
                continue  # a column the query did not select: the field's default
            if isinstance(value, datetime):
                value = as_utc(value)
            elif value is not None and f.name in cls._ENUMS:
                value = cls._ENUMS[f.name](value)
            values[f.name] = value
        return cls(**values)


def as_dict(record: Any, *, omit: tuple[str, ...] = ()) -> dict[str, Any]:
    """A record as a plain dict (field order), for JSON or metadata; `omit` drops fields."""
    return {name: value for name, value in asdict(record).items() if name not in omit}


@dataclass(frozen=True, slots=True)
class Batch(Record):
    """A `video_gen_batch` row."""

    _ENUMS: ClassVar[dict[str, type[enum.StrEnum]]] = {"status": BatchStatus}

    id: str
    listing_id: str
    orientation: str = Orientation.LANDSCAPE  # text in the database: an `Orientation` once intake passed it
    template: str | None = None
    title: str | None = None
    status: BatchStatus = BatchStatus.PENDING
    video_url: str | None = None
    thumbnail_url: str | None = None
    error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    claimed_at: datetime | None = None
    workspace_id: str | None = None
    error_code: str | None = None
    blocked_reason: str | None = None
    processing_started_at: datetime | None = None
    sensor_checked_at: datetime | None = None
    composed_digest: str | None = None
    compose_attempts: int = 0
    intake_attempts: int = 0
    facts: str | None = None  # JSON text (`domain.parse_facts`)
    instructions: str | None = None  # added to every job's motion prompt (migration 0012)
    callback_url: str | None = None  # the batch's own webhook URL, next to the global one (migration 0012)
    outputs: str | None = None  # JSON text (`domain.parse_outputs`; None: the default four)
    narration_url: str | None = None  # the voice-over (https URL or storage URI; migration 0013)
    narration_identifies_agent: bool | None = None  # None: true (the unbranded cut leaves it out)
    narration_key: str | None = None  # the checked copy intake stored (pipeline-owned)
    branding: str | None = None  # JSON text: the batch's override of its workspace's branding (migration 0014)

    @property
    def terminal(self) -> bool:
        """True once the batch is completed, failed or canceled."""
        return self.status in TERMINAL_STATUSES

    @property
    def narration_names_agent(self) -> bool:
        """Whether the narration identifies the agent (unset: it does, the safe side for the MLS)."""
        return self.narration_identifies_agent is not False


@dataclass(frozen=True, slots=True)
class Job(Record):
    """A `video_gen_jobs` row."""

    _ENUMS: ClassVar[dict[str, type[enum.StrEnum]]] = {"status": JobStatus}

    id: str
    batch_id: str
    image_url: str
    sort_order: int = 0
    room_name: str | None = None
    prompt: str | None = None
    duration_seconds: int = CLIP_SECONDS_DEFAULT
    status: JobStatus = JobStatus.PENDING
    provider: str | None = None
    provider_task_id: str | None = None
    video_url: str | None = None
    thumbnail_url: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    photo_key: str | None = None
    raw_clip_key: str | None = None
    caption: str | None = None  # null: the room name
    transition: str | None = None  # an xfade style into the next clip; null: the template's
    clip_url: str | None = None  # a given clip (migration 0012): the job skips generation
    clip_in_seconds: float | None = None  # its in point (null: 0)
    clip_out_seconds: float | None = None  # its out point (null: in + duration_seconds)
    focus_x: float | None = None  # what a reframing crop keeps in view (0..1); None: the centre
    focus_y: float | None = None
    timed_seconds: float | None = None  # a photo clip's length timed to the narration (migration 0013)

    @property
    def terminal(self) -> bool:
        """True once the job is completed, failed or canceled."""
        return self.status in TERMINAL_STATUSES

    @property
    def source(self) -> JobSource:
        """What the job starts from: a photo to generate a clip from, or a clip the web app gave."""
        return JobSource.CLIP if self.clip_url else JobSource.PHOTO

    @property
    def seconds(self) -> float:
        """How long the job's clip lasts in the video: a given clip's out - in, else its length timed to
        the batch's narration when intake timed it, else duration_seconds."""
        if self.clip_url:
            return given_clip_span(self.clip_in_seconds, self.clip_out_seconds, self.duration_seconds)
        return self.timed_seconds if self.timed_seconds else float(self.duration_seconds)


@dataclass(frozen=True, slots=True)
class Task(Record):
    """A `generation_tasks` row: one paid (or local) generation request."""

    _ENUMS: ClassVar[dict[str, type[enum.StrEnum]]] = {"status": GenerationTaskStatus}

    id: int
    job_id: str
    batch_id: str
    provider: str
    status: GenerationTaskStatus
    task_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    cost_credits: float | None = None
    provider_meta: str | None = None  # JSON text, see `meta`
    submitted_at: datetime | None = None
    finished_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_polled_at: datetime | None = None
    cost_usd: float | None = None
    cost_source: str | None = None
    possibly_orphaned: bool = False
    download_attempts: int = 0
    download_error: str | None = None
    progress: float | None = None  # the provider's last reported progress, 0..1 (migration 0008)

    @property
    def meta(self) -> dict[str, Any]:
        """`provider_meta` parsed (fal's URLs, the model, the intent's run id); {} when unset."""
        return json.loads(self.provider_meta or "{}")


def current_task(tasks: list[Task]) -> Task | None:
    """The job's newest task that the provider accepted (has a task id) and was not superseded."""
    accepted = [task for task in tasks if task.task_id and task.status != GenerationTaskStatus.SUPERSEDED]
    return accepted[-1] if accepted else None


@dataclass(frozen=True, slots=True)
class CompletionRecord(Record):
    """A `generation_completions` row (not `providers.base.Completion`, what a provider reports)."""

    _ENUMS: ClassVar[dict[str, type[enum.StrEnum]]] = {"status": GenerationTaskStatus}

    id: int
    provider: str
    task_id: str
    status: GenerationTaskStatus  # SUCCEEDED | FAILED | CANCELED
    source: str  # webhook | poll | local
    job_id: str | None = None
    batch_id: str | None = None
    output_url: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    payload: str | None = None  # the raw JSON as received
    received_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OutboxEvent(Record):
    """A `webhook_outbox` row. `body` is None where it was not read (`outbox.dead_rows`);
    `lease_until` is set on the rows `outbox.due` claimed (their new `next_attempt_at`)."""

    _ENUMS: ClassVar[dict[str, type[enum.StrEnum]]] = {"status": OutboxStatus}

    id: str
    event: str
    batch_id: str
    job_id: str | None = None
    body: str | None = None
    status: OutboxStatus = OutboxStatus.PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    last_status_code: int | None = None
    delivered_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    lease_until: datetime | None = None
    target_url: str | None = None  # a batch's callback URL (migration 0012); None: the global webhook URL

    @property
    def error_code(self) -> str | None:
        """`WEBHOOK_DELIVERY_FAILED` on a dead row (the Node server's code), else None."""
        from zencourt_pipeline.errors import ErrorCode

        return ErrorCode.WEBHOOK_DELIVERY_FAILED if self.status == OutboxStatus.DEAD else None


@dataclass(frozen=True, slots=True)
class BatchEvent(Record):
    """A `batch_events` row: one state change of a batch or one of its jobs; `body` is its JSON."""

    _ENUMS: ClassVar[dict[str, type[enum.StrEnum]]] = {"event": BatchEventType}

    id: int
    batch_id: str
    event: BatchEventType
    body: str
    job_id: str | None = None
    created_at: datetime | None = None

    @property
    def data(self) -> dict[str, Any]:
        """`body` parsed."""
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class ApiKey(Record):
    """An `api_keys` row: a workspace's API key (its hash, never the key itself)."""

    id: str
    prefix: str
    key_sha256: str
    workspace_id: str
    scopes: tuple[ApiScope, ...] = ()  # stored as comma-separated values (db/api_keys.py)
    name: str | None = None
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        """True once the key is revoked (it is refused from then on)."""
        return self.revoked_at is not None


@dataclass(frozen=True, slots=True)
class HistoryRow(Record):
    """An accepted generation task with its completion, if any (`generation_history`, analytics)."""

    provider: str
    task_id: str
    batch_id: str
    job_id: str
    task_status: str
    cost_credits: float | None = None
    cost_usd: float | None = None
    cost_source: str | None = None
    submitted_at: datetime | None = None
    completion_status: str | None = None
    received_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """`outbox.stats`: rows per status, the pending rows due now, the oldest pending row."""

    pending: int
    delivered: int
    dead: int
    due: int
    oldest_pending_at: str | None  # ISO 8601
    oldest_pending_age_seconds: float | None
    max_pending_attempts: int


@dataclass(frozen=True, slots=True)
class DeadSummary:
    """`outbox.dead_summary`: how many rows are dead, per event, and the oldest one's creation."""

    dead: int
    by_event: dict[str, int]
    oldest_dead_created_at: str | None  # ISO 8601
