"""Alembic environment: run by `zencourt db upgrade` (see zencourt_pipeline.db.migrate)."""

from alembic import context

from zencourt_pipeline.db.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only through zencourt db upgrade
    raise RuntimeError("run migrations through zencourt_pipeline.db.migrate.upgrade()")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
