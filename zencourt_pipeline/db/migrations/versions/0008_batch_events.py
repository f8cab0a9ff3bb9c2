"""Live progress (`GET /video/batches/{id}/events`).

* `batch_events`: one row per state change of a batch or one of its jobs (status, provider,
  progress, stage, URLs, errors), written in the same transaction as the change; the integer id
  is the SSE event id. Indexed on (batch_id, id) for a batch's stream.
* `generation_tasks.progress`: the provider's last reported progress (0..1), so a `job.progress`
  event is written only when it changes.
* PostgreSQL only: a trigger NOTIFYs channel `batch_events` (payload: the batch id) for each row,
  delivered at its commit, so that open streams read at once rather than at their next poll
  (db/events.py `EventListener`); polling stays what guarantees delivery.

Additive: the web app's tables are untouched.

Revision ID: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("batch_id", sa.Text, nullable=False),
        sa.Column("job_id", sa.Text, nullable=True),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_batch_events_batch_id_id", "batch_events", ["batch_id", "id"])
    with op.batch_alter_table("generation_tasks") as batch:
        batch.add_column(sa.Column("progress", sa.Float, nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION batch_events_notify() RETURNS trigger AS $$ "
            "BEGIN PERFORM pg_notify('batch_events', NEW.batch_id); RETURN NULL; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER batch_events_notify AFTER INSERT ON batch_events "
            "FOR EACH ROW EXECUTE PROCEDURE batch_events_notify()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS batch_events_notify ON batch_events")
        op.execute("DROP FUNCTION IF EXISTS batch_events_notify()")
    with op.batch_alter_table("generation_tasks") as batch:
        batch.drop_column("progress")
    op.drop_index("ix_batch_events_batch_id_id", "batch_events")
    op.drop_table("batch_events")
