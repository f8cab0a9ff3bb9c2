"""Stage 2: submit each job to a provider (at most once per provider); `pipeline.collect` then
collects the outputs.

Money rules kept here:
- a task row is written *before* the provider is called and gets its task id as soon as the
  provider answers, so a retried or crashed run sees what it already paid for;
- a job that has a live or finished task is never submitted again;
- a job moves to the next provider only on a failure the fallback policy allows;
- a create whose answer was lost (`AnswerLost`), or whose run died before the provider answered,
  may have created a paid task: its row is kept as `possibly_orphaned` with its estimated cost,
  its quota clip stays reserved, and the job fails PROVIDER_ANSWER_LOST (never re-sent, never
  fallen back: either would pay a second time while the first task may be live);
- a finished task is paid: when its output does not download, it is downloaded again (fresh URL)
  on the next collect, never generated again; the failed downloads are counted on the task and
  past `max_download_attempts` the job fails OUTPUT_DOWNLOAD_FAILED. Only an output that arrived
  complete and was not a valid MP4 twice moves the job to the next provider (a second, counted
  payment for the provider's bad output).

`submit_batch` is the stage `clip_tasks` calls: an operator's regeneration (planned, checked
against the quota, reset) and then the submissions, in that order, returning a typed
`SubmissionReport`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from zencourt_pipeline.db.clock import as_utc, utcnow
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.generation import LIVE_TASK_STATUSES, IntentOpen, TaskIdTaken, TaskLedger
from zencourt_pipeline.db.liveness import LivenessRepository
from zencourt_pipeline.db.records import (
    Batch,
    GenerationTaskStatus,
    Job,
    Task,
)
from zencourt_pipeline.domain import (
    DEFAULT_OUTPUTS,
    BatchRejected,
    GenerationRatio,
    JobSource,
    generation_ratio,
    motion_prompt,
    parse_outputs,
)
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.frames import clip_frame
from zencourt_pipeline.pipeline.liveness import completion_state
from zencourt_pipeline.pipeline.quota import (
    BatchQuota,
    QuotaExceeded,
    QuotaLimits,
    enforce_quota,
    release_submission,
)
from zencourt_pipeline.pipeline.regenerate import (
    RegenerationPlan,
    RegenerationRefused,
    plan_regeneration,
    reset_for_regeneration,
)
from zencourt_pipeline.providers.base import (
    GenerationError,
    GenerationRequest,
)
from zencourt_pipeline.providers.chain import ProviderChain, default_prompt, job_seed
from zencourt_pipeline.storage.base import Storage, StorageError

SUPERSEDED = GenerationTaskStatus.SUPERSEDED  # an operator regenerated the job: a paid, finished task a newer one replaces
# the error code earlier versions gave the intents they abandoned (task rows only, never a job's):
# such a provider was never reached, so it may still be tried
LEGACY_ABANDONED_CODE = "ABANDONED"
ABANDON_SUBMITTING_AFTER = timedelta(minutes=10)
DEFAULT_MAX_DOWNLOAD_ATTEMPTS = 5


class SubmissionOutcome(StrEnum):
    """Where one job's generation stands after a submit (`submit_jobs`) or a collect (`collect_outputs`)."""

    SUBMITTED = "submitted"  # a provider accepted a new task (a first submission or a fallback)
    EXISTING = "existing"  # the job already had a live or finished task: nothing sent
    STORED = "stored"  # its output is in our storage
    IN_FLIGHT = "in_flight"  # its task is still generating, or its output is still to be downloaded
    FAILED = "failed"  # the job failed (its error code on the row)
    SKIPPED = "skipped"  # the job had already ended, or has no photo
    GIVEN = "given"  # a clip the web app gave (`clip_url`): nothing to generate, nothing paid


@dataclass(frozen=True)
class JobOutcome:
    job_id: str
    room_name: str | None
    status: SubmissionOutcome
    provider: str | None = None
    task_id: str | None = None
    seconds: float | None = None
    cost_credits: float | None = None
    error_code: ErrorCode | None = None
    error_message: str | None = None


def tried_providers(tasks: list[Task]) -> set[str]:
    """Providers this attempt of the job already went to (a regeneration starts the chain over)."""
    return {
        task.provider for task in tasks if task.status != SUPERSEDED and task.error_code != LEGACY_ABANDONED_CODE
    }


