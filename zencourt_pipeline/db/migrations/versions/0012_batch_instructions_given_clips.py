"""Custom instructions, per-batch callbacks and given clips (issue 14 points 5 and 6).

- `video_gen_batch.instructions`: text (at most 500 characters) added to every job's motion prompt;
- `video_gen_batch.callback_url`: the batch's own webhook URL, sent every webhook next to the global one;
- `webhook_outbox.target_url`: where a row goes (null: the global `VERCEL_API_URL` + path);
- `video_gen_jobs.clip_url`, `clip_in_seconds`, `clip_out_seconds`: a clip the web app already has
  (storage URI or https URL) and its in/out points: the job skips generation.

Additive: nullable columns only.

Revision ID: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

COLUMNS = (
    ("video_gen_batch", sa.Column("instructions", sa.Text, nullable=True)),
    ("video_gen_batch", sa.Column("callback_url", sa.Text, nullable=True)),
    ("webhook_outbox", sa.Column("target_url", sa.Text, nullable=True)),
    ("video_gen_jobs", sa.Column("clip_url", sa.Text, nullable=True)),
    ("video_gen_jobs", sa.Column("clip_in_seconds", sa.Float, nullable=True)),
    ("video_gen_jobs", sa.Column("clip_out_seconds", sa.Float, nullable=True)),
)


def upgrade() -> None:
    for table, column in COLUMNS:
        op.add_column(table, column)


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN in place (SQLite >= 3.35 too), as 0010 does
    for table, column in reversed(COLUMNS):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column.name}")
