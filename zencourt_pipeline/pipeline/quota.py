"""Monthly clip quotas: per listing (ZENCOURT_MONTHLY_CLIP_QUOTA) and, when the batch carries a
`workspace_id`, per workspace (ZENCOURT_WORKSPACE_MONTHLY_CLIP_QUOTA). 0 means unlimited.

What counts: every paid submission, i.e. every provider call for a clip, in the calendar month
(UTC) of the call, over all batches of the listing / workspace: a job's first provider, each
fallback and each operator regeneration is one clip. A submission the provider refused gives its
clip back.

The rule is a reservation, not a count-then-act: before every provider submission
`reserve_submission` takes 1 clip from every quota that applies, atomically under a row lock of
`clip_quota_usage` (db/quota.py), all or none. Over quota, nothing is reserved and the job fails
with QUOTA_EXCEEDED before the provider is called, so concurrent intakes, fallbacks and
regenerations of one listing or workspace can never together go past the quota.

Intake (`listing_photos`) and an operator's regeneration also make an early whole-batch check
(`enforce_quota`, no reservation): a batch that cannot fit at all is rejected with
QUOTA_EXCEEDED before any download or provider call. That check alone is not a guarantee (two
batches may both fit on paper); the per-submission reservation is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from zencourt_pipeline.db.clock import utcnow
from zencourt_pipeline.db.quota import QuotaRepository
from zencourt_pipeline.db.records import Batch
from zencourt_pipeline.domain import BatchRejected
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.providers.base import GenerationError


def month_start(now: datetime | None = None) -> datetime:
    """Midnight UTC of the first day of the current (or `now`'s) month."""
    now = (now or utcnow()).astimezone(UTC)
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def next_month_start(now: datetime | None = None) -> datetime:
    """Midnight UTC of the first day of the following month, when quotas renew."""
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
        """True when the clips already used plus the ones requested go over the quota."""
        return self.used + self.requested > self.quota

    def message(self) -> str:
        """The QUOTA_EXCEEDED message: usage, quota, month and how many clips the batch needs."""
        return (
            f"{self.scope} {self.scope_id} has used {self.used} of its {self.quota} clips for {self.month} (UTC); "
            f"this batch needs {self.requested} more"
        )


class QuotaExceeded(GenerationError):
    """A submission over quota: the job fails with QUOTA_EXCEEDED, no provider is called."""

    def __init__(self, message: str):
        super().__init__(ErrorCode.QUOTA_EXCEEDED, message, fallback=False)


@dataclass(frozen=True)
class QuotaLimits:
    """The quota settings (0 = unlimited) a submission path reserves against."""

    listing_quota: int = 0
    workspace_quota: int = 0

    def for_batch(self, batch: Batch) -> BatchQuota:
        """These limits bound to one batch's listing and workspace."""
        return BatchQuota(batch, self)


@dataclass(frozen=True)
class Reservation:
    scopes: list[tuple[str, str]]
    month: str


@dataclass(frozen=True)
class BatchQuota:
    """What `submit_with_fallback` needs: the batch its submissions are counted for, and the limits."""

    batch: Batch = field(hash=False, compare=False)
    limits: QuotaLimits

    def reserve(self, quotas: QuotaRepository) -> Reservation:
        """Reserve one clip against the batch's listing and workspace quotas (raises QuotaExceeded)."""
        return reserve_submission(
            quotas, self.batch, listing_quota=self.limits.listing_quota, workspace_quota=self.limits.workspace_quota
        )


def _scopes(batch: Batch, listing_quota: int, workspace_quota: int) -> list[tuple[str, str, int]]:
    scopes = [("listing", batch.listing_id, listing_quota)]
    if batch.workspace_id:
        scopes.append(("workspace", batch.workspace_id, workspace_quota))
    return scopes


def _refusal(over: list[QuotaUsage], now: datetime | None) -> str:
    renew = next_month_start(now).date().isoformat()
    return (
        "monthly clip quota exceeded: " + "; ".join(usage.message() for usage in over)
        + f". No clip was generated; the quota renews on {renew}."
    )


def clips_used(quotas: QuotaRepository, *, since: datetime, listing_id: str | None = None, workspace_id: str | None = None) -> int:
    """Accepted generation tasks submitted since `since` for batches of this listing / workspace."""
    return quotas.clips_used(since=since, listing_id=listing_id, workspace_id=workspace_id)


def quota_usage(
    quotas: QuotaRepository, batch: Batch, requested: int, *, listing_quota: int, workspace_quota: int, now: datetime | None = None
) -> list[QuotaUsage]:
    """The usage of every quota that applies to this batch (none when both are unlimited)."""
    month = month_start(now).strftime("%Y-%m")
    limited = [(s, sid, q) for s, sid, q in _scopes(batch, listing_quota, workspace_quota) if q > 0]
    used = quotas.clip_usage([(s, sid) for s, sid, _ in limited], month) if limited else {}
    return [QuotaUsage(s, sid, q, used[(s, sid)], requested, month) for s, sid, q in limited]


def enforce_quota(
    quotas: QuotaRepository, batch: Batch, requested: int, *, listing_quota: int, workspace_quota: int, now: datetime | None = None
) -> list[QuotaUsage]:
    """The early whole-batch check: BatchRejected(QUOTA_EXCEEDED) when `requested` more clips
    cannot fit. Reserves nothing (each submission reserves its own clip, see reserve_submission)."""
    usages = quota_usage(quotas, batch, requested, listing_quota=listing_quota, workspace_quota=workspace_quota, now=now)
    over = [usage for usage in usages if usage.exceeded]
    if over:
        raise BatchRejected(ErrorCode.QUOTA_EXCEEDED, _refusal(over, now))
    return usages


def reserve_submission(
    quotas: QuotaRepository, batch: Batch, *, listing_quota: int, workspace_quota: int, now: datetime | None = None
) -> Reservation:
    """Reserve the clip of one provider submission, or raise QuotaExceeded (nothing reserved).

    Clips are counted in every scope even when its quota is unlimited, so that setting a quota
    later starts from the true usage."""
    month = month_start(now).strftime("%Y-%m")
    scopes = _scopes(batch, listing_quota, workspace_quota)
    usages = quotas.reserve_clips(scopes, month, 1)
    over = [QuotaUsage(u.scope, u.scope_id, u.quota, u.used, 1, month) for u in usages]
    over = [usage for usage in over if usage.quota > 0 and usage.exceeded]
    if over:
        raise QuotaExceeded(_refusal(over, now))
    return Reservation([(scope, scope_id) for scope, scope_id, _ in scopes], month)


def release_submission(quotas: QuotaRepository, reservation: Reservation | None) -> None:
    """Give back the clip of a submission the provider refused (nothing was paid)."""
    if reservation is not None:
        quotas.release_clips(reservation.scopes, reservation.month, 1)
