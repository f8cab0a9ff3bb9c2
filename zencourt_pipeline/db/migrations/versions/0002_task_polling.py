"""generation_tasks.last_polled_at: the reconciler polls each task no faster than its provider allows.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("generation_tasks") as batch:
        batch.add_column(sa.Column("last_polled_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_generation_tasks_status", "generation_tasks", ["status"])


def downgrade() -> None:
    op.drop_index("ix_generation_tasks_status", "generation_tasks")
    with op.batch_alter_table("generation_tasks") as batch:
        batch.drop_column("last_polled_at")
