"""Batches and their jobs: the rows the web app inserts (`insert_batch`) or the service creates
(`create_batch`), their reads, and every state transition of a batch or a job.

Each transition writes, in its own transaction, the outbox row the web app must hear about
(`Db.emit`) and the batch event (`Db.record`) next to the change.

`create_batch` inserts through `insert_batch`'s statements (the rows the web app writes, so the
intake sensor picks the batch up the same way) plus, with an idempotency key, the key's row, all
in one transaction. It inserts first and looks second: of two concurrent creates with one key,
one commits and the other's insert fails on the key (or the batch id), rolls back and then finds
the winner's row. It never reads before writing, so SQLite's WAL snapshots cannot make it fail.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from zencourt_pipeline.db.clock import utcnow
from zencourt_pipeline.db.core import ColumnValues, Db
from zencourt_pipeline.db.outputs import OutputRow, replace_outputs, webhook_fields
from zencourt_pipeline.db.records import (
    OPEN_BATCH_STATUSES,
    TERMINAL_STATUSES,
    Batch,
    BatchEventType,
    BatchStatus,
    Job,
    JobStatus,
)
from zencourt_pipeline.db.schema import api_idempotency_keys, video_gen_batch, video_gen_jobs


class CreateOutcome(enum.StrEnum):
    CREATED = "created"
    REPLAYED = "replayed"  # the key was used before with the same body: its batch
    KEY_REUSED = "key_reused"  # the key was used before with another body
    BATCH_EXISTS = "batch_exists"  # the batch id is taken (no key, or a key not yet used)
    JOB_EXISTS = "job_exists"  # a job id is taken by another batch


@dataclass(frozen=True)
class CreateResult:
    outcome: CreateOutcome
    batch_id: str  # the batch created or replayed; for a conflict, the batch the key or id names
    job_ids: list[str] = field(default_factory=list)  # JOB_EXISTS: the ids taken


class BatchRepository:
    """`video_gen_batch` and `video_gen_jobs`: inserts, reads and state transitions."""

    def __init__(self, db: Db):
        self.db = db

    # -- what the web app does (demo, tests) ------------------------------------------------
    def insert_batch(self, batch: ColumnValues, jobs: Iterable[ColumnValues]) -> None:
        """Insert a batch and its jobs in one transaction, as the web app does."""
        with self.db.transaction() as conn:
            conn.execute(sa.insert(video_gen_batch).values(**batch))
            job_rows = [{"batch_id": batch["id"], **job} for job in jobs]
            if job_rows:
                conn.execute(sa.insert(video_gen_jobs), job_rows)
            self._record_created(conn, batch, job_rows)

    # -- reads -----------------------------------------------------------------------------
    def get_batch(self, batch_id: str) -> Batch | None:
        """The batch row with this id, or None."""
        return self.db.fetch_one(sa.select(video_gen_batch).where(video_gen_batch.c.id == batch_id), Batch)

    def get_jobs(self, batch_id: str) -> list[Job]:
        """The batch's job rows in their sort order."""
        query = (
            sa.select(video_gen_jobs)
            .where(video_gen_jobs.c.batch_id == batch_id)
            .order_by(video_gen_jobs.c.sort_order, video_gen_jobs.c.id)
        )
        return self.db.fetch(query, Job)

    def get_job(self, job_id: str) -> Job | None:
        """The job row with this id, or None."""
        return self.db.fetch_one(sa.select(video_gen_jobs).where(video_gen_jobs.c.id == job_id), Job)

    # -- POST /video/batches -------------------------------------------------------------------
    def create_batch(
        self,
        batch: Mapping[str, Any],
        jobs: Iterable[Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
        body_sha256: str | None = None,
    ) -> CreateResult:
        """Insert a pending batch and its jobs (and the idempotency key) in one transaction."""
        batch_id = batch["id"]
        job_rows = [{"batch_id": batch_id, **job} for job in jobs]
        try:
            with self.db.transaction() as conn:
                conn.execute(sa.insert(video_gen_batch).values(**batch))
                if job_rows:
                    conn.execute(sa.insert(video_gen_jobs), job_rows)
                self._record_created(conn, batch, job_rows)
                if idempotency_key is not None:
                    conn.execute(
                        sa.insert(api_idempotency_keys).values(
                            key=idempotency_key,
                            batch_id=batch_id,
                            body_sha256=body_sha256,
                            created_at=batch.get("created_at") or datetime.now(UTC),
                        )
                    )
        except sa.exc.IntegrityError:
            return self._create_conflict(batch_id, [row["id"] for row in job_rows], idempotency_key, body_sha256)
        return CreateResult(CreateOutcome.CREATED, batch_id)

    def _create_conflict(
        self, batch_id: str, job_ids: list[str], idempotency_key: str | None, body_sha256: str | None
    ) -> CreateResult:
        with self.db.engine.connect() as conn:
            if idempotency_key is not None:
                row = conn.execute(
                    sa.select(api_idempotency_keys).where(api_idempotency_keys.c.key == idempotency_key)
                ).first()
                if row is not None:
                    same = row.body_sha256 == body_sha256
                    return CreateResult(CreateOutcome.REPLAYED if same else CreateOutcome.KEY_REUSED, row.batch_id)
            if conn.execute(sa.select(video_gen_batch.c.id).where(video_gen_batch.c.id == batch_id)).first():
                return CreateResult(CreateOutcome.BATCH_EXISTS, batch_id)
            taken = conn.execute(
                sa.select(video_gen_jobs.c.id).where(video_gen_jobs.c.id.in_(job_ids)).order_by(video_gen_jobs.c.id)
            ).scalars().all()
        if taken:
            return CreateResult(CreateOutcome.JOB_EXISTS, batch_id, list(taken))
        raise RuntimeError(f"batch {batch_id!r} was refused by a constraint that is not a known conflict")

    # -- state transitions ------------------------------------------------------------------
    def start_batch(self, batch_id: str) -> None:
        """Mark an open batch processing and stamp when its processing first started."""
        with self.db.transaction() as conn:
            batch = self.db.batch_for_update(conn, batch_id)
            if batch is not None and batch.status == BatchStatus.PENDING:
                self.db.record(conn, batch_id, BatchEventType.PROCESSING, status=BatchStatus.PROCESSING)
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
        with self.db.transaction() as conn:
            job = self.db.job_for_update(conn, job_id) if "status" in values else None
            conn.execute(
                sa.update(video_gen_jobs).where(video_gen_jobs.c.id == job_id).values(**values, updated_at=utcnow())
            )
            if job is not None and job.status != values["status"]:
                status = values["status"]
                self.db.record(conn, job.batch_id, BatchEventType.of_job(status), job_id=job_id, status=status)

    def fail_job(self, job_id: str, code: str, message: str) -> bool:
        """Mark a job failed (unless already terminal) and report `clip.failed`."""
        with self.db.transaction() as conn:
            job = self.db.job_for_update(conn, job_id)
            if job is None or job.terminal:
                return False
            conn.execute(
                sa.update(video_gen_jobs)
                .where(video_gen_jobs.c.id == job_id)
                .values(status=JobStatus.FAILED, error_code=code, error_message=message[:2000], updated_at=utcnow())
            )
            self.db.emit(conn, "clip.failed", job.batch_id, job_id=job_id, error=f"{code}: {message}"[:2000])
            self.db.record(
                conn, job.batch_id, BatchEventType.JOB_FAILED, job_id=job_id,
                status=JobStatus.FAILED, provider=job.provider, errorCode=code, error=message[:2000],
            )  # fmt: skip
        return True

    def complete_job(self, job_id: str, video_url: str, thumbnail_url: str | None) -> bool:
        """Mark a job completed with its normalized clip and report `clip.completed`."""
        with self.db.transaction() as conn:
            job = self.db.job_for_update(conn, job_id)
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
            self.db.emit(
                conn, "clip.completed", job.batch_id, job_id=job_id, videoUrl=video_url, thumbnailUrl=thumbnail_url
            )
            self.db.record(
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
        with self.db.transaction() as conn:
            batch = self.db.batch_for_update(conn, batch_id)
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
            if outputs is not None or status != BatchStatus.COMPLETED:
                # a batch that ends failed or canceled drops the outputs published ahead of its end
                replace_outputs(conn, batch_id, outputs or [])
            # one terminal event per batch: a re-composed completed batch gets no second webhook
            if not batch.terminal:
                event_fields: dict[str, Any] = {"videoUrl": video_url, "thumbnailUrl": thumbnail_url, "error": error}
                if error_code:
                    event_fields["errorCode"] = error_code
                if outputs:
                    event_fields["outputs"] = [webhook_fields(output) for output in outputs]
                self.db.emit(conn, f"batch.{status}", batch_id, **event_fields)
            # a re-compose is an event too (new URLs): streams connected then end on it
            extra = {"outputs": [webhook_fields(output) for output in outputs]} if outputs else {}
            self.db.record(
                conn, batch_id, BatchEventType.of_batch(status), status=status, videoUri=video_url,
                thumbnailUri=thumbnail_url, errorCode=error_code, error=error, **extra,
            )  # fmt: skip
        return True

    def set_narration_key(self, batch_id: str, key: str) -> None:
        """Record where intake stored the batch's checked narration (migration 0013)."""
        with self.db.transaction() as conn:
            conn.execute(sa.update(video_gen_batch).where(video_gen_batch.c.id == batch_id).values(narration_key=key))

    def _record_created(self, conn: sa.Connection, batch: ColumnValues, job_rows: list[dict[str, Any]]) -> None:
        """The `batch.created` event of a batch inserted with its jobs (pending)."""
        fields = {"status": batch.get("status") or BatchStatus.PENDING, "listingId": batch["listing_id"]}
        self.db.record(conn, batch["id"], BatchEventType.CREATED, **fields, jobIds=[job["id"] for job in job_rows])
