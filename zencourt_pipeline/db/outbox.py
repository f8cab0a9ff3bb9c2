"""`OutboxRepository`, over `webhook_outbox`: claim due rows, record outcomes, count.

Rows are written by `Db.emit` in the same transaction as the state change they
report; `zencourt_pipeline.notify.deliverer.OutboxDeliverer` sends them. Status moves
`pending -> delivered` or `pending -> dead` (after the retry horizon), never back, except
through `requeue` (an operator's decision).

Claiming (`due`) is a lease: the claimed rows' `next_attempt_at` is pushed `lease` into the
future in the same statement that selects them, so a second deliverer (another thread,
process or host) does not see them as due until the lease runs out. On PostgreSQL the
selection is `FOR UPDATE SKIP LOCKED`, so concurrent claimers skip each other's rows instead
of waiting or double-claiming; on SQLite the single `UPDATE ... RETURNING` statement runs
under the database write lock, which serializes claimers. A deliverer that dies mid-send
leaves its rows to be retried when the lease expires (delivery is at least once; receivers
dedupe on the body's `id`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from zencourt_pipeline.db.clock import as_utc, utcnow
from zencourt_pipeline.db.core import Db
from zencourt_pipeline.db.records import DeadSummary, OutboxEvent, OutboxStats, OutboxStatus
from zencourt_pipeline.db.schema import webhook_outbox
from zencourt_pipeline.errors import ErrorCode

DEFAULT_LEASE = timedelta(minutes=5)
MAX_ERROR_LENGTH = 2000

_t = webhook_outbox.c


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return utcnow()
    return as_utc(now).astimezone(UTC)


TERMINAL_EVENTS = ("batch.completed", "batch.failed", "batch.canceled")


@dataclass(frozen=True)
class BatchWebhooks:
    """How a batch's webhooks fare: its terminal event's row status (None before it has one) and
    how many of its rows (clip or batch events) are dead."""

    terminal_status: OutboxStatus | None = None
    dead: int = 0

    @property
    def error_code(self) -> ErrorCode | None:
        """`WEBHOOK_DELIVERY_FAILED` while any of the batch's webhooks is dead."""
        return ErrorCode.WEBHOOK_DELIVERY_FAILED if self.dead else None


def _parse(value: Any) -> datetime | None:
    """SQLite hands aggregate datetimes back as text."""
    if value is None:
        return None
    return as_utc(datetime.fromisoformat(str(value)))


