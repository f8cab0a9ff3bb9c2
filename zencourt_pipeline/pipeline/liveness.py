"""Liveness: every batch ends `completed`, `failed` or `canceled` within its deadlines.

The completions sensor calls `watch_processing` on a rotating page of processing batches:

- **Not every clip has a completion yet.** Past the generation deadline (counted from when the
  batch started processing), the clips still generating fail with GENERATION_TIMEOUT (their
  provider tasks are then canceled by the reconciler, which stops the spend), and the batch is
  composed from the clips it has (or fails when it has none).
- **Some clips arrived, others are still generating (clip-first).** A clip whose completion is
  older than `clip_first_grace` gets a clips run (`clips-<batch>-<digest>`: collect and normalize,
  which publishes each clip with `clip.completed`), at most one on its way per batch, so the web
  app gets each clip when it is ready and the compose run at the end has only the last ones left.
- **Every clip has its completion, for a state not composed yet.** One compose run is requested
  for that state (`compose-<batch>-<digest>`) and the state is stored on the batch, so the same
  state is never requested twice. The digest covers the completions and cancels only: what the
  compose run itself writes (jobs completed, raw clips stored) does not change it.
- **A compose run for this state ended, and the batch is still open.** That was a transient
  failure (storage, a crashed worker, a step out of retries): a new attempt gets a new run key
  (`...-a2`, `...-a3`), up to `max_attempts`; then the batch fails with COMPOSITION_FAILED.
- **The blocking clip check failed.** The batch is `blocked_reason = CLIP_CHECK_FAILED`, visible
  in the status API; it waits for an operator (a regeneration makes a new state, which is
  composed and unblocks it) and fails with CLIP_CHECK_FAILED at its composition deadline.
- **Past the composition deadline** (generation + composition after processing started), a
  batch still open fails with COMPOSITION_TIMEOUT.

Each failure goes through `finish_batch`, which tells the web app exactly once (`batch.failed`
with `errorCode`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from zencourt_pipeline.db.batches import BatchRepository
from zencourt_pipeline.db.clock import as_utc, utcnow
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.liveness import BatchGenerationRows
from zencourt_pipeline.db.records import (
    Batch,
    BatchStatus,
    CompletionRecord,
    GenerationTaskStatus,
    Job,
    JobStatus,
    Task,
    current_task,
)
from zencourt_pipeline.errors import ErrorCode

RUN_ACTIVE = "active"
CLIPS_STAGE = "clips"  # the `zencourt/stage` tag of a clips run (generated_clips reads it)
RUN_ENDED = "ended"


@dataclass(frozen=True)
class Deadlines:
    generation: timedelta = timedelta(hours=2)
    composition: timedelta = timedelta(minutes=30)
    max_attempts: int = 3
    # clip-first: a clip that arrived this long ago while others are still generating is
    # normalized and published by a clips run (its siblings arriving meanwhile share that run)
    clip_first_grace: timedelta = timedelta(seconds=10)


@dataclass(frozen=True)
class ComposeRequest:
    batch_id: str
    run_key: str
    digest: str
    attempt: int


@dataclass(frozen=True)
class ClipsRequest:
    """A clips run (collect and normalize what arrived) for a batch still waiting on other clips."""

    batch_id: str
    run_key: str


@dataclass
class WatchReport:
    requests: list[ComposeRequest] = field(default_factory=list)
    clip_requests: list[ClipsRequest] = field(default_factory=list)
    timed_out_jobs: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (batch id, error code)
    waiting: int = 0


def compose_run_key(batch_id: str, digest: str, attempt: int) -> str:
    """Run key of a compose run for a completion state; later attempts get an `-a<n>` suffix."""
    return f"compose-{batch_id}-{digest}" if attempt <= 1 else f"compose-{batch_id}-{digest}-a{attempt}"


def clips_run_key(batch_id: str, digest: str) -> str:
    """Run key of a clips run for a completion state (one per state at most)."""
    return f"clips-{batch_id}-{digest}"


def current_completions(rows: BatchGenerationRows) -> list[tuple[Job, CompletionRecord | None]]:
    """Each job with the recorded completion of its current task (None: none yet, or no task)."""
    completions = {(c.provider, c.task_id): c for c in rows.completions}
    tasks_by_job: dict[str, list[Task]] = {}
    for task in rows.tasks:
        tasks_by_job.setdefault(task.job_id, []).append(task)
    out = []
    for job in rows.jobs:
        task = current_task(tasks_by_job.get(job.id, []))
        out.append((job, completions.get((task.provider, task.task_id)) if task else None))
    return out


def arrived_clips(rows: BatchGenerationRows, now: datetime, grace: timedelta) -> list[Job]:
    """Open jobs whose clip is here but not normalized yet: a successful completion of the current
    task recorded more than `grace` ago, or a raw clip stored (a given clip, a download done)."""
    arrived = []
    for job, completion in current_completions(rows):
        if job.terminal or job.video_url:
            continue
        succeeded = completion is not None and completion.status == GenerationTaskStatus.SUCCEEDED
        if job.raw_clip_key or (succeeded and completion.received_at and as_utc(completion.received_at) <= now - grace):
            arrived.append(job)
    return arrived


def intake_run_key(batch_id: str, attempt: int) -> str:
    """Run key of an intake run; retries (attempt 1, 2, ...) get an `-a<attempt + 1>` suffix."""
    return f"intake-{batch_id}" if attempt <= 0 else f"intake-{batch_id}-a{attempt + 1}"


def completion_state(rows: BatchGenerationRows) -> tuple[bool, str, list[Job]]:
    """(ready, digest, open jobs): ready when every live job has a recorded completion for its
    current task (or its raw clip stored). The digest changes with completions and cancels only."""
    parts, waiting_on = [], []
    for job, completion in current_completions(rows):
        completion_id = completion.id if completion else None
        parts.append(f"{job.id}:{completion_id}:{'x' if job.status == JobStatus.CANCELED else ''}")
        if job.terminal or job.raw_clip_key or completion_id is not None:
            continue
        waiting_on.append(job)
    digest = hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]
    return not waiting_on, digest, waiting_on


def _started(batch: Batch) -> datetime:
    return as_utc(batch.processing_started_at or batch.created_at)


def watch_processing(
    db: AppDatabase,
    batches: list[Batch],
    run_status: Callable[[str], str | None],
    deadlines: Deadlines,
    now: datetime | None = None,
    max_requests: int = 25,
    clips_running: Callable[[str], bool] | None = None,
) -> WatchReport:
    """Decide, for each processing batch, what keeps it moving (module docstring). At most
    `max_requests` runs are requested (run creation is the slow part of a tick); batches that
    would need one beyond that go to the front of the next page. With `clips_running` (is a
    clips run of this batch on its way?), a batch still waiting on some clips gets a clips run
    for the ones that arrived (clip-first), one at a time."""
    now = now or utcnow()
    report = WatchReport()
    rows = db.liveness.generation_rows([batch.id for batch in batches])
    deferred = []
    for batch in batches:
        batch_id = batch.id
        ready, digest, waiting_on = completion_state(rows[batch_id])
        if ready and len(report.requests) >= max_requests:
            deferred.append(batch_id)
            continue
        started = _started(batch)
        if not ready:
            if now > started + deadlines.generation:
                for job in waiting_on:
                    minutes = deadlines.generation.total_seconds() / 60
                    if db.batches.fail_job(job.id, ErrorCode.GENERATION_TIMEOUT, f"no clip within {minutes:g} min of the batch starting"):
                        report.timed_out_jobs += 1
            else:
                report.waiting += 1
                _clips_first(report, batch_id, rows[batch_id], digest, now, deadlines, run_status, clips_running)
            continue
        attempt = int(batch.compose_attempts or 0)
        if digest != batch.composed_digest:
            _request(db, report, batch_id, digest, 1)
            continue
        status = run_status(compose_run_key(batch_id, digest, attempt))
        if status == RUN_ACTIVE:
            report.waiting += 1
            continue
        if now > started + deadlines.generation + deadlines.composition:
            code = batch.blocked_reason or ErrorCode.COMPOSITION_TIMEOUT  # blocked: CLIP_CHECK_FAILED
            _fail(db, report, batch_id, code, "the batch did not finish composing before its deadline")
        elif batch.blocked_reason:
            report.waiting += 1  # an operator's turn: regenerate the failing clips, or it fails at the deadline
        elif status is None:
            _request(db, report, batch_id, digest, max(attempt, 1))  # not landed yet: the run key dedupes
        elif attempt < deadlines.max_attempts:
            _request(db, report, batch_id, digest, attempt + 1)
        else:
            _fail(db, report, batch_id, ErrorCode.COMPOSITION_FAILED, f"composition did not finish after {attempt} attempt(s)")
    db.liveness.defer_batches(deferred)
    report.waiting += len(deferred)
    return report


def _clips_first(report, batch_id, rows, digest, now, deadlines, run_status, clips_running) -> None:
    """Request a clips run for the clips that arrived, unless one is on its way or was made for this state."""
    if clips_running is None or not arrived_clips(rows, now, deadlines.clip_first_grace):
        return
    key = clips_run_key(batch_id, digest)
    if run_status(key) is None and not clips_running(batch_id):
        report.clip_requests.append(ClipsRequest(batch_id, key))


def _request(db: AppDatabase, report: WatchReport, batch_id: str, digest: str, attempt: int) -> None:
    db.liveness.mark_compose_requested(batch_id, digest, attempt)
    report.requests.append(ComposeRequest(batch_id, compose_run_key(batch_id, digest, attempt), digest, attempt))


def _fail(db: AppDatabase, report: WatchReport, batch_id: str, code: str, message: str) -> None:
    if fail_batch(db.batches, batch_id, code, message):
        report.failed.append((batch_id, code))


def fail_batch(batches: BatchRepository, batch_id: str, code: str, message: str) -> bool:
    """Fail an open batch and the jobs still open in it, with the same code: a terminal batch has
    no job left `processing` (a live provider task of such a job is then one of an ended job, which
    the reconciler cancels). Each job first (`clip.failed`), then the batch (`batch.failed`), so a
    crash in between leaves an open batch that the next tick fails again."""
    for job in batches.get_jobs(batch_id):
        if not job.terminal:
            batches.fail_job(job.id, code, f"the batch failed: {message}")
    return batches.finish_batch(batch_id, BatchStatus.FAILED, error=f"{code}: {message}", error_code=code)


class RunEnd(StrEnum):
    """How a failed run of a batch ended, which decides whether it spends an attempt."""

    FAILED = "failed"  # its own code failed: a step out of retries, an exception in the run
    INTERRUPTED = "interrupted"  # the infrastructure stopped it: a killed worker, a restart, a start timeout


# a run stopped by the infrastructure did not try its batch: it gets this many times the attempts
# (still bounded: a machine that kills every run ends its batches, it does not loop on them)
INTERRUPTED_ATTEMPTS_FACTOR = 4


def intake_attempts_left(failures: Counter[RunEnd], max_attempts: int) -> bool:
    """Whether a batch whose intake runs failed `failures` times gets another attempt."""
    return failures[RunEnd.FAILED] < max_attempts and failures[RunEnd.INTERRUPTED] < max_attempts * INTERRUPTED_ATTEMPTS_FACTOR


def on_intake_failed(db: AppDatabase, batch_id: str, max_attempts: int, failures: Counter[RunEnd]) -> str | None:
    """An intake run failed (`failures`: the batch's failed intake runs so far, this one included):
    the run key of the next attempt, or None when the batch is not open or out of attempts (then it
    fails with INTAKE_FAILED and the web app is told). Runs the infrastructure interrupted spend
    from a larger budget than runs that failed on their own."""
    batch = db.batches.get_batch(batch_id)
    if batch is None or batch.terminal:
        return None
    attempts = db.liveness.retry_intake(batch_id)
    if attempts is None:
        return None
    if not intake_attempts_left(failures, max_attempts):
        summary = f"{failures[RunEnd.FAILED]} failed, {failures[RunEnd.INTERRUPTED]} interrupted"
        fail_batch(db.batches, batch_id, ErrorCode.INTAKE_FAILED, f"intake failed {attempts} time(s) ({summary})")
        return None
    return intake_run_key(batch_id, attempts)
