"""Merge-field templates (issue 14 point 2): the batch's `facts` (JSON text: address, price, beds,
baths, sqft, agent_name), each job's `caption` (its room name when null) and `transition` (an
xfade style into the next clip; null: the template's), and `workspace_templates`: a workspace's own
template JSON under a name, validated on write (`db/templates.py`).

Additive: nullable columns on the web app's tables, and a new table.

Revision ID: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("video_gen_batch", sa.Column("facts", sa.Text, nullable=True))
    op.add_column("video_gen_jobs", sa.Column("caption", sa.Text, nullable=True))
    op.add_column("video_gen_jobs", sa.Column("transition", sa.Text, nullable=True))
    op.create_table(
        "workspace_templates",
        sa.Column("workspace_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("workspace_id", "name", name="pk_workspace_templates"),
    )


def downgrade() -> None:
    op.drop_table("workspace_templates")
    # ALTER TABLE ... DROP COLUMN in place (SQLite >= 3.35 too): a batch-mode copy of these tables
    # would fail on the foreign keys that point at them
    for table, column in (("video_gen_jobs", "transition"), ("video_gen_jobs", "caption"), ("video_gen_batch", "facts")):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
