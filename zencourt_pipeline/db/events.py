"""Batch events: every state change of a batch and its jobs, for live progress.

`EventRepository` reads them; every repository's state change calls `Db.record` inside its
own transaction, next to the statements that make the change: an event is never visible without
its change, and a change never commits without its event. `GET /video/batches/{id}/events`
streams them through an `EventCursor`.

Reading in id order while writers commit concurrently (PostgreSQL): an id is taken at the insert
and becomes visible at the commit, so id 11 can be visible while id 10 is not committed yet. A
reader that moved past 11 would never see 10. The cursor therefore hands out an event only once
every smaller id is settled: seen, or missing for longer than `settle`. How long an id has been
missing is told by the `created_at` of the next visible id: the missing id was taken before that
row was inserted, so its transaction has been open at least that long, and past `settle` (far
longer than any of these short transactions) it was rolled back or lost to a sequence cache.
By the same rule every id older than `settle` is settled, so a client far behind reads its
batch's events directly instead of scanning every batch's ids. On SQLite writers are serialized:
ids commit in order and never leave gaps, and the same code simply never waits. `created_at` is
the writer's clock at the insert (UTC); the processes' clocks must agree to well within `settle`.
"""

from __future__ import annotations

import logging
import select
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from zencourt_pipeline.db.clock import as_utc, utcnow
from zencourt_pipeline.db.core import Db
from zencourt_pipeline.db.records import (
    TERMINAL_STATUSES,
    BatchEvent,
    BatchEventType,
    BatchStage,
    GenerationTaskStatus,
    Task,
)
from zencourt_pipeline.db.schema import batch_events, generation_tasks, video_gen_batch

logger = logging.getLogger("zencourt_pipeline.db.events")

DEFAULT_SETTLE = timedelta(seconds=10)
NOTIFY_CHANNEL = "batch_events"  # PostgreSQL: the trigger of migration 0008 NOTIFYs the batch id
PROGRESS_STEP = 0.01  # a provider's progress is kept to 2 decimals: finer changes write no event
_e = batch_events.c


class EventRepository:
    """The batch events: stage and progress events, and their reads."""

    def __init__(self, db: Db):
        self.db = db

    def record_stage(self, batch_id: str, stage: BatchStage, **fields: Any) -> bool:
        """A `batch.stage` event (normalizing, composing, uploading) for a batch still open; whether written."""
        with self.db.transaction() as conn:
            status = conn.execute(sa.select(video_gen_batch.c.status).where(video_gen_batch.c.id == batch_id)).scalar()
            if status is None or status in TERMINAL_STATUSES:
                return False
            self.db.record(conn, batch_id, BatchEventType.STAGE, stage=str(stage), **fields)
        return True

    def record_task_progress(self, row_id: int, progress: float) -> bool:
        """Store a running task's progress (0..1, two decimals); a `job.progress` event when it changed."""
        value = round(min(1.0, max(0.0, progress)) / PROGRESS_STEP) * PROGRESS_STEP
        value = round(value, 2)
        with self.db.transaction() as conn:
            query = sa.select(generation_tasks).where(generation_tasks.c.id == row_id)
            if self.db.postgresql:
                query = query.with_for_update()
            row = conn.execute(query).first()
            task = Task.from_row(row) if row is not None else None
            if task is None or task.status != GenerationTaskStatus.SUBMITTED or task.progress == value:
                return False
            conn.execute(sa.update(generation_tasks).where(generation_tasks.c.id == row_id).values(progress=value))
            self.db.record(
                conn, task.batch_id, BatchEventType.JOB_PROGRESS, job_id=task.job_id,
                provider=task.provider, providerTaskId=task.task_id, progress=value,
            )  # fmt: skip
        return True

    def running_progress(self, batch_id: str) -> dict[str, float]:
        """Each job's running task's last reported progress (0..1): job id -> progress, jobs with none left out."""
        query = (
            sa.select(generation_tasks.c.job_id, generation_tasks.c.progress)
            .where(
                generation_tasks.c.batch_id == batch_id,
                generation_tasks.c.status == GenerationTaskStatus.SUBMITTED,
                generation_tasks.c.progress.is_not(None),
            )
            .order_by(generation_tasks.c.id)
        )
        with self.db.engine.connect() as conn:
            return {row.job_id: float(row.progress) for row in conn.execute(query)}  # the newest task wins

    def batch_events(self, batch_id: str, *, after: int = 0, up_to: int | None = None) -> list[BatchEvent]:
        """The batch's events with `after < id <= up_to`, in id order."""
        query = sa.select(batch_events).where(_e.batch_id == batch_id, _e.id > after).order_by(_e.id)
        if up_to is not None:
            query = query.where(_e.id <= up_to)
        return self.db.fetch(query, BatchEvent)

    def event_heads(self, after: int, limit: int) -> list[tuple[int, datetime]]:
        """`(id, created_at)` of the events of every batch after `after`, in id order (the cursor's gap check)."""
        query = sa.select(_e.id, _e.created_at).where(_e.id > after).order_by(_e.id).limit(limit)
        with self.db.engine.connect() as conn:
            return [(int(row.id), as_utc(row.created_at)) for row in conn.execute(query)]

    def last_event_before(self, moment: datetime) -> int:
        """The largest id of an event written at or before `moment` (0 when none)."""
        query = sa.select(_e.id).where(_e.created_at <= moment).order_by(_e.id.desc()).limit(1)
        with self.db.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)