def attempt_seed(job_id: str, attempt: int) -> int:
    """Attempt 0 is the job's own seed; each regeneration gets a new one (a regenerated clip should
    differ), distinct from the earlier ones in its last five digits (local task ids carry them)."""
    seeds = [job_seed(job_id)]
    salt = 0
    while len(seeds) <= attempt:
        salt += 1
        candidate = job_seed(f"{job_id}#regenerate-{salt}")
        if candidate % 100000 not in {seed % 100000 for seed in seeds}:
            seeds.append(candidate)
    return seeds[attempt]


def generation_attempt(tasks: list[Task]) -> int:
    """Which generation of the job this is: 0, then one more per operator regeneration (superseded tasks)."""
    return sum(1 for task in tasks if task.status == SUPERSEDED)


def batch_clip_frame(batch: Batch) -> tuple[int, int]:
    """The frame the batch's clips are generated, normalized and composed from (`frames.clip_frame`):
    the generation ratio nearest its primary output, so 1280x720 for the default request and 960x960
    for a batch asking only for square outputs. Fixed when the batch is created: an operator's
    orientation at recompose picks another primary among the outputs, reframed from these clips."""
    try:
        outputs = parse_outputs(batch.outputs)
    except BatchRejected:  # intake rejects such a batch before anything is generated
        outputs = DEFAULT_OUTPUTS
    return clip_frame(outputs, batch.orientation)


def batch_generation_ratio(batch: Batch) -> GenerationRatio:
    """The ratio the batch's clips are generated at: its clip frame's (Runway's `ratio`, the
    Kling photo crop, the local render's size)."""
    return generation_ratio(*batch_clip_frame(batch))


def build_request(batch: Batch, job: Job, photo: Path, storage: Storage, attempt: int = 0) -> GenerationRequest:
    """The provider request of one job: its photo, prompt (with the batch's instructions after it),
    duration, orientation, generation ratio and seed."""
    return GenerationRequest(
        job_id=job.id,
        batch_id=batch.id,
        photo_path=photo,
        prompt=motion_prompt(job.prompt or default_prompt(job.room_name), batch.instructions),
        duration_seconds=int(job.duration_seconds),
        orientation=batch.orientation,
        ratio=batch_generation_ratio(batch),
        seed=attempt_seed(job.id, attempt),
        room_name=job.room_name,
        photo_https_url=storage.public_https_url(job.photo_key),
    )


def submit_with_fallback(
    db: AppDatabase, chain: ProviderChain, request: GenerationRequest, candidates: list[str], run_id: str | None = None,
    *, quota: BatchQuota | None = None,
) -> JobOutcome:
    """Submit one job down the candidate providers, ledger row first; fail it when none accepts."""
    last: GenerationError | None = None
    for name in candidates:
        try:  # every provider call is a paid clip: reserve it first (QuotaExceeded: fail, nothing paid)
            reservation = quota.reserve(db.quota) if quota is not None else None
        except QuotaExceeded as exc:
            last = exc
            break
        try:
            row_id = db.ledger.begin_task(request.job_id, request.batch_id, name, run_id=run_id)
        except IntentOpen:  # another run is submitting this job (or did): it pays, not this one
            release_submission(db.quota, reservation)
            return JobOutcome(request.job_id, request.room_name, SubmissionOutcome.EXISTING, provider=name)
        started = time.monotonic()
        try:
            submitted = chain.get(name).submit(request)
        except GenerationError as exc:
            last = exc
            if exc.ambiguous:  # the task may exist and be paid: count it, keep its clip reserved, stop
                cost_usd, cost_source = chain.task_cost(name, getattr(exc, "model", None), request.duration_seconds)
                db.ledger.task_answer_lost(row_id, exc.code, exc.message, cost_usd=cost_usd, cost_source=cost_source)
                break
            db.ledger.task_rejected(row_id, exc.code, exc.message)
            release_submission(db.quota, reservation)  # refused: nothing paid, the clip goes back
            if exc.fallback:
                continue
            break
        # what the task will cost: the provider's figure if its answer has one, else the rate table
        cost_usd, cost_source = chain.task_cost(
            name, (submitted.ref.meta or {}).get("model"), request.duration_seconds, submitted.cost_credits
        )
        try:
            db.ledger.task_submitted(
                row_id,
                request.job_id,
                name,
                submitted.ref.task_id,
                cost=submitted.cost_credits,
                cost_usd=cost_usd,
                cost_source=cost_source,
                meta=submitted.ref.meta or None,
            )
        except TaskIdTaken as exc:  # a duplicate answer: this create's own task is unknown, as if lost
            last = GenerationError(ErrorCode.PROVIDER_ANSWER_LOST, str(exc))
            db.ledger.task_answer_lost(row_id, last.code, last.message, cost_usd=cost_usd, cost_source=cost_source)
            break
        return JobOutcome(
            request.job_id,
            request.room_name,
            SubmissionOutcome.SUBMITTED,
            provider=name,
            task_id=submitted.ref.task_id,
            seconds=round(time.monotonic() - started, 2),
            cost_credits=submitted.cost_credits,
        )
    code = last.code if last else ErrorCode.GENERATION_FAILED
    message = last.message if last else "no generation provider left to try"
    db.batches.fail_job(request.job_id, code, message)
    return JobOutcome(request.job_id, request.room_name, SubmissionOutcome.FAILED, error_code=code, error_message=message)


