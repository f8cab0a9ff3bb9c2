"""Monthly clip quotas: per listing (ZENCOURT_MONTHLY_CLIP_QUOTA) and, when the batch carries a
`workspace_id`, per workspace (ZENCOURT_WORKSPACE_MONTHLY_CLIP_QUOTA). 0 means unlimited.

What counts: every generation task a provider accepted (it has a task id) whose submission falls
in the current calendar month (UTC), over all batches of the listing / workspace. Fallbacks and
operator regenerations count: each was a paid clip. Submissions a provider refused do not.

A batch that would go over is rejected at intake (`listing_photos`) with QUOTA_EXCEEDED, before
any download or provider call; an operator's regeneration over quota is refused the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from zencourt_pipeline.db.clock import utcnow
from zencourt_pipeline.db.database import AppDatabase, Row
from zencourt_pipeline.db.schema import generation_tasks, video_gen_batch
from zencourt_pipeline.pipeline.intake import BatchRejected

QUOTA_EXCEEDED = "QUOTA_EXCEEDED"


def month_start(now: datetime | None = None) -> datetime:
    now = (now or utcnow()).astimezone(UTC)
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def next_month_start(now: datetime | None = None) -> datetime:
    start = month_start(now)
    return datetime(start.year + (start.month == 12), start.month % 12 + 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class QuotaUsage:
    scope: str  # listing | workspace
    scope_id: str
    quota: int
    used: int  # clips generated this month
    requested: int  # clips this batch (or regeneration) needs
    month: str  # YYYY-MM (UTC)

    @property
    def exceeded(self) -> bool:
        return self.used + self.requested > self.quota

    def message(self) -> str:
        return (
            f"{self.scope} {self.scope_id} has used {self.used} of its {self.quota} clips for {self.month} (UTC); "
            f"this batch needs {self.requested} more"
        )


def clips_used(db: AppDatabase, *, since: datetime, listing_id: str | None = None, workspace_id: str | None = None) -> int:
    """Accepted generation tasks submitted since `since` for batches of this listing / workspace."""
    task, batch = generation_tasks.c, video_gen_batch.c
    query = (
        sa.select(sa.func.count())
        .select_from(generation_tasks.join(video_gen_batch, batch.id == task.batch_id))
        .where(task.task_id.is_not(None), task.submitted_at >= since)
    )
    if listing_id is not None:
        query = query.where(batch.listing_id == listing_id)
    if workspace_id is not None:
        query = query.where(batch.workspace_id == workspace_id)
    with db.engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def quota_usage(
    db: AppDatabase, batch: Row, requested: int, *, listing_quota: int, workspace_quota: int, now: datetime | None = None
) -> list[QuotaUsage]:
    """The usage of every quota that applies to this batch (none when both are unlimited)."""
    since = month_start(now)
    month = since.strftime("%Y-%m")
    usages = []
    if listing_quota > 0:
        used = clips_used(db, since=since, listing_id=batch["listing_id"])
        usages.append(QuotaUsage("listing", batch["listing_id"], listing_quota, used, requested, month))
    workspace_id = batch.get("workspace_id")
    if workspace_quota > 0 and workspace_id:
        used = clips_used(db, since=since, workspace_id=workspace_id)
        usages.append(QuotaUsage("workspace", workspace_id, workspace_quota, used, requested, month))
    return usages


def enforce_quota(
    db: AppDatabase, batch: Row, requested: int, *, listing_quota: int, workspace_quota: int, now: datetime | None = None
) -> list[QuotaUsage]:
    """Raise BatchRejected(QUOTA_EXCEEDED) when `requested` more clips would exceed a quota."""
    usages = quota_usage(db, batch, requested, listing_quota=listing_quota, workspace_quota=workspace_quota, now=now)
    over = [usage for usage in usages if usage.exceeded]
    if over:
        renew = next_month_start(now).date().isoformat()
        raise BatchRejected(
            QUOTA_EXCEEDED,
            "monthly clip quota exceeded: " + "; ".join(usage.message() for usage in over)
            + f". No clip was generated; the quota renews on {renew}.",
        )
    return usages
