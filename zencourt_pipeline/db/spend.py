"""The money ledger: every paid generation request, in which state it is, and what it cost.

`SpendRepository`, over `generation_tasks`. Each row is in exactly one
ledger state (`ledger_state`, the same CASE on SQLite and PostgreSQL):

- `possibly_orphaned`: an ambiguous create (the request was sent, the answer was lost), whatever
  its status: the provider may be running, and charging for, a task we hold no id of;
- `unpaid`: no task id and not possibly orphaned: the provider never accepted the request (a
  refusal, an intent abandoned before the call, one still being sent): nothing was charged;
- otherwise (the provider accepted it, it is paid) by status: `created` (submitting/submitted:
  in flight), `completed` (succeeded), `failed` (failed, rejected, abandoned), `canceled`,
  `superseded` (an operator regenerated the job; paid and finished), `other` (any other status).

Spend is the sum of `cost_usd` over the paid states (everything but `unpaid`), split by
`cost_source`: `provider` (the provider's own figure) and `rate` (the published rate table);
a paid task without a figure is counted as `unpriced`. Filters: submission time in
[since, until) (`submitted_at`, else `created_at`), a batch, a listing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from zencourt_pipeline.db.core import Db
from zencourt_pipeline.db.records import GenerationTaskStatus
from zencourt_pipeline.db.schema import generation_tasks, video_gen_batch

PAID_STATES = ("created", "completed", "failed", "canceled", "superseded", "possibly_orphaned", "other")
LEDGER_STATES = (*PAID_STATES, "unpaid")
_STATUS_STATES = {
    GenerationTaskStatus.SUBMITTING: "created",
    GenerationTaskStatus.SUBMITTED: "created",
    GenerationTaskStatus.SUCCEEDED: "completed",
    GenerationTaskStatus.FAILED: "failed",
    GenerationTaskStatus.REJECTED: "failed",
    GenerationTaskStatus.ABANDONED: "failed",
    GenerationTaskStatus.CANCELED: "canceled",
    GenerationTaskStatus.SUPERSEDED: "superseded",
}
COST_SOURCES = ("provider", "rate")


def ledger_state() -> sa.ColumnElement[str]:
    """The ledger state of a `generation_tasks` row (see the module docstring)."""
    task = generation_tasks.c
    by_status = [(task.status == status, state) for status, state in _STATUS_STATES.items()]
    return sa.case(
        (task.possibly_orphaned.is_(True), "possibly_orphaned"),
        (task.task_id.is_(None), "unpaid"),
        *by_status,
        else_="other",
    )


def _usd(value: float) -> float:
    return round(value, 6) + 0.0  # + 0.0: never -0.0


@dataclass(frozen=True)
class ProviderLedger:
    """One provider's paid requests by ledger state, and their cost."""

    provider: str
    states: dict[str, int] = field(default_factory=dict)  # every state of LEDGER_STATES, 0 if none
    usd_provider: float = 0.0  # cost_source 'provider'
    usd_rate: float = 0.0  # cost_source 'rate'
    unpriced: int = 0  # paid tasks without a cost figure
    orphan_usd: float = 0.0  # cost of the possibly orphaned ones (included in usd)

    @property
    def tasks(self) -> int:
        """Paid (or possibly paid) requests: every state but `unpaid`."""
        return sum(self.states.get(state, 0) for state in PAID_STATES)

    @property
    def usd(self) -> float:
        """Total USD of the provider's tasks, provider figures and rate-table estimates together."""
        return _usd(self.usd_provider + self.usd_rate)

    @property
    def possibly_orphaned(self) -> int:
        """How many of the provider's tasks are possibly orphaned (ambiguous creates)."""
        return self.states.get("possibly_orphaned", 0)

    @property
    def unpaid(self) -> int:
        """How many of the provider's tasks were never paid (refused or abandoned before an answer)."""
        return self.states.get("unpaid", 0)


@dataclass(frozen=True)
class SpendLedger:
    """The ledger per provider (sorted by name) and its totals."""

    providers: tuple[ProviderLedger, ...] = ()

    def by_provider(self) -> dict[str, ProviderLedger]:
        """The per-provider ledgers keyed by provider name."""
        return {ledger.provider: ledger for ledger in self.providers}

    @property
    def states(self) -> dict[str, int]:
        """Task count per ledger state, summed over providers."""
        return {state: sum(p.states.get(state, 0) for p in self.providers) for state in LEDGER_STATES}

    @property
    def tasks(self) -> int:
        """Task count over every provider."""
        return sum(p.tasks for p in self.providers)

    @property
    def usd(self) -> float:
        """Total USD over every provider, provider figures and estimates together."""
        return _usd(sum(p.usd_provider + p.usd_rate for p in self.providers))

    @property
    def usd_provider(self) -> float:
        """USD reported by the providers themselves, over every provider."""
        return _usd(sum(p.usd_provider for p in self.providers))

    @property
    def usd_rate(self) -> float:
        """USD estimated from the rate table, over every provider."""
        return _usd(sum(p.usd_rate for p in self.providers))

    @property
    def unpriced(self) -> int:
        """Paid tasks without any cost figure, over every provider."""
        return sum(p.unpriced for p in self.providers)

    @property
    def possibly_orphaned(self) -> int:
        """Possibly orphaned tasks over every provider."""
        return sum(p.possibly_orphaned for p in self.providers)

    @property
    def orphan_usd(self) -> float:
        """USD at risk in possibly orphaned tasks, over every provider."""
        return _usd(sum(p.orphan_usd for p in self.providers))

    @property
    def unpaid(self) -> int:
        """Unpaid tasks over every provider."""
        return sum(p.unpaid for p in self.providers)


