"""Application tables (docs/contract.md section 3) and the pipeline's own tables.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _timestamps():
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


def upgrade() -> None:
    bind = op.get_bind()
    existing = set(sa.inspect(bind).get_table_names())
    # The web app may have created its two tables already: then only add our columns.
    if "video_gen_batch" not in existing:
        op.create_table(
            "video_gen_batch",
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("listing_id", sa.Text, nullable=False),
            sa.Column("orientation", sa.Text, nullable=False, server_default="landscape"),
            sa.Column("template", sa.Text, nullable=True),
            sa.Column("title", sa.Text, nullable=True),
            sa.Column("status", sa.Text, nullable=False, server_default="pending"),
            sa.Column("video_url", sa.Text, nullable=True),
            sa.Column("thumbnail_url", sa.Text, nullable=True),
            sa.Column("error", sa.Text, nullable=True),
            *_timestamps(),
        )
    if "video_gen_jobs" not in existing:
        op.create_table(
            "video_gen_jobs",
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("batch_id", sa.Text, sa.ForeignKey("video_gen_batch.id"), nullable=False),
            sa.Column("sort_order", sa.Integer, nullable=False, server_default="0"),
            sa.Column("room_name", sa.Text, nullable=True),
            sa.Column("image_url", sa.Text, nullable=False),
            sa.Column("prompt", sa.Text, nullable=True),
            sa.Column("duration_seconds", sa.Integer, nullable=False, server_default="5"),
            sa.Column("status", sa.Text, nullable=False, server_default="pending"),
            sa.Column("provider", sa.Text, nullable=True),
            sa.Column("provider_task_id", sa.Text, nullable=True),
            sa.Column("video_url", sa.Text, nullable=True),
            sa.Column("thumbnail_url", sa.Text, nullable=True),
            sa.Column("error_code", sa.Text, nullable=True),
            sa.Column("error_message", sa.Text, nullable=True),
            *_timestamps(),
        )
        op.create_index("ix_video_gen_jobs_batch_id", "video_gen_jobs", ["batch_id"])
    with op.batch_alter_table("video_gen_batch") as batch:
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_video_gen_batch_status", "video_gen_batch", ["status"])
    with op.batch_alter_table("video_gen_jobs") as batch:
        batch.add_column(sa.Column("photo_key", sa.Text, nullable=True))
        batch.add_column(sa.Column("raw_clip_key", sa.Text, nullable=True))

    op.create_table(
        "generation_tasks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Text, sa.ForeignKey("video_gen_jobs.id"), nullable=False),
        sa.Column("batch_id", sa.Text, nullable=False),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("task_id", sa.Text, nullable=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("error_code", sa.Text, nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("cost_credits", sa.Float, nullable=True),
        sa.Column("provider_meta", sa.Text, nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.UniqueConstraint("provider", "task_id", name="uq_generation_tasks_provider_task"),
    )
    op.create_index("ix_generation_tasks_job_id", "generation_tasks", ["job_id"])
    op.create_index("ix_generation_tasks_batch_id", "generation_tasks", ["batch_id"])

    op.create_table(
        "generation_completions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("task_id", sa.Text, nullable=False),
        sa.Column("job_id", sa.Text, nullable=True),
        sa.Column("batch_id", sa.Text, nullable=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("output_url", sa.Text, nullable=True),
        sa.Column("error_code", sa.Text, nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("payload", sa.Text, nullable=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("provider", "task_id", name="uq_generation_completions_provider_task"),
    )
    op.create_index("ix_generation_completions_job_id", "generation_completions", ["job_id"])
    op.create_index("ix_generation_completions_batch_id", "generation_completions", ["batch_id"])

    op.create_table(
        "webhook_outbox",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("batch_id", sa.Text, nullable=False),
        sa.Column("job_id", sa.Text, nullable=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
    )
    op.create_index("ix_webhook_outbox_batch_id", "webhook_outbox", ["batch_id"])
    op.create_index("ix_webhook_outbox_due", "webhook_outbox", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("webhook_outbox")
    op.drop_table("generation_completions")
    op.drop_table("generation_tasks")
    op.drop_index("ix_video_gen_batch_status", "video_gen_batch")
    with op.batch_alter_table("video_gen_jobs") as batch:
        batch.drop_column("raw_clip_key")
        batch.drop_column("photo_key")
    with op.batch_alter_table("video_gen_batch") as batch:
        batch.drop_column("claimed_at")