def _abandon_dead_intents(
    ledger: TaskLedger, chain: ProviderChain, job: Job, tasks: list[Task], run_id: str | None,
    is_run_active: Callable[[str], bool] | None,
) -> bool:
    """Intents (no task id yet) whose run is gone: that run died before the provider answered.
    Returns whether any was found.

    Ownership decides: the intent of a finished run (or of an earlier attempt of this very
    step) is given up at once; an intent without an owner only after a long window. Its POST may
    have reached the provider (neither Runway nor fal takes an idempotency key, nor lists tasks):
    it is an ambiguous create like a lost answer, kept as possibly orphaned with its estimated
    cost, and its job is not submitted again (`submit_jobs` fails it PROVIDER_ANSWER_LOST).
    """
    found = False
    for task in tasks:
        if task.status != GenerationTaskStatus.SUBMITTING or task.task_id:
            continue
        owner = task.meta.get("intent_run_id")
        orphaned = owner is not None and (
            owner == run_id or (is_run_active is not None and not is_run_active(owner))
        )
        stale = as_utc(task.submitted_at) < utcnow() - ABANDON_SUBMITTING_AFTER
        if orphaned or stale:
            cost_usd, cost_source = chain.task_cost(task.provider, None, int(job.duration_seconds))
            ledger.task_answer_lost(
                task.id, ErrorCode.PROVIDER_ANSWER_LOST,
                "the run submitting this task ended before the provider answered; the create may have "
                "reached it (and be paid): not re-sent, not fallen back",
                cost_usd=cost_usd, cost_source=cost_source,
            )  # fmt: skip
            found = True
    return found