@dataclass(frozen=True)
class BatchSpend:
    """One batch's paid requests and their cost."""

    batch_id: str
    listing_id: str | None  # None: the batch row is gone
    tasks: int
    usd: float
    possibly_orphaned: int
    unpriced: int


class SpendRepository:
    """The spend ledger's reads."""

    def __init__(self, db: Db):
        self.db = db

    def spend_ledger(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        batch_id: str | None = None,
        listing_id: str | None = None,
    ) -> SpendLedger:
        """Every generation request by provider and ledger state, with its spend."""
        task = generation_tasks.c
        state = ledger_state().label("state")
        query = (
            sa.select(
                task.provider,
                state,
                task.cost_source,
                sa.func.count().label("n"),
                sa.func.count(task.cost_usd).label("priced"),
                sa.func.coalesce(sa.func.sum(task.cost_usd), 0.0).label("usd"),
            )
            .select_from(_source(listing_id))
            .where(*_filters(since, until, batch_id, listing_id))
            .group_by(task.provider, state, task.cost_source)
        )
        with self.db.engine.connect() as conn:
            rows = conn.execute(query).all()
        acc: dict[str, dict] = {}
        for row in rows:
            entry = acc.setdefault(
                row.provider,
                {"states": dict.fromkeys(LEDGER_STATES, 0), "provider": 0.0, "rate": 0.0, "unpriced": 0, "orphan": 0.0},
            )
            entry["states"][row.state] += int(row.n)
            if row.state == "unpaid":
                continue  # nothing was charged
            usd = float(row.usd or 0.0) if int(row.priced) else 0.0
            # a figure without a source is the rate table's (older rows)
            entry["provider" if row.cost_source == "provider" else "rate"] += usd
            entry["unpriced"] += int(row.n) - int(row.priced)
            if row.state == "possibly_orphaned":
                entry["orphan"] += usd
        return SpendLedger(
            tuple(
                ProviderLedger(
                    provider=provider,
                    states=entry["states"],
                    usd_provider=_usd(entry["provider"]),
                    usd_rate=_usd(entry["rate"]),
                    unpriced=entry["unpriced"],
                    orphan_usd=_usd(entry["orphan"]),
                )
                for provider, entry in sorted(acc.items())
            )
        )

    def spend_by_batch(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        batch_id: str | None = None,
        listing_id: str | None = None,
        limit: int | None = None,
    ) -> list[BatchSpend]:
        """Paid requests and spend per batch, the most expensive first (then by batch id)."""
        task, batch = generation_tasks.c, video_gen_batch.c
        state = ledger_state()
        paid = state != "unpaid"
        one_if = lambda condition: sa.func.sum(sa.case((condition, 1), else_=0))  # noqa: E731
        usd = sa.func.coalesce(sa.func.sum(sa.case((paid, task.cost_usd), else_=None)), 0.0)
        query = (
            sa.select(
                task.batch_id,
                sa.func.max(batch.listing_id).label("listing_id"),
                one_if(paid).label("tasks"),
                usd.label("usd"),
                one_if(state == "possibly_orphaned").label("orphaned"),
                one_if(sa.and_(paid, task.cost_usd.is_(None))).label("unpriced"),
            )
            .select_from(_source(listing_id, always_join=True))
            .where(*_filters(since, until, batch_id, listing_id))
            .group_by(task.batch_id)
            .having(one_if(paid) > 0)
            .order_by(usd.desc(), task.batch_id)
        )
        if limit is not None:
            query = query.limit(limit)
        with self.db.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            BatchSpend(
                batch_id=row.batch_id,
                listing_id=row.listing_id,
                tasks=int(row.tasks),
                usd=_usd(float(row.usd or 0.0)),
                possibly_orphaned=int(row.orphaned),
                unpriced=int(row.unpriced),
            )
            for row in rows
        ]

    def count_spending_batches(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        batch_id: str | None = None,
        listing_id: str | None = None,
    ) -> int:
        """Batches with at least one paid request (what `spend_by_batch` lists without a limit)."""
        task = generation_tasks.c
        query = (
            sa.select(sa.func.count(sa.distinct(task.batch_id)))
            .select_from(_source(listing_id))
            .where(*_filters(since, until, batch_id, listing_id), ledger_state() != "unpaid")
        )
        with self.db.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)


def _source(listing_id: str | None, *, always_join: bool = False) -> sa.FromClause:
    if listing_id is None and not always_join:
        return generation_tasks
    # outer: a task whose batch row is gone still counts (unless a listing is asked for)
    return generation_tasks.outerjoin(video_gen_batch, video_gen_batch.c.id == generation_tasks.c.batch_id)


def _filters(
    since: datetime | None, until: datetime | None, batch_id: str | None, listing_id: str | None
) -> list[sa.ColumnElement[bool]]:
    task = generation_tasks.c
    when = sa.func.coalesce(task.submitted_at, task.created_at)
    conditions = []
    if since is not None:
        conditions.append(when >= _utc(since))
    if until is not None:
        conditions.append(when < _utc(until))
    if batch_id is not None:
        conditions.append(task.batch_id == batch_id)
    if listing_id is not None:
        conditions.append(video_gen_batch.c.listing_id == listing_id)
    return conditions


def _utc(value: datetime) -> datetime:
    """Stored times are UTC (SQLite keeps them naive): compare in UTC; a naive bound is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
