"""Provider completions: what came back for a paid task (a webhook, a poll, a local render).

`CompletionRepository`. A completion and the create's answer (the task id
persisted on its ledger row, `task_submitted`) can arrive at the same moment: a fast webhook
races the answer. Both take a transaction-scoped lock on the task key (PostgreSQL advisory
lock; SQLite has one writer), so the second sees the first and links the two. Rows recorded
before their task was known and never linked (a crash in between, rows from before the lock)
are linked by `link_completions`, which the reconciler runs every tick.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from zencourt_pipeline.db.clock import utcnow
from zencourt_pipeline.db.core import Db
from zencourt_pipeline.db.records import CompletionRecord, GenerationTaskStatus
from zencourt_pipeline.db.schema import generation_completions, generation_tasks

# a task whose provider answer is still to come (the intent) or that the provider accepted
IN_FLIGHT_TASK_STATUSES = (GenerationTaskStatus.SUBMITTING, GenerationTaskStatus.SUBMITTED)


def lock_task_key(conn: sa.Connection, provider: str, task_id: str) -> None:
    """Serialize the transactions that record a completion of, or persist, this provider task id
    (until the transaction ends); a no-op outside PostgreSQL."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(f"{provider}:{task_id}", 0))))


class CompletionRepository:
    """Recording, reading and linking provider completions."""

    def __init__(self, db: Db):
        self.db = db

    def record_completion(
        self,
        *,
        provider: str,
        task_id: str,
        status: GenerationTaskStatus | str,
        source: str,
        output_url: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        payload: Any = None,
    ) -> bool:
        """Durably record a provider completion. Returns False for a duplicate (nothing changes)."""
        with self.db.transaction() as conn:
            lock_task_key(conn, provider, task_id)  # against the create's answer being persisted right now
            task = conn.execute(
                sa.select(generation_tasks).where(
                    generation_tasks.c.provider == provider, generation_tasks.c.task_id == task_id
                )
            ).first()
            values = {
                "provider": provider,
                "task_id": task_id,
                "job_id": task.job_id if task else None,
                "batch_id": task.batch_id if task else None,
                "status": status,
                "output_url": output_url,
                "error_code": error_code,
                "error_message": (error_message or None) and error_message[:2000],
                "payload": payload if isinstance(payload, str) or payload is None else json.dumps(payload),
                "source": source,
                "received_at": utcnow(),
            }
            inserted = self.db.insert_ignoring_duplicate(conn, generation_completions, values, ["provider", "task_id"])
            if inserted and task is not None:
                conn.execute(
                    sa.update(generation_tasks)
                    .where(generation_tasks.c.id == task.id, generation_tasks.c.status.in_(IN_FLIGHT_TASK_STATUSES))
                    .values(
                        status=status,
                        error_code=error_code,
                        error_message=values["error_message"],
                        finished_at=utcnow(),
                        updated_at=utcnow(),
                    )
                )
        return inserted

    def completions_for_batch(self, batch_id: str) -> list[CompletionRecord]:
        """Every recorded provider completion of a batch, in the order they arrived."""
        return self.db.fetch(
            sa.select(generation_completions)
            .where(generation_completions.c.batch_id == batch_id)
            .order_by(generation_completions.c.id),
            CompletionRecord,
        )

    def link_completions(self, limit: int = 100) -> int:
        """Link completions recorded before their task's id was persisted and never linked: each
        gets its job and batch, and its task (still in flight) the completion's final status, as
        `task_submitted` does when it finds one. Returns how many were linked."""
        c, t = generation_completions.c, generation_tasks.c
        query = (
            sa.select(c.id, c.status, c.error_code, c.error_message, c.received_at,
                      t.id.label("task_row"), t.job_id, t.batch_id)
            .join(generation_tasks, sa.and_(t.provider == c.provider, t.task_id == c.task_id))
            .where(c.job_id.is_(None))
            .order_by(c.id)
            .limit(limit)
        )  # fmt: skip
        with self.db.transaction() as conn:
            rows = conn.execute(query).all()
            for row in rows:
                conn.execute(sa.update(generation_completions).where(c.id == row.id)
                             .values(job_id=row.job_id, batch_id=row.batch_id))
                conn.execute(
                    sa.update(generation_tasks)
                    .where(t.id == row.task_row, t.status.in_(IN_FLIGHT_TASK_STATUSES))
                    .values(status=row.status, error_code=row.error_code, error_message=row.error_message,
                            finished_at=row.received_at, updated_at=utcnow())
                )  # fmt: skip
        return len(rows)