def submit_jobs(
    db: AppDatabase,
    storage: Storage,
    chain: ProviderChain,
    batch: Batch,
    jobs: list[Job],
    work_dir: Path,
    *,
    run_id: str | None = None,
    is_run_active: Callable[[str], bool] | None = None,
    quota: QuotaLimits | None = None,
) -> list[JobOutcome]:
    """Submit every open job lacking a task; jobs whose create may already be paid fail instead."""
    outcomes = []
    for job in jobs:
        if job.source == JobSource.CLIP and not job.terminal:
            outcomes.append(JobOutcome(job.id, job.room_name, SubmissionOutcome.GIVEN))
            continue
        if job.terminal or not job.photo_key:
            outcomes.append(JobOutcome(job.id, job.room_name, SubmissionOutcome.SKIPPED, error_code=job.error_code))
            continue
        tasks = db.ledger.tasks_for_job(job.id)
        if _abandon_dead_intents(db.ledger, chain, job, tasks, run_id, is_run_active):
            tasks = db.ledger.tasks_for_job(job.id)
        live = [task for task in tasks if task.status in LIVE_TASK_STATUSES]
        if live:
            task = live[-1]
            outcomes.append(
                JobOutcome(job.id, job.room_name, SubmissionOutcome.EXISTING, provider=task.provider, task_id=task.task_id)
            )
            continue
        lost = [task for task in tasks if task.possibly_orphaned and task.status != SUPERSEDED]
        if lost:  # a possibly paid task of this attempt: only an operator's regeneration pays again
            task = lost[-1]
            code, message = task.error_code or ErrorCode.PROVIDER_ANSWER_LOST, task.error_message or "answer lost"
            db.batches.fail_job(job.id, code, message)
            outcomes.append(
                JobOutcome(job.id, job.room_name, SubmissionOutcome.FAILED, task.provider, error_code=code, error_message=message)
            )
            continue
        failed_providers = tried_providers(tasks)
        candidates = [name for name in chain.order if name not in failed_providers]
        try:
            photo = storage.get_file(job.photo_key, work_dir / f"{job.id}.jpg")
        except StorageError as exc:
            if storage.exists(job.photo_key):
                raise  # storage is failing, not the photo: the step is retried, the job stays open
            db.batches.fail_job(job.id, exc.code, exc.message)
            outcomes.append(JobOutcome(job.id, job.room_name, SubmissionOutcome.FAILED, error_code=exc.code))
            continue
        request = build_request(batch, job, photo, storage, generation_attempt(tasks))
        outcomes.append(
            submit_with_fallback(db, chain, request, candidates, run_id, quota=quota and quota.for_batch(batch))
        )
    return outcomes


def generation_state(liveness: LivenessRepository, batch_id: str) -> tuple[bool, str]:
    """(ready, digest) of one batch: see `pipeline.liveness.completion_state`."""
    ready, digest, _waiting = completion_state(liveness.generation_rows([batch_id])[batch_id])
    return ready, digest


class SubmissionStatus(StrEnum):
    """How `clip_tasks`' stage ended."""

    SUBMITTED = "submitted"  # every open job has a task (or failed trying)
    REFUSED = "refused"  # the operator's regeneration was refused: nothing reset, nothing sent


@dataclass(frozen=True)
class SubmissionReport:
    """What `submit_batch` did: the jobs' outcomes, the regeneration it made, or why it refused one."""

    status: SubmissionStatus
    outcomes: list[JobOutcome] = field(default_factory=list)
    all_completions_recorded: bool = False
    regeneration: RegenerationPlan | None = None  # when the run named jobs to regenerate
    superseded: int = 0  # finished tasks the regeneration superseded
    error_code: ErrorCode | None = None  # why the regeneration was refused
    error_message: str | None = None

    def count(self, outcome: SubmissionOutcome) -> int:
        """How many jobs ended `outcome`."""
        return sum(1 for item in self.outcomes if item.status == outcome)


def submit_batch(
    db: AppDatabase,
    storage: Storage,
    chain: ProviderChain,
    batch: Batch,
    jobs: list[Job],
    work_dir: Path,
    *,
    quota: QuotaLimits,
    regenerate_job_ids: Sequence[str] = (),
    run_id: str | None = None,
    is_run_active: Callable[[str], bool] | None = None,
) -> SubmissionReport:
    """Generation's state changes in order: an operator's regeneration (planned, checked against the
    quota, the named jobs reset and the batch reloaded), then one task per open job."""
    plan, superseded = None, 0
    if regenerate_job_ids:
        try:
            plan = plan_regeneration(db, batch, jobs, regenerate_job_ids)
            enforce_quota(
                db.quota, batch, len(plan.reset), listing_quota=quota.listing_quota, workspace_quota=quota.workspace_quota
            )
        except (RegenerationRefused, BatchRejected) as exc:
            return SubmissionReport(SubmissionStatus.REFUSED, error_code=exc.code, error_message=exc.message)
        superseded = reset_for_regeneration(db.ledger, batch.id, [job.id for job in plan.reset])
        batch, jobs = db.batches.get_batch(batch.id) or batch, db.batches.get_jobs(batch.id)
    outcomes = submit_jobs(
        db, storage, chain, batch, jobs, work_dir, run_id=run_id, is_run_active=is_run_active, quota=quota
    )
    ready, _digest = generation_state(db.liveness, batch.id)
    return SubmissionReport(SubmissionStatus.SUBMITTED, outcomes, ready, plan, superseded)
