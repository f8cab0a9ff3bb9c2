"""Monthly clip usage per quota scope (listing, workspace): reserved under a row lock.

`QuotaRepository`. `clip_quota_usage` holds one row per (scope,
scope_id, month); `reserve_clips` locks the rows of every scope it is asked about (in key
order, so two reservations never deadlock), checks `used + n <= quota` for each and increments
all of them or none, in one transaction. On PostgreSQL the lock is `SELECT ... FOR UPDATE`; on
SQLite the transaction starts with `BEGIN IMMEDIATE`, which takes the database write lock
before the first read, so reservations are serialized.

A month row is seeded, the first time it is created, with the accepted generation tasks of that
month (what counted before this table existed), so usage from before the change still counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import NamedTuple

import sqlalchemy as sa

from zencourt_pipeline.db.clock import utcnow
from zencourt_pipeline.db.core import Db
from zencourt_pipeline.db.schema import clip_quota_usage, generation_tasks, video_gen_batch

SCOPE_COLUMNS = {"listing": "listing_id", "workspace": "workspace_id"}


class ScopeUsage(NamedTuple):
    scope: str  # listing | workspace
    scope_id: str
    quota: int  # 0 = unlimited
    used: int  # clips of the month before this reservation


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[start, end) of a 'YYYY-MM' month, UTC."""
    year, mon = (int(part) for part in month.split("-"))
    return datetime(year, mon, 1, tzinfo=UTC), datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)


class QuotaRepository:
    """Clip usage per scope and month: read, reserved, released."""

    def __init__(self, db: Db):
        self.db = db

    def clips_used(
        self,
        *,
        since: datetime,
        until: datetime | None = None,
        listing_id: str | None = None,
        workspace_id: str | None = None,
    ) -> int:
        """Accepted generation tasks submitted in [since, until) for batches of this listing / workspace."""
        with self.db.engine.connect() as conn:
            return self._count_accepted(conn, since, until, listing_id=listing_id, workspace_id=workspace_id)

    def clip_usage(self, scopes: list[tuple[str, str]], month: str) -> dict[tuple[str, str], int]:
        """Clips used this month per scope, without reserving (a missing row reads as its seed)."""
        usage = {}
        with self.db.engine.connect() as conn:
            for scope, scope_id in dict.fromkeys(scopes):
                used = conn.execute(sa.select(clip_quota_usage.c.used).where(*_key(scope, scope_id, month))).scalar()
                usage[(scope, scope_id)] = used if used is not None else self._seed(conn, scope, scope_id, month)
        return usage

    def reserve_clips(self, scopes: list[tuple[str, str, int]], month: str, n: int = 1) -> list[ScopeUsage]:
        """Reserve `n` clips in every scope (scope, scope_id, quota), all or none, atomically.

        Returns each scope's usage before the reservation, in key order. The reservation was
        made unless some scope with a quota (> 0) has `used + n > quota`; then nothing changed.
        A quota of 0 is unlimited: the clips are still counted.
        """
        unique = {(scope, scope_id): quota for scope, scope_id, quota in scopes}
        usages = []
        with self._locked() as conn:
            for (scope, scope_id), quota in sorted(unique.items()):
                usages.append(ScopeUsage(scope, scope_id, quota, self._lock_row(conn, scope, scope_id, month)))
            if any(u.quota > 0 and u.used + n > u.quota for u in usages):
                return usages
            for usage in usages:
                conn.execute(
                    sa.update(clip_quota_usage)
                    .where(*_key(usage.scope, usage.scope_id, month))
                    .values(used=clip_quota_usage.c.used + n, updated_at=utcnow())
                )
        return usages

    def release_clips(self, scopes: list[tuple[str, str]], month: str, n: int = 1) -> None:
        """Give back `n` reserved clips (a submission that paid for nothing); never below 0."""
        used = clip_quota_usage.c.used
        with self._locked() as conn:
            for scope, scope_id in sorted(dict.fromkeys(scopes)):
                conn.execute(
                    sa.update(clip_quota_usage)
                    .where(*_key(scope, scope_id, month))
                    .values(used=sa.case((used >= n, used - n), else_=0), updated_at=utcnow())
                )

    # -- helpers -------------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[sa.Connection]:
        with self.db.transaction() as conn:
            if self.db.engine.dialect.name == "sqlite":
                # the write lock before the first read: a plain (deferred) transaction would read
                # without it, and two reservations could both see the same `used`
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn

    def _lock_row(self, conn: sa.Connection, scope: str, scope_id: str, month: str) -> int:
        """The scope's month row, created (seeded) if missing, locked until the transaction ends."""
        query = sa.select(clip_quota_usage.c.used).where(*_key(scope, scope_id, month)).with_for_update()
        used = conn.execute(query).scalar()
        if used is None:
            seed = self._seed(conn, scope, scope_id, month)
            values = {"scope": scope, "scope_id": scope_id, "month": month, "used": seed, "updated_at": utcnow()}
            if self.db.postgresql:
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            # a concurrent first reservation may create it first: then ours waits for it and does nothing
            conn.execute(insert(clip_quota_usage).values(**values).on_conflict_do_nothing())
            used = conn.execute(query).scalar()
        return int(used)

    def _seed(self, conn: sa.Connection, scope: str, scope_id: str, month: str) -> int:
        since, until = month_bounds(month)
        return self._count_accepted(conn, since, until, **{SCOPE_COLUMNS[scope]: scope_id})

    @staticmethod
    def _count_accepted(
        conn: sa.Connection,
        since: datetime,
        until: datetime | None,
        *,
        listing_id: str | None = None,
        workspace_id: str | None = None,
    ) -> int:
        task, batch = generation_tasks.c, video_gen_batch.c
        query = (
            sa.select(sa.func.count())
            .select_from(generation_tasks.join(video_gen_batch, batch.id == task.batch_id))
            .where(task.task_id.is_not(None), task.submitted_at >= since)
        )
        if until is not None:
            query = query.where(task.submitted_at < until)
        if listing_id is not None:
            query = query.where(batch.listing_id == listing_id)
        if workspace_id is not None:
            query = query.where(batch.workspace_id == workspace_id)
        return int(conn.execute(query).scalar() or 0)


def _key(scope: str, scope_id: str, month: str) -> list[sa.ColumnElement[bool]]:
    row = clip_quota_usage.c
    return [row.scope == scope, row.scope_id == scope_id, row.month == month]
