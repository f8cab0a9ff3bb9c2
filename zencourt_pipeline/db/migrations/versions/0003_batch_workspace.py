"""video_gen_batch.workspace_id (nullable): the per-workspace monthly clip quota.

Additive: the web app may set it; batches without one are counted per listing only.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("video_gen_batch") as batch:
        batch.add_column(sa.Column("workspace_id", sa.Text, nullable=True))
    op.create_index("ix_video_gen_batch_workspace_id", "video_gen_batch", ["workspace_id"])
    op.create_index("ix_video_gen_batch_listing_id", "video_gen_batch", ["listing_id"])


def downgrade() -> None:
    op.drop_index("ix_video_gen_batch_listing_id", "video_gen_batch")
    op.drop_index("ix_video_gen_batch_workspace_id", "video_gen_batch")
    with op.batch_alter_table("video_gen_batch") as batch:
        batch.drop_column("workspace_id")
