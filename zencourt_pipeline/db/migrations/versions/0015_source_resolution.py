"""Source resolution (issue 15 point 2): `video_gen_outputs.source_resolution`, the size of the clips
an output was made from (`WxH`, e.g. `1280x720`): the providers generate about 720p, so a 1080p
output is scaled up from them, and the row says so.

Additive: a nullable column (rows written before it have none).

Revision ID: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("video_gen_outputs", sa.Column("source_resolution", sa.Text, nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN in place (SQLite >= 3.35 too), as 0010 and 0014 do
    op.execute("ALTER TABLE video_gen_outputs DROP COLUMN source_resolution")
