"""Live progress (`GET /video/batches/{id}/events`).

* `batch_events`: one row per state change of a batch or one of its jobs (status, provider,
  progress, stage, URLs, errors), written in the same transaction as the change; the integer id
  is the SSE event id. Indexed on (batch_id, id) for a batch's stream.
* `generation_tasks.progress`: the provider's last reported progress (0..1), so a `job.progress`
  event is written only when it changes.

Additive: the web app's tables are untouched.

Revision ID: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("batch_id", sa.Text, nullable=False),
        sa.Column("job_id", sa.Text, nullable=True),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_batch_events_batch_id_id", "batch_events", ["batch_id", "id"])
    with op.batch_alter_table("generation_tasks") as batch:
        batch.add_column(sa.Column("progress", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("generation_tasks") as batch:
        batch.drop_column("progress")
    op.drop_index("ix_batch_events_batch_id_id", "batch_events")
    op.drop_table("batch_events")
