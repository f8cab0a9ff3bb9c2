"""Partition retention: `ix_video_gen_batch_updated_id` on `video_gen_batch(updated_at, id)`.

The retention sensor (`defs/retention.py`) pages through the batches that ended before the
retention cutoff, oldest change first, by keyset on (updated_at, id): without the index each tick
would scan the table. Additive: the web app's columns are untouched.

Revision ID: 0009
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_video_gen_batch_updated_id", "video_gen_batch", ["updated_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_video_gen_batch_updated_id", "video_gen_batch")
