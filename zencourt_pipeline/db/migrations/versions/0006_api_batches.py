"""Batches created over HTTP (`POST /video/batches`) and listed newest first (`GET /video/batches`).

* `api_idempotency_keys`: one row per `Idempotency-Key` a create was made with, written in the
  same transaction as the batch (a crash leaves both or neither): the batch it created and the
  SHA-256 of the request body, so a replay answers that batch and another body with the key is a
  conflict.
* `ix_video_gen_batch_created_id` on `video_gen_batch(created_at, id)`: the keyset pagination of
  the list route (newest first, id as the tiebreak).

Additive: the web app's columns are untouched, and it may keep inserting rows directly.

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_idempotency_keys",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("batch_id", sa.Text, sa.ForeignKey("video_gen_batch.id"), nullable=False),
        sa.Column("body_sha256", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_video_gen_batch_created_id", "video_gen_batch", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_video_gen_batch_created_id", "video_gen_batch")
    op.drop_table("api_idempotency_keys")
