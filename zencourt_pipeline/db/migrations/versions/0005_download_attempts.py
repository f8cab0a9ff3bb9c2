"""generation_tasks.download_attempts / download_error: a paid output whose download fails is
downloaded again (from a fresh URL), never generated again; the attempts are counted so that the
job fails OUTPUT_DOWNLOAD_FAILED after a bounded number (ZENCOURT_MAX_DOWNLOAD_ATTEMPTS).

Additive: the web app's columns are untouched.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("generation_tasks") as batch:
        batch.add_column(sa.Column("download_attempts", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("download_error", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("generation_tasks") as batch:
        batch.drop_column("download_error")
        batch.drop_column("download_attempts")
