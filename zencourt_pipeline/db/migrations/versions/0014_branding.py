"""Branding (issue 15 point 3): a workspace's branding profile and a batch's override of it.

- `workspace_branding`: one profile per workspace (JSON text: agent name, brokerage, phone, email,
  website, logo as base64, colours), validated on write (`db/branding.py`);
- `video_gen_batch.branding`: the batch's override (JSON text, the same fields; each one set wins).

Additive: a new table and a nullable column.

Revision ID: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("video_gen_batch", sa.Column("branding", sa.Text, nullable=True))
    op.create_table(
        "workspace_branding",
        sa.Column("workspace_id", sa.Text, primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("workspace_branding")
    # ALTER TABLE ... DROP COLUMN in place (SQLite >= 3.35 too), as 0010 does
    op.execute("ALTER TABLE video_gen_batch DROP COLUMN branding")