class OutboxRepository:
    """`webhook_outbox`: the rows `Db.emit` wrote, claimed, settled, requeued and counted."""

    def __init__(self, db: Db):
        self.db = db

    def rows(self, batch_id: str | None = None) -> list[OutboxEvent]:
        """Every outbox row, oldest first, optionally of one batch only."""
        query = sa.select(webhook_outbox).order_by(webhook_outbox.c.created_at, webhook_outbox.c.id)
        if batch_id is not None:
            query = query.where(webhook_outbox.c.batch_id == batch_id)
        return self.db.fetch(query, OutboxEvent)

    def due(
        self, limit: int = 50, now: datetime | None = None, lease: timedelta = DEFAULT_LEASE,
        *, callbacks_only: bool = False,
    ) -> list[OutboxEvent]:
        """Claim up to `limit` pending rows whose `next_attempt_at <= now`, oldest first
        (`callbacks_only`: only the rows for a batch's own callback URL, when the global URL is unset).

        The returned rows are leased to the caller until `now + lease`: that is their
        `next_attempt_at` (in the database and in the returned records, which also carry it as
        `lease_until`); `attempts`, `created_at` and `body` are as stored.
        """
        if limit <= 0:
            return []
        now = _utc(now)
        lease_until = now + lease
        candidates = (
            sa.select(_t.id)
            .where(_t.status == OutboxStatus.PENDING, _t.next_attempt_at <= now, *([_t.target_url.is_not(None)] if callbacks_only else []))
            .order_by(_t.next_attempt_at, _t.created_at, _t.id)
            .limit(limit)
        )
        # The due condition is checked again on the row being updated: on PostgreSQL a row that a
        # concurrent claimer updated after this statement's snapshot is re-evaluated against it.
        still_due = sa.and_(_t.status == OutboxStatus.PENDING, _t.next_attempt_at <= now)
        if self.db.postgresql:
            # A CTE with FOR UPDATE is materialized once (an IN-subquery may be re-scanned by the
            # planner and lock more than `limit` rows); SKIP LOCKED passes over rows that another
            # claimer holds instead of waiting for them.
            claimable = candidates.with_for_update(skip_locked=True).cte("claimable")
            claim = sa.update(webhook_outbox).where(_t.id == claimable.c.id, still_due)
        else:
            # SQLite: the statement runs under the database write lock, which serializes claimers.
            claim = sa.update(webhook_outbox).where(_t.id.in_(candidates.scalar_subquery()), still_due)
        claim = claim.values(next_attempt_at=lease_until, updated_at=now).returning(*webhook_outbox.c)
        with self.db.transaction() as conn:
            rows = [OutboxEvent.from_row(row, lease_until=lease_until) for row in conn.execute(claim)]
        rows.sort(key=lambda row: (row.created_at, row.id))
        return rows

    def mark_delivered(self, id: str, status_code: int | None, now: datetime | None = None) -> bool:
        """Record a 2xx: `delivered`, attempts + 1. False when the row was no longer pending."""
        now = _utc(now)
        with self.db.transaction() as conn:
            result = conn.execute(
                sa.update(webhook_outbox)
                .where(_t.id == id, _t.status == OutboxStatus.PENDING)
                .values(
                    status=OutboxStatus.DELIVERED,
                    attempts=_t.attempts + 1,
                    last_status_code=status_code,
                    last_error=None,
                    delivered_at=now,
                    updated_at=now,
                )
            )
        return result.rowcount == 1

    def mark_failed(
        self,
        id: str,
        error: str,
        status_code: int | None,
        next_attempt_at: datetime,
        *,
        dead: bool = False,
        now: datetime | None = None,
    ) -> bool:
        """Record a failed attempt: attempts + 1, the error and status code, the next try.

        `dead=True` gives up (`status = 'dead'`); the deliverer decides that from its retry
        horizon. False when the row was no longer pending (e.g. delivered by another deliverer
        after this one's lease ran out): a late failure never undoes a delivery.
        """
        now = _utc(now)
        with self.db.transaction() as conn:
            result = conn.execute(
                sa.update(webhook_outbox)
                .where(_t.id == id, _t.status == OutboxStatus.PENDING)
                .values(
                    status=OutboxStatus.DEAD if dead else OutboxStatus.PENDING,
                    attempts=_t.attempts + 1,
                    last_status_code=status_code,
                    last_error=(error or "")[:MAX_ERROR_LENGTH],
                    next_attempt_at=_utc(next_attempt_at),
                    updated_at=now,
                )
            )
        return result.rowcount == 1

    def requeue(self, id: str, now: datetime | None = None) -> bool:
        """Put one `dead` row back in the queue, due now (an operator's retry)."""
        return self.requeue_dead(ids=[id], now=now) == 1

    def requeue_dead(
        self,
        *,
        ids: list[str] | None = None,
        event: str | None = None,
        now: datetime | None = None,
    ) -> int:
        """Put `dead` rows back in the queue: `pending`, attempts reset to 0, due now. Only the
        rows in `ids` when given, only those of `event` when given (both: both), else every dead
        row. Returns how many rows were requeued. The last error stays until the next attempt."""
        if ids is not None and not ids:
            return 0
        now = _utc(now)
        condition = [_t.status == OutboxStatus.DEAD]
        if ids is not None:
            condition.append(_t.id.in_(ids))
        if event is not None:
            condition.append(_t.event == event)
        with self.db.transaction() as conn:
            result = conn.execute(
                sa.update(webhook_outbox)
                .where(*condition)
                .values(status=OutboxStatus.PENDING, attempts=0, next_attempt_at=now, updated_at=now)
            )
        return result.rowcount

    def dead_rows(self, *, event: str | None = None, limit: int = 100) -> list[OutboxEvent]:
        """Dead rows, oldest first (without their bodies: `body` is None)."""
        columns = [c for c in webhook_outbox.c if c.name != "body"]
        query = sa.select(*columns).where(_t.status == OutboxStatus.DEAD)
        if event is not None:
            query = query.where(_t.event == event)
        query = query.order_by(_t.created_at, _t.id).limit(limit)
        with self.db.engine.connect() as conn:
            return [OutboxEvent.from_row(row) for row in conn.execute(query)]

    def dead_summary(self) -> DeadSummary:
        """How many rows are dead, per event, and the oldest one's creation time."""
        with self.db.engine.connect() as conn:
            per_event = {
                row.event: row.n
                for row in conn.execute(
                    sa.select(_t.event, sa.func.count().label("n"))
                    .where(_t.status == OutboxStatus.DEAD)
                    .group_by(_t.event)
                )
            }
            oldest = conn.execute(sa.select(sa.func.min(_t.created_at)).where(_t.status == OutboxStatus.DEAD)).scalar()
        oldest = as_utc(oldest) if isinstance(oldest, datetime) else _parse(oldest)
        return DeadSummary(
            dead=sum(per_event.values()),
            by_event=dict(sorted(per_event.items())),
            oldest_dead_created_at=oldest.isoformat() if oldest else None,
        )

    def batch_webhooks(self, batch_id: str) -> BatchWebhooks:
        """The delivery state of one batch's webhooks (the status API's `webhookStatus`/`webhookErrorCode`):
        the terminal event's row for the global URL (a callback URL's row is the batch owner's), the dead
        rows of either."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                sa.select(_t.event, _t.status, _t.target_url).where(_t.batch_id == batch_id).order_by(_t.created_at, _t.id)
            ).all()
        terminal = [OutboxStatus(row.status) for row in rows if row.event in TERMINAL_EVENTS and row.target_url is None]
        dead = sum(1 for row in rows if row.status == OutboxStatus.DEAD)
        return BatchWebhooks(terminal_status=terminal[0] if terminal else None, dead=dead)

    def get(self, id: str) -> OutboxEvent | None:
        """The outbox row with this id, or None."""
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(webhook_outbox).where(_t.id == id)).first()
        return OutboxEvent.from_row(row) if row else None

    def stats(self, now: datetime | None = None) -> OutboxStats:
        """Counts per status, how many pending rows are due, and the oldest pending row's age."""
        now = _utc(now)
        with self.db.engine.connect() as conn:
            counts = {
                row.status: row.n
                for row in conn.execute(sa.select(_t.status, sa.func.count().label("n")).group_by(_t.status))
            }
            pending = conn.execute(
                sa.select(
                    sa.func.count().label("due"),
                ).where(_t.status == OutboxStatus.PENDING, _t.next_attempt_at <= now)
            ).one()
            oldest = conn.execute(sa.select(sa.func.min(_t.created_at)).where(_t.status == OutboxStatus.PENDING)).scalar()
            max_attempts = conn.execute(
                sa.select(sa.func.max(_t.attempts)).where(_t.status == OutboxStatus.PENDING)
            ).scalar()
        oldest = as_utc(oldest) if isinstance(oldest, datetime) else _parse(oldest)
        return OutboxStats(
            pending=counts.get(OutboxStatus.PENDING, 0),
            delivered=counts.get(OutboxStatus.DELIVERED, 0),
            dead=counts.get(OutboxStatus.DEAD, 0),
            due=pending.due,
            oldest_pending_at=oldest.isoformat() if oldest else None,
            oldest_pending_age_seconds=round((now - oldest).total_seconds(), 3) if oldest else None,
            max_pending_attempts=max_attempts or 0,
        )
