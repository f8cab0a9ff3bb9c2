"""Renditions (issue 15 point 1): `video_gen_outputs`, one row per output a batch produced (shape,
size, branded or MLS-unbranded, its stored video and thumbnail, duration, bytes, status), the
outputs a batch asks for (`video_gen_batch.outputs`, JSON text; null: the default four) and each
job's focus point for reframing its clip into another shape (`video_gen_jobs.focus_x`/`focus_y`,
0..1 of the frame; null: the centre).

Additive: nullable columns on the web app's tables, and a new table.

Revision ID: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("video_gen_batch", sa.Column("outputs", sa.Text, nullable=True))
    op.add_column("video_gen_jobs", sa.Column("focus_x", sa.Float, nullable=True))
    op.add_column("video_gen_jobs", sa.Column("focus_y", sa.Float, nullable=True))
    op.create_table(
        "video_gen_outputs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("batch_id", sa.Text, sa.ForeignKey("video_gen_batch.id"), nullable=False, index=True),
        sa.Column("shape", sa.Text, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("branded", sa.Boolean, nullable=False),
        sa.Column("is_primary", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("template", sa.Text, nullable=True),
        sa.Column("video_url", sa.Text, nullable=True),
        sa.Column("thumbnail_url", sa.Text, nullable=True),
        sa.Column("duration_seconds", sa.Float, nullable=True),
        sa.Column("size_bytes", sa.BigInteger, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("batch_id", "shape", "width", "height", "branded", name="uq_video_gen_outputs_rendition"),
    )


def downgrade() -> None:
    op.drop_table("video_gen_outputs")
    # ALTER TABLE ... DROP COLUMN in place (SQLite >= 3.35 too), as 0010 does
    for table, column in (("video_gen_jobs", "focus_y"), ("video_gen_jobs", "focus_x"), ("video_gen_batch", "outputs")):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
