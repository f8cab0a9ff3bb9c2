"""api_keys: per-workspace API keys of the HTTP service (`zencourt keys create|list|revoke`).

Only the SHA-256 of each key is stored, with its non-secret prefix (unique: the lookup and the
display), the workspace it is bound to, its scopes, and when it was created, last used and revoked.

Additive: a new table; the web app's tables are untouched.

Revision ID: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("prefix", sa.Text, nullable=False, unique=True),
        sa.Column("key_sha256", sa.Text, nullable=False),
        sa.Column("workspace_id", sa.Text, nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_api_keys_workspace_id", "api_keys", ["workspace_id"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_workspace_id", "api_keys")
    op.drop_table("api_keys")
