"""The one database layer shared by the Dagster code and the HTTP service: `AppDatabase`, the
repositories over one `Db` (core.py), built once per URL and process.

`Db` is the explicit handle: the engine, the transaction, the short-lived reads, and the two
writes every state change makes in its own transaction (`Db.emit`: the webhook outbox row;
`Db.record`: the batch event), so a change is never reported without having happened, and never
happens without being reported. Each repository is one aggregate's SQL, constructed with the
`Db`; callers name the repository they use: `app_db.batches.fail_job(...)`,
`app_db.outbox.due(...)`. The bundle forwards nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from zencourt_pipeline.db.analytics import AnalyticsRepository
from zencourt_pipeline.db.api_keys import ApiKeyRepository
from zencourt_pipeline.db.batches import BatchRepository
from zencourt_pipeline.db.branding import BrandingRepository
from zencourt_pipeline.db.cancel import CancelRepository
from zencourt_pipeline.db.catalog import BatchCatalog
from zencourt_pipeline.db.completions import CompletionRepository
from zencourt_pipeline.db.core import Db
from zencourt_pipeline.db.events import EventRepository
from zencourt_pipeline.db.generation import TaskLedger
from zencourt_pipeline.db.liveness import LivenessRepository
from zencourt_pipeline.db.outbox import OutboxRepository
from zencourt_pipeline.db.outputs import OutputRepository
from zencourt_pipeline.db.pickup import PickupRepository
from zencourt_pipeline.db.quota import QuotaRepository
from zencourt_pipeline.db.spend import SpendRepository
from zencourt_pipeline.db.templates import TemplateRepository


@dataclass(frozen=True, eq=False)
class AppDatabase:
    """Every repository over one `Db`: `AppDatabase.connect(url)`, or `from_db(db)`."""

    db: Db  # the engine, the transaction, upgrade/dispose/ping
    batches: BatchRepository  # batches and jobs: inserts, reads, state transitions
    catalog: BatchCatalog  # the batch list, retention's pages, per-batch counts
    pickup: PickupRepository  # the batch sensor's claim, POST /video/generate
    ledger: TaskLedger  # generation tasks: what was paid for
    completions: CompletionRepository  # what came back for a paid task
    cancels: CancelRepository
    quota: QuotaRepository
    spend: SpendRepository
    analytics: AnalyticsRepository
    liveness: LivenessRepository  # the watchdog and the fair sensors
    events: EventRepository  # batch events (live progress)
    outputs: OutputRepository
    outbox: OutboxRepository  # webhook deliveries
    api_keys: ApiKeyRepository
    branding: BrandingRepository
    templates: TemplateRepository

    @classmethod
    def connect(cls, url: str) -> AppDatabase:
        """The repositories over a new engine for `url` (it never migrates: `db.upgrade()`)."""
        return cls.from_db(Db(url))

    @classmethod
    def from_db(cls, db: Db) -> AppDatabase:
        """The repositories over `db`."""
        return cls(
            db=db,
            batches=BatchRepository(db),
            catalog=BatchCatalog(db),
            pickup=PickupRepository(db),
            ledger=TaskLedger(db),
            completions=CompletionRepository(db),
            cancels=CancelRepository(db),
            quota=QuotaRepository(db),
            spend=SpendRepository(db),
            analytics=AnalyticsRepository(db),
            liveness=LivenessRepository(db),
            events=EventRepository(db),
            outputs=OutputRepository(db),
            outbox=OutboxRepository(db),
            api_keys=ApiKeyRepository(db),
            branding=BrandingRepository(db),
            templates=TemplateRepository(db),
        )
