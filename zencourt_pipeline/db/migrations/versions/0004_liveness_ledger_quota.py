"""Liveness, the money ledger and race-free quotas.

- video_gen_batch: error_code, blocked_reason, processing_started_at, sensor_checked_at,
  composed_digest, compose_attempts, intake_attempts (the watchdog and fair sensors).
- generation_tasks: cost_usd, cost_source, possibly_orphaned (every paid task accounted for).
- clip_quota_usage: monthly clips per listing / workspace, incremented under a row lock.

Additive: the web app's columns are untouched.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("video_gen_batch") as batch:
        batch.add_column(sa.Column("error_code", sa.Text, nullable=True))
        batch.add_column(sa.Column("blocked_reason", sa.Text, nullable=True))
        batch.add_column(sa.Column("processing_started_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("sensor_checked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("composed_digest", sa.Text, nullable=True))
        batch.add_column(sa.Column("compose_attempts", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("intake_attempts", sa.Integer, nullable=False, server_default="0"))
    op.create_index("ix_video_gen_batch_status_checked", "video_gen_batch", ["status", "sensor_checked_at"])
    with op.batch_alter_table("generation_tasks") as batch:
        batch.add_column(sa.Column("cost_usd", sa.Float, nullable=True))
        batch.add_column(sa.Column("cost_source", sa.Text, nullable=True))
        batch.add_column(sa.Column("possibly_orphaned", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table(
        "clip_quota_usage",
        sa.Column("scope", sa.Text, primary_key=True),
        sa.Column("scope_id", sa.Text, primary_key=True),
        sa.Column("month", sa.Text, primary_key=True),
        sa.Column("used", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("clip_quota_usage")
    with op.batch_alter_table("generation_tasks") as batch:
        batch.drop_column("possibly_orphaned")
        batch.drop_column("cost_source")
        batch.drop_column("cost_usd")
    op.drop_index("ix_video_gen_batch_status_checked", "video_gen_batch")
    with op.batch_alter_table("video_gen_batch") as batch:
        for name in ("intake_attempts", "compose_attempts", "composed_digest", "sensor_checked_at",
                     "processing_started_at", "blocked_reason", "error_code"):
            batch.drop_column(name)
