"""The one database layer shared by the Dagster code and the HTTP service.

Every state change that the web app must hear about writes its outbox row in the same
transaction (see `_emit`), so a change is never reported without having happened, and never
happens without being reported.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar

import sqlalchemy as sa

from zencourt_pipeline.db import migrate
from zencourt_pipeline.db.analytics import AnalyticsQueries
from zencourt_pipeline.db.batches import BatchQueries
from zencourt_pipeline.db.cancel import CancelQueries
from zencourt_pipeline.db.clock import as_utc, utcnow  # noqa: F401 - re-exported
from zencourt_pipeline.db.completions import CompletionQueries
from zencourt_pipeline.db.events import EventQueries
from zencourt_pipeline.db.generation import GenerationQueries
from zencourt_pipeline.db.liveness import LivenessQueries
from zencourt_pipeline.db.outputs import OutputQueries, OutputRow, replace_outputs, webhook_fields
from zencourt_pipeline.db.quota import QuotaQueries
from zencourt_pipeline.db.records import (
    OPEN_BATCH_STATUSES,
    TERMINAL_STATUSES,
    Batch,
    BatchEventType,
    BatchStatus,
    Job,
    JobStatus,
    OutboxEvent,
    Record,
)
from zencourt_pipeline.db.schema import video_gen_batch, video_gen_jobs, webhook_outbox
from zencourt_pipeline.db.spend import SpendQueries

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


class AppDatabase(
    GenerationQueries,
    CompletionQueries,
    CancelQueries,
    QuotaQueries,
    LivenessQueries,
    SpendQueries,
    AnalyticsQueries,
    BatchQueries,
    EventQueries,
    OutputQueries,
):
    """Queries and state transitions over the tables in `schema.py`."""

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

    def _fetch(self, query: sa.Executable, record: type[R]) -> list[R]:
        """Run a select on a short-lived connection; rows as `record`s."""
        with self.engine.connect() as conn:
            return [record.from_row(row) for row in conn.execute(query)]

    def _fetch_one(self, query: sa.Executable, record: type[R]) -> R | None:
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return record.from_row(row) if row is not None else None

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A connection inside one transaction, committed on exit and rolled back on error."""
        with self.engine.begin() as conn:
            yield conn

    # -- what the web app does (demo, tests) ------------------------------------------------
    def insert_batch(self, batch: ColumnValues, jobs: Iterable[ColumnValues]) -> None:
        """Insert a batch and its jobs in one transaction, as the web app does."""
        with self.transaction() as conn:
            conn.execute(sa.insert(video_gen_batch).values(**batch))
            job_rows = [{"batch_id": batch["id"], **job} for job in jobs]
            if job_rows:
                conn.execute(sa.insert(video_gen_jobs), job_rows)
            self._record_created(conn, batch, job_rows)

    # -- reads -----------------------------------------------------------------------------
    def get_batch(self, batch_id: str) -> Batch | None:
        """The batch row with this id, or None."""
        return self._fetch_one(sa.select(video_gen_batch).where(video_gen_batch.c.id == batch_id), Batch)

    def get_jobs(self, batch_id: str) -> list[Job]:
        """The batch's job rows in their sort order."""
        query = (
            sa.select(video_gen_jobs)
            .where(video_gen_jobs.c.batch_id == batch_id)
            .order_by(video_gen_jobs.c.sort_order, video_gen_jobs.c.id)
        )
        return self._fetch(query, Job)

    def get_job(self, job_id: str) -> Job | None:
        """The job row with this id, or None."""
        return self._fetch_one(sa.select(video_gen_jobs).where(video_gen_jobs.c.id == job_id), Job)

    # -- the batch sensor ------------------------------------------------------------------
    def claim_pending_batches(self, limit: int = 25, reclaim_after: timedelta = timedelta(minutes=10)) -> list[Batch]:
        """Pending batches not handed to Dagster recently, marked as handed over now.

        Claiming is by status plus a lag window, never by `id > cursor` (rows commit out of
        order). If the sensor dies after this commit but before its run request lands, the
        batch is offered again after `reclaim_after`; the run key stops a second run.
        """
        now = utcnow()
        batch = video_gen_batch.c
        claimable = sa.and_(
            batch.status == BatchStatus.PENDING,
            sa.or_(batch.claimed_at.is_(None), batch.claimed_at < now - reclaim_after),
        )
        # never-claimed batches first: reclaims (a run request that may not have landed) never
        # crowd a new batch out of the tick
        query = (
            sa.select(video_gen_batch)
            .where(claimable)
            .order_by(batch.claimed_at.is_not(None), batch.created_at, batch.id)
            .limit(limit)
        )
        claimed = []
        for candidate in self._fetch(query, Batch):
            # compare-and-set in its own short transaction: of concurrent claimers, one wins
            with self.transaction() as conn:
                result = conn.execute(
                    sa.update(video_gen_batch).where(batch.id == candidate.id, claimable).values(claimed_at=now)
                )
            if result.rowcount == 1:
                claimed.append(replace(candidate, claimed_at=now))
        return claimed

    def request_pickup(self, batch_id: str) -> bool:
        """`POST /video/generate`: make a pending batch claimable at the next sensor tick."""
        with self.transaction() as conn:
            result = conn.execute(
                sa.update(video_gen_batch)
                .where(video_gen_batch.c.id == batch_id, video_gen_batch.c.status == BatchStatus.PENDING)
                .values(claimed_at=None, updated_at=utcnow())
            )
        return result.rowcount == 1

    # -- state transitions ------------------------------------------------------------------
    def start_batch(self, batch_id: str) -> None:
        """Mark an open batch processing and stamp when its processing first started."""
        with self.transaction() as conn:
            batch = self._batch_for_update(conn, batch_id)
            if batch is not None and batch.status == BatchStatus.PENDING:
                self._record(conn, batch_id, BatchEventType.PROCESSING, status=BatchStatus.PROCESSING)
            conn.execute(
                sa.update(video_gen_batch)
                .where(video_gen_batch.c.id == batch_id, video_gen_batch.c.status.in_(OPEN_BATCH_STATUSES))
                .values(status=BatchStatus.PROCESSING, error=None, updated_at=utcnow())
            )
            conn.execute(
                sa.update(video_gen_batch)
                .where(video_gen_batch.c.id == batch_id, video_gen_batch.c.processing_started_at.is_(None))
                .values(processing_started_at=utcnow())
            )

    def update_job(self, job_id: str, **values: Any) -> None:
        """Set the given columns of one job row (and its `updated_at`); a status change is an event."""
        with self.transaction() as conn:
            job = self._job_for_update(conn, job_id) if "status" in values else None
            conn.execute(
                sa.update(video_gen_jobs).where(video_gen_jobs.c.id == job_id).values(**values, updated_at=utcnow())
            )
            if job is not None and job.status != values["status"]:
                status = values["status"]
                self._record(conn, job.batch_id, BatchEventType.of_job(status), job_id=job_id, status=status)

    def fail_job(self, job_id: str, code: str, message: str) -> bool:
        """Mark a job failed (unless already terminal) and report `clip.failed`."""
        with self.transaction() as conn:
            job = self._job_for_update(conn, job_id)
            if job is None or job.terminal:
                return False
            conn.execute(
                sa.update(video_gen_jobs)
                .where(video_gen_jobs.c.id == job_id)
                .values(status=JobStatus.FAILED, error_code=code, error_message=message[:2000], updated_at=utcnow())
            )
            self._emit(conn, "clip.failed", job.batch_id, job_id=job_id, error=f"{code}: {message}"[:2000])
            self._record(
                conn, job.batch_id, BatchEventType.JOB_FAILED, job_id=job_id,
                status=JobStatus.FAILED, provider=job.provider, errorCode=code, error=message[:2000],
            )  # fmt: skip
        return True

    def complete_job(self, job_id: str, video_url: str, thumbnail_url: str | None) -> bool:
        """Mark a job completed with its normalized clip and report `clip.completed`."""
        with self.transaction() as conn:
            job = self._job_for_update(conn, job_id)
            if job is None or job.status in (JobStatus.COMPLETED, JobStatus.CANCELED):
                return False
            conn.execute(
                sa.update(video_gen_jobs)
                .where(video_gen_jobs.c.id == job_id)
                .values(
                    status=JobStatus.COMPLETED,
                    video_url=video_url,
                    thumbnail_url=thumbnail_url,
                    error_code=None,
                    error_message=None,
                    updated_at=utcnow(),
                )
            )
            self._emit(
                conn, "clip.completed", job.batch_id, job_id=job_id, videoUrl=video_url, thumbnailUrl=thumbnail_url
            )
            self._record(
                conn, job.batch_id, BatchEventType.JOB_COMPLETED, job_id=job_id,
                status=JobStatus.COMPLETED, provider=job.provider, videoUri=video_url, thumbnailUri=thumbnail_url,
            )  # fmt: skip
        return True

    def finish_batch(
        self,
        batch_id: str,
        status: BatchStatus,
        *,
        video_url: str | None = None,
        thumbnail_url: str | None = None,
        error: str | None = None,
        error_code: str | None = None,
        outputs: Sequence[OutputRow] | None = None,
    ) -> bool:
        """Move a batch to a terminal status and report `batch.<status>`. The first terminal status
        is final, and the only one the web app is told: a terminal batch changes no more, except
        that a re-compose of a completed batch (an operator's) stores its new URLs. `outputs`
        (composition's renditions) replace the batch's `video_gen_outputs` rows in the same
        transaction and are listed in the webhook. Returns whether the row was written."""
        assert status in TERMINAL_STATUSES, status
        with self.transaction() as conn:
            batch = self._batch_for_update(conn, batch_id)
            if batch is None:
                return False
            if batch.terminal and not (batch.status == status == BatchStatus.COMPLETED):
                return False
            conn.execute(
                sa.update(video_gen_batch)
                .where(video_gen_batch.c.id == batch_id)
                .values(
                    status=status,
                    video_url=video_url,
                    thumbnail_url=thumbnail_url,
                    error=error,
                    error_code=error_code,
                    blocked_reason=None,
                    updated_at=utcnow(),
                )
            )
            if outputs is not None:
                replace_outputs(conn, batch_id, outputs)
            # one terminal event per batch: a re-composed completed batch gets no second webhook
            if not batch.terminal:
                event_fields: dict[str, Any] = {"videoUrl": video_url, "thumbnailUrl": thumbnail_url, "error": error}
                if error_code:
                    event_fields["errorCode"] = error_code
                if outputs:
                    event_fields["outputs"] = [webhook_fields(output) for output in outputs]
                self._emit(conn, f"batch.{status}", batch_id, **event_fields)
            # a re-compose is an event too (new URLs): streams connected then end on it
            extra = {"outputs": [webhook_fields(output) for output in outputs]} if outputs else {}
            self._record(
                conn, batch_id, BatchEventType.of_batch(status), status=status, videoUri=video_url,
                thumbnailUri=thumbnail_url, errorCode=error_code, error=error, **extra,
            )  # fmt: skip
        return True

    # -- outbox --------------------------------------------------------------------------------
    def outbox(self, batch_id: str | None = None) -> list[OutboxEvent]:
        """Every outbox row, oldest first, optionally of one batch only."""
        query = sa.select(webhook_outbox).order_by(webhook_outbox.c.created_at, webhook_outbox.c.id)
        if batch_id is not None:
            query = query.where(webhook_outbox.c.batch_id == batch_id)
        return self._fetch(query, OutboxEvent)

    # -- helpers -------------------------------------------------------------------------------
    def _emit(self, conn: sa.Connection, event: str, batch_id: str, *, job_id: str | None = None, **fields: Any) -> None:
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

    def _record_created(self, conn: sa.Connection, batch: ColumnValues, job_rows: list[dict[str, Any]]) -> None:
        """The `batch.created` event of a batch inserted with its jobs (pending)."""
        fields = {"status": batch.get("status") or BatchStatus.PENDING, "listingId": batch["listing_id"]}
        self._record(conn, batch["id"], BatchEventType.CREATED, **fields, jobIds=[job["id"] for job in job_rows])

    def _batch_of_job(self, conn: sa.Connection, job_id: str) -> str | None:
        return conn.execute(sa.select(video_gen_jobs.c.batch_id).where(video_gen_jobs.c.id == job_id)).scalar()

    def _job_for_update(self, conn: sa.Connection, job_id: str) -> Job | None:
        query = sa.select(video_gen_jobs).where(video_gen_jobs.c.id == job_id)
        if self.engine.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        return Job.from_row(row) if row else None

    def _batch_for_update(self, conn: sa.Connection, batch_id: str) -> Batch | None:
        query = sa.select(video_gen_batch).where(video_gen_batch.c.id == batch_id)
        if self.engine.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        return Batch.from_row(row) if row else None

    def _insert_ignoring_duplicate(
        self, conn: sa.Connection, table: sa.Table, values: Mapping[str, Any], keys: list[str]
    ) -> bool:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        result = conn.execute(insert(table).values(**values).on_conflict_do_nothing(index_elements=keys))
        return result.rowcount == 1
