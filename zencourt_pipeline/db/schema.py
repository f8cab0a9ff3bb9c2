"""Tables of the application database.

`video_gen_batch` and `video_gen_jobs` are the web app's (docs/contract.md section 3); the pipeline
adds a few columns to them and owns the other tables. The migrations in `db/migrations` create
exactly this; `zencourt_pipeline_tests/db` checks the two agree.
"""

from __future__ import annotations

import sqlalchemy as sa

from zencourt_pipeline.db.records import TERMINAL_STATUSES, BatchStatus, JobStatus, OutboxStatus  # noqa: F401

metadata = sa.MetaData()

# the statuses are the enums of db/records.py; these names stay importable from here
BATCH_STATUSES = tuple(BatchStatus)
JOB_STATUSES = tuple(JobStatus)


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


video_gen_batch = sa.Table(
    "video_gen_batch",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("listing_id", sa.Text, nullable=False, index=True),  # index: migration 0003 (quotas)
    sa.Column("orientation", sa.Text, nullable=False, server_default="landscape"),
    sa.Column("template", sa.Text, nullable=True),
    sa.Column("title", sa.Text, nullable=True),
    sa.Column("status", sa.Text, nullable=False, server_default=BatchStatus.PENDING.value),
    sa.Column("video_url", sa.Text, nullable=True),
    sa.Column("thumbnail_url", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    *_timestamps(),
    # pipeline-owned: when the batch sensor last handed the batch to Dagster
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
    # optional: the web app's workspace, for the per-workspace monthly clip quota (migration 0003)
    sa.Column("workspace_id", sa.Text, nullable=True, index=True),
    # liveness (migration 0004): the batch's terminal error code (GENERATION_TIMEOUT, ...), why it is
    # blocked (CLIP_CHECK_FAILED: waiting for an operator), when a sensor last looked at it (fair
    # rotation), the completion-state digest it was last composed for, and compose attempts made
    sa.Column("error_code", sa.Text, nullable=True),
    sa.Column("blocked_reason", sa.Text, nullable=True),
    sa.Column("processing_started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("sensor_checked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("composed_digest", sa.Text, nullable=True),
    sa.Column("compose_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("intake_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_video_gen_batch_status_checked", "status", "sensor_checked_at"),
    sa.Index("ix_video_gen_batch_created_id", "created_at", "id"),  # migration 0006: the list route
    sa.Index("ix_video_gen_batch_updated_id", "updated_at", "id"),  # migration 0009: partition retention
    # migration 0010: the listing's facts a template merges ({{price}}, ...): JSON text, `domain.ListingFacts`
    sa.Column("facts", sa.Text, nullable=True),
    # migration 0012: text added to every job's motion prompt, and the batch's own webhook URL
    sa.Column("instructions", sa.Text, nullable=True),
    sa.Column("callback_url", sa.Text, nullable=True),
    # migration 0011: the outputs the batch asks for (JSON text, `domain.parse_outputs`; null: the default four)
    sa.Column("outputs", sa.Text, nullable=True),
    # migration 0013: the narration (https URL or storage URI), whether it names the agent (null: true:
    # the unbranded cut leaves it out), and the checked copy intake stored (pipeline-owned)
    sa.Column("narration_url", sa.Text, nullable=True),
    sa.Column("narration_identifies_agent", sa.Boolean, nullable=True),
    sa.Column("narration_key", sa.Text, nullable=True),
    # migration 0014: the batch's branding override over its workspace's profile (JSON text, `media.branding.BrandingProfile`)
    sa.Column("branding", sa.Text, nullable=True),
)

video_gen_jobs = sa.Table(
    "video_gen_jobs",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("batch_id", sa.Text, sa.ForeignKey("video_gen_batch.id"), nullable=False, index=True),
    sa.Column("sort_order", sa.Integer, nullable=False, server_default="0"),
    sa.Column("room_name", sa.Text, nullable=True),
    sa.Column("image_url", sa.Text, nullable=False),
    sa.Column("prompt", sa.Text, nullable=True),
    sa.Column("duration_seconds", sa.Integer, nullable=False, server_default="5"),
    sa.Column("status", sa.Text, nullable=False, server_default=JobStatus.PENDING.value),
    sa.Column("provider", sa.Text, nullable=True),
    sa.Column("provider_task_id", sa.Text, nullable=True),
    sa.Column("video_url", sa.Text, nullable=True),
    sa.Column("thumbnail_url", sa.Text, nullable=True),
    sa.Column("error_code", sa.Text, nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    *_timestamps(),
    # pipeline-owned: storage keys of the intermediate files
    sa.Column("photo_key", sa.Text, nullable=True),
    sa.Column("raw_clip_key", sa.Text, nullable=True),
    # migration 0010: the caption over the clip ({{caption}}; null: the room name) and the xfade style
    # into the next clip (null: the template's)
    sa.Column("caption", sa.Text, nullable=True),
    sa.Column("transition", sa.Text, nullable=True),
    # migration 0012: a clip the web app already has (storage URI or https URL) and its in/out points
    # (seconds; out null: in + duration_seconds): the job skips generation
    sa.Column("clip_url", sa.Text, nullable=True),
    sa.Column("clip_in_seconds", sa.Float, nullable=True),
    sa.Column("clip_out_seconds", sa.Float, nullable=True),
    # migration 0011: the focus point (0..1 of the clip's frame) a reframing crop keeps in view (null: the centre)
    sa.Column("focus_x", sa.Float, nullable=True),
    sa.Column("focus_y", sa.Float, nullable=True),
    # migration 0013, pipeline-owned: the photo clip's length timed to the batch's narration (the local
    # generator's Ken Burns clips; null: duration_seconds)
    sa.Column("timed_seconds", sa.Float, nullable=True),
)

# One row per paid (or local) generation request. Written *before* the provider is called
# (status 'submitting'), updated with the task id as soon as the provider answers, so that a
# crashed or retried run can tell what it already paid for.
generation_tasks = sa.Table(
    "generation_tasks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.Text, sa.ForeignKey("video_gen_jobs.id"), nullable=False, index=True),
    sa.Column("batch_id", sa.Text, nullable=False, index=True),
    sa.Column("provider", sa.Text, nullable=False),
    sa.Column("task_id", sa.Text, nullable=True),
    # GenerationTaskStatus (db/records.py): submitting | submitted | succeeded | failed | canceled |
    # superseded (an operator regenerated the job: the task was paid and finished, a newer task replaces it)
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("error_code", sa.Text, nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("cost_credits", sa.Float, nullable=True),
    sa.Column("provider_meta", sa.Text, nullable=True),  # JSON: e.g. fal's status/response/cancel URLs
    sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    *_timestamps(),
    sa.Column("last_polled_at", sa.DateTime(timezone=True), nullable=True),  # reconciler: poll rate per task
    # money ledger (migration 0004): the task's cost in USD and where the figure came from
    # ('provider': the provider reported it, 'rate': the published rate table), and the
    # possibly-orphaned flag of an ambiguous create (request sent, answer lost)
    sa.Column("cost_usd", sa.Float, nullable=True),
    sa.Column("cost_source", sa.Text, nullable=True),
    sa.Column("possibly_orphaned", sa.Boolean, nullable=False, server_default=sa.false()),
    # migration 0005: failed downloads of a finished task's output (each URL tried counts one) and
    # the last one's error; past ZENCOURT_MAX_DOWNLOAD_ATTEMPTS the job fails OUTPUT_DOWNLOAD_FAILED
    sa.Column("download_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("download_error", sa.Text, nullable=True),
    # migration 0008: the provider's last reported progress (0..1) while the task runs
    sa.Column("progress", sa.Float, nullable=True),
    sa.UniqueConstraint("provider", "task_id", name="uq_generation_tasks_provider_task"),
)

# Monthly clip usage per quota scope (migration 0004): reserved and incremented under a row lock,
# so concurrent intakes and fallbacks of one listing or workspace cannot all pass the same check.
clip_quota_usage = sa.Table(
    "clip_quota_usage",
    metadata,
    sa.Column("scope", sa.Text, primary_key=True),  # listing | workspace
    sa.Column("scope_id", sa.Text, primary_key=True),
    sa.Column("month", sa.Text, primary_key=True),  # YYYY-MM (UTC)
    sa.Column("used", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# Durable record of every provider completion (fal webhook, Runway poll result, local render).
# Unique on (provider, task_id): a duplicate delivery changes nothing.
generation_completions = sa.Table(
    "generation_completions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("provider", sa.Text, nullable=False),
    sa.Column("task_id", sa.Text, nullable=False),
    sa.Column("job_id", sa.Text, nullable=True, index=True),
    sa.Column("batch_id", sa.Text, nullable=True, index=True),
    sa.Column("status", sa.Text, nullable=False),  # GenerationTaskStatus: succeeded | failed | canceled
    sa.Column("output_url", sa.Text, nullable=True),
    sa.Column("error_code", sa.Text, nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("payload", sa.Text, nullable=True),  # raw JSON as received
    sa.Column("source", sa.Text, nullable=False),  # webhook | poll | local
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("provider", "task_id", name="uq_generation_completions_provider_task"),
)

# Completion webhooks to the web app (docs/contract.md section 5), written in the same transaction
# as the state change they report; a deliverer signs and POSTs them until a 2xx.
webhook_outbox = sa.Table(
    "webhook_outbox",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("event", sa.Text, nullable=False),
    sa.Column("batch_id", sa.Text, nullable=False, index=True),
    sa.Column("job_id", sa.Text, nullable=True),
    sa.Column("body", sa.Text, nullable=False),  # the exact JSON that is signed and sent
    sa.Column("status", sa.Text, nullable=False, server_default=OutboxStatus.PENDING.value),  # OutboxStatus
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_status_code", sa.Integer, nullable=True),
    sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    *_timestamps(),
    sa.Column("target_url", sa.Text, nullable=True),  # migration 0012: a batch's callback URL; null: the global one
)

# Idempotency keys of `POST /video/batches` (migration 0006), written in the batch's transaction:
# the batch a key created and the SHA-256 of the request body (a replay vs. a conflicting reuse).
api_idempotency_keys = sa.Table(
    "api_idempotency_keys",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("batch_id", sa.Text, sa.ForeignKey("video_gen_batch.id"), nullable=False),
    sa.Column("body_sha256", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# Every state change of a batch and its jobs (migration 0008), written in the same transaction as
# the change (db/events.py); `GET /video/batches/{id}/events` streams them. The id orders them and
# is the SSE event id; `created_at` (the writer's clock at the insert) tells how long a missing
# id has been missing (db/events.py `EventCursor`).
batch_events = sa.Table(
    "batch_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("batch_id", sa.Text, nullable=False),
    sa.Column("job_id", sa.Text, nullable=True),
    sa.Column("event", sa.Text, nullable=False),  # BatchEventType
    sa.Column("body", sa.Text, nullable=False),  # JSON, camelCase: the SSE `data`
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_batch_events_batch_id_id", "batch_id", "id"),
)

# Per-workspace API keys of the HTTP service (migration 0007): only the SHA-256 of a key is stored,
# with its non-secret prefix (`zck_` + 12 hex, unique: the lookup and what `zencourt keys list`
# shows), the workspace it is bound to and its scopes (comma-separated `ApiScope` values).
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("prefix", sa.Text, nullable=False, unique=True),
    sa.Column("key_sha256", sa.Text, nullable=False),
    sa.Column("workspace_id", sa.Text, nullable=False, index=True),
    sa.Column("scopes", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

# A workspace's own composition templates (migration 0010): the template JSON (`media.templates.Template`)
# under its name, validated before it is written (db/templates.py); a batch of the workspace names it.
workspace_templates = sa.Table(
    "workspace_templates",
    metadata,
    sa.Column("workspace_id", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.PrimaryKeyConstraint("workspace_id", "name", name="pk_workspace_templates"),
)

# A workspace's branding profile (migration 0014): agent, brokerage, contact, logo (base64 in the JSON)
# and colours, `media.branding.BrandingProfile` validated on write (db/branding.py)
workspace_branding = sa.Table(
    "workspace_branding",
    metadata,
    sa.Column("workspace_id", sa.Text, primary_key=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# The outputs a batch produced (migration 0011): one row per rendition (shape, size, branded or
# MLS-unbranded), its stored video and thumbnail URIs, written with the batch's terminal state
# (db/outputs.py); `is_primary` marks the one `video_gen_batch.video_url` points at.
video_gen_outputs = sa.Table(
    "video_gen_outputs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("batch_id", sa.Text, sa.ForeignKey("video_gen_batch.id"), nullable=False, index=True),
    sa.Column("shape", sa.Text, nullable=False),  # domain.OutputShape
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("branded", sa.Boolean, nullable=False),
    sa.Column("is_primary", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("status", sa.Text, nullable=False),  # OutputStatus: completed | failed
    sa.Column("template", sa.Text, nullable=True),
    sa.Column("video_url", sa.Text, nullable=True),  # the stored URI (the canonical key)
    sa.Column("thumbnail_url", sa.Text, nullable=True),
    sa.Column("duration_seconds", sa.Float, nullable=True),
    sa.Column("size_bytes", sa.BigInteger, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    *_timestamps(),
    # migration 0015: the size of the clips the output was made from (`WxH`), e.g. 1280x720 under a 1080p output
    sa.Column("source_resolution", sa.Text, nullable=True),
    sa.UniqueConstraint("batch_id", "shape", "width", "height", "branded", name="uq_video_gen_outputs_rendition"),
)
