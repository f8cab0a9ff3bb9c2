"""A batch's narration (issue 14 point 4; issue 15 point 3 for the MLS-unbranded cut).

- `video_gen_batch.narration_url`: the voice-over the web app gives (https URL or storage URI);
- `video_gen_batch.narration_identifies_agent`: whether the voice names the agent (null: true), so
  the unbranded cut leaves it out;
- `video_gen_batch.narration_key`: pipeline-owned, the checked copy intake stored;
- `video_gen_jobs.timed_seconds`: pipeline-owned, a photo clip's length timed to the narration's
  pauses (the local generator's Ken Burns clips; null: `duration_seconds`).

Additive: nullable columns only.

Revision ID: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

COLUMNS = (
    ("video_gen_batch", sa.Column("narration_url", sa.Text, nullable=True)),
    ("video_gen_batch", sa.Column("narration_identifies_agent", sa.Boolean, nullable=True)),
    ("video_gen_batch", sa.Column("narration_key", sa.Text, nullable=True)),
    ("video_gen_jobs", sa.Column("timed_seconds", sa.Float, nullable=True)),
)


def upgrade() -> None:
    for table, column in COLUMNS:
        op.add_column(table, column)


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN in place (SQLite >= 3.35 too), as 0010 and 0012 do
    for table, column in reversed(COLUMNS):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column.name}")