class EventCursor:
    """Hands out one batch's events in id order, each once, never skipping an id that may still
    commit (see the module docstring). `position`: every id up to it is settled and handed out."""

    def __init__(
        self,
        events: EventRepository,
        batch_id: str,
        *,
        after: int = 0,
        settle: timedelta = DEFAULT_SETTLE,
        clock: Callable[[], datetime] = utcnow,
        page: int = 1000,
    ):
        self.events = events
        self.batch_id = batch_id
        self.position = after
        self.settle = settle
        self.clock = clock
        self.page = page
        self.holding = False  # an unsettled gap stopped the last poll (an id that may still commit)

    def poll(self) -> list[BatchEvent]:
        """The batch's events settled since the last poll, in id order."""
        cutoff = self.clock() - self.settle
        out: list[BatchEvent] = []
        aged = self.events.last_event_before(cutoff)
        if aged > self.position:  # everything this old is settled: no scan of other batches' ids
            out += self.events.batch_events(self.batch_id, after=self.position, up_to=aged)
            self.position = aged
        while True:
            heads = self.events.event_heads(self.position, self.page)
            horizon = self.position
            self.holding = False
            for event_id, created_at in heads:
                if event_id != horizon + 1 and created_at > cutoff:
                    self.holding = True  # ids horizon+1 .. event_id-1 may still commit: wait for them
                    break
                horizon = event_id
            if horizon > self.position:
                out += self.events.batch_events(self.batch_id, after=self.position, up_to=horizon)
                self.position = horizon
            if self.holding or len(heads) < self.page:
                return out


class EventListener:
    """PostgreSQL only: `on_batch(batch_id)` for every committed event (the NOTIFY of migration
    0008's trigger), from a thread holding its own connection (outside the pool), so that streams
    read at once instead of at their next poll. Only a wake-up: the polling cursor stays what
    guarantees delivery, so a lost connection (reconnected after `retry_seconds`) delays nothing
    beyond a poll interval."""

    def __init__(self, engine: sa.Engine, on_batch: Callable[[str], None], *, retry_seconds: float = 1.0):
        self.engine = engine
        self.on_batch = on_batch
        self.retry_seconds = retry_seconds
        self.listening = threading.Event()  # set while LISTEN is in place
        self.connections = 0  # how many times LISTEN was put in place (reconnects included)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start listening in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="batch-events-listener", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening (within a second) and close the connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._listen()
            except Exception:  # noqa: BLE001 - the database went away: listen again later, streams still poll
                # one warning per outage (it was listening before), then quiet retries
                level = logging.WARNING if self.listening.is_set() or failures == 0 else logging.DEBUG
                logger.log(level, "batch event listener lost its connection", exc_info=True)
                failures = 0 if self.listening.is_set() else failures + 1
            self.listening.clear()
            self._stop.wait(self.retry_seconds)

    def _listen(self) -> None:
        dialect = self.engine.dialect
        cargs, cparams = dialect.create_connect_args(self.engine.url)
        conn = dialect.connect(*cargs, **cparams)
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self.connections += 1
            self.listening.set()
            while not self._stop.is_set():
                if select.select([conn], [], [], 1.0) == ([], [], []):
                    continue
                conn.poll()
                while conn.notifies:
                    self.on_batch(conn.notifies.pop(0).payload)
        finally:
            conn.close()
