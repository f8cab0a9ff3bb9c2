"""`Db`: the one explicit database handle that every repository is built over.

It holds the engine and declares what the repositories share: the transaction, the short-lived
reads (`fetch`, `fetch_one`), the two writes that ride in the caller's transaction next to the
change they report (`emit`: the webhook outbox row; `record`: the batch event row), and the row
locks and inserts several repositories need. A change is never reported without having happened,
and never happens without being reported, because `emit` and `record` only take the caller's
connection.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa

from zencourt_pipeline.db import migrate
from zencourt_pipeline.db.clock import utcnow
from zencourt_pipeline.db.records import Batch, BatchEventType, Job, Record
from zencourt_pipeline.db.schema import batch_events, video_gen_batch, video_gen_jobs, webhook_outbox

R = TypeVar("R", bound=Record)
# the column values of a row to insert (what the web app writes: `insert_batch`), not a row read
ColumnValues = Mapping[str, Any]


def _enable_sqlite_wal(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_engine(url: str) -> sa.Engine:
    """An engine for the URL: SQLite in WAL mode with a lock timeout, PostgreSQL via psycopg2, pooled."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        sa.event.listen(engine, "connect", _enable_sqlite_wal)
        return engine
    if url.startswith("postgresql://"):
        # psycopg2 is what dagster-postgres installs; SQLAlchemy 2.1 would default to psycopg 3.
        url = "postgresql+psycopg2://" + url[len("postgresql://") :]
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


class Db:
    """The engine of one database URL and what every repository does with it."""

    def __init__(self, url: str):
        self.url = url
        self.engine = create_engine(url)

    # -- lifecycle -------------------------------------------------------------------------
    def upgrade(self) -> None:
        """Migrate the application database to the latest revision."""
        migrate.upgrade(self.engine)

    def dispose(self) -> None:
        """Close every pooled connection of the engine."""
        self.engine.dispose()

    def ping(self) -> bool:
        """True when the database answers `SELECT 1`."""
        with self.engine.connect() as conn:
            return conn.execute(sa.text("SELECT 1")).scalar() == 1

    @property
    def postgresql(self) -> bool:
        """Whether the engine is PostgreSQL's (row locks, `SKIP LOCKED`, advisory locks)."""
        return self.engine.dialect.name == "postgresql"

    # -- connections -------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A connection inside one transaction, committed on exit and rolled back on error."""
        with self.engine.begin() as conn:
            yield conn

    def fetch(self, query: sa.Executable, record: type[R]) -> list[R]:
        """Run a select on a short-lived connection; rows as `record`s."""
        with self.engine.connect() as conn:
            return [record.from_row(row) for row in conn.execute(query)]

    def fetch_one(self, query: sa.Executable, record: type[R]) -> R | None:
        """The first row of a select as a `record`, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return record.from_row(row) if row is not None else None

    # -- what a change reports, in its own transaction ----------------------------------------
    def emit(self, conn: sa.Connection, event: str, batch_id: str, *, job_id: str | None = None, **fields: Any) -> None:
        """The outbox row of one webhook; a batch with its own `callback_url` gets a second row for
        it (its own delivery id, the same event), delivered next to the global one."""
        batch = conn.execute(
            sa.select(video_gen_batch.c.listing_id, video_gen_batch.c.callback_url).where(video_gen_batch.c.id == batch_id)
        ).first()
        listing_id, callback_url = (batch.listing_id, batch.callback_url) if batch is not None else (None, None)
        for target_url in (None, callback_url) if callback_url else (None,):
            delivery_id = str(uuid.uuid4())
            body: dict[str, Any] = {"id": delivery_id, "event": event, "batchId": batch_id, "listingId": listing_id}
            if job_id is not None:
                body["jobId"] = job_id
            body.update({key: value for key, value in fields.items() if value is not None})
            body["occurredAt"] = utcnow().isoformat().replace("+00:00", "Z")
            conn.execute(
                sa.insert(webhook_outbox).values(
                    id=delivery_id,
                    event=event,
                    batch_id=batch_id,
                    job_id=job_id,
                    body=json.dumps(body, separators=(",", ":")),
                    next_attempt_at=utcnow(),
                    created_at=utcnow(),
                    updated_at=utcnow(),
                    target_url=target_url,
                )
            )

    def record(
        self, conn: sa.Connection, batch_id: str, event: BatchEventType, *, job_id: str | None = None, **fields: Any
    ) -> None:
        """Write one batch event row (events.py) in the caller's transaction (the change it reports is in the same one)."""
        now = utcnow()
        body: dict[str, Any] = {"event": str(event), "batchId": batch_id}
        if job_id is not None:
            body["jobId"] = job_id
        body.update(fields)
        body["occurredAt"] = now.isoformat().replace("+00:00", "Z")
        conn.execute(
            sa.insert(batch_events).values(
                batch_id=batch_id, job_id=job_id, event=event, body=json.dumps(body, separators=(",", ":")), created_at=now
            )
        )

    # -- shared row helpers ----------------------------------------------------------------------
    def batch_of_job(self, conn: sa.Connection, job_id: str) -> str | None:
        """The id of the job's batch (None: no such job)."""
        return conn.execute(sa.select(video_gen_jobs.c.batch_id).where(video_gen_jobs.c.id == job_id)).scalar()

    def job_for_update(self, conn: sa.Connection, job_id: str) -> Job | None:
        """The job row, locked until the transaction ends: FOR UPDATE on PostgreSQL; on SQLite a
        no-op write first, which begins the transaction and takes the one writer's lock (pysqlite
        begins a transaction only at a write, so a read-then-write would race)."""
        query = sa.select(video_gen_jobs).where(video_gen_jobs.c.id == job_id)
        if self.postgresql:
            query = query.with_for_update()
        else:
            conn.execute(
                sa.update(video_gen_jobs).where(video_gen_jobs.c.id == job_id).values(id=video_gen_jobs.c.id)
            )
        row = conn.execute(query).first()
        return Job.from_row(row) if row else None

    def batch_for_update(self, conn: sa.Connection, batch_id: str) -> Batch | None:
        """The batch row, locked until the transaction ends (PostgreSQL; SQLite has one writer)."""
        query = sa.select(video_gen_batch).where(video_gen_batch.c.id == batch_id)
        if self.postgresql:
            query = query.with_for_update()
        row = conn.execute(query).first()
        return Batch.from_row(row) if row else None

    def insert_ignoring_duplicate(
        self, conn: sa.Connection, table: sa.Table, values: Mapping[str, Any], keys: list[str]
    ) -> bool:
        """Insert the row unless one with the same `keys` exists; whether it was inserted."""
        if self.postgresql:
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        result = conn.execute(insert(table).values(**values).on_conflict_do_nothing(index_elements=keys))
        return result.rowcount == 1
