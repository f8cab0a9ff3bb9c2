"""Stage 2: submit each job to a provider (at most once per provider), then collect the outputs.

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
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from zencourt_pipeline.db.database import AppDatabase, as_utc, utcnow
from zencourt_pipeline.db.generation import TaskIdTaken
from zencourt_pipeline.db.records import (
    Batch,
    CompletionRecord,
    GenerationTaskStatus,
    Job,
    Task,
    current_task,
)
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.pipeline.keys import raw_clip_key
from zencourt_pipeline.pipeline.liveness import completion_state
from zencourt_pipeline.pipeline.quota import BatchQuota, QuotaExceeded, QuotaLimits, release_submission
from zencourt_pipeline.pipeline.reconcile import record_poll_result, task_ref
from zencourt_pipeline.providers.base import (
    GenerationError,
    GenerationRequest,
    TaskRef,
    TaskState,
)
from zencourt_pipeline.providers.chain import ProviderChain, default_prompt, job_seed, should_fall_back
from zencourt_pipeline.storage.base import Storage, StorageError

LIVE_TASK_STATUSES = (GenerationTaskStatus.SUBMITTING, GenerationTaskStatus.SUBMITTED, GenerationTaskStatus.SUCCEEDED)
SUPERSEDED = GenerationTaskStatus.SUPERSEDED  # an operator regenerated the job: a paid, finished task a newer one replaces
# the error code earlier versions gave the intents they abandoned (task rows only, never a job's):
# such a provider was never reached, so it may still be tried
LEGACY_ABANDONED_CODE = "ABANDONED"
ABANDON_SUBMITTING_AFTER = timedelta(minutes=10)
DEFAULT_MAX_DOWNLOAD_ATTEMPTS = 5


@dataclass(frozen=True)
class JobOutcome:
    job_id: str
    room_name: str | None
    status: str  # submitted | existing | stored | in_flight | failed | skipped
    provider: str | None = None
    task_id: str | None = None
    seconds: float | None = None
    cost_credits: float | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class PolledCompletion:
    """What a poll learned of a task whose completion was not recorded: read like a `CompletionRecord`."""

    status: GenerationTaskStatus
    output_url: str | None = None
    error_code: str | None = None
    error_message: str | None = None


def _tried_providers(tasks: list[Task]) -> set[str]:
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


def _attempt(tasks: list[Task]) -> int:
    return sum(1 for task in tasks if task.status == SUPERSEDED)


def _build_request(batch: Batch, job: Job, photo: Path, storage: Storage, attempt: int = 0) -> GenerationRequest:
    return GenerationRequest(
        job_id=job.id,
        batch_id=batch.id,
        photo_path=photo,
        prompt=job.prompt or default_prompt(job.room_name),
        duration_seconds=int(job.duration_seconds),
        orientation=batch.orientation,
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
            reservation = quota.reserve(db) if quota is not None else None
        except QuotaExceeded as exc:
            last = exc
            break
        row_id = db.begin_task(request.job_id, request.batch_id, name, run_id=run_id)
        started = time.monotonic()
        try:
            submitted = chain.get(name).submit(request)
        except GenerationError as exc:
            last = exc
            if exc.ambiguous:  # the task may exist and be paid: count it, keep its clip reserved, stop
                cost_usd, cost_source = chain.task_cost(name, getattr(exc, "model", None), request.duration_seconds)
                db.task_answer_lost(row_id, exc.code, exc.message, cost_usd=cost_usd, cost_source=cost_source)
                break
            db.task_rejected(row_id, exc.code, exc.message)
            release_submission(db, reservation)  # refused: nothing paid, the clip goes back
            if exc.fallback:
                continue
            break
        # what the task will cost: the provider's figure if its answer has one, else the rate table
        cost_usd, cost_source = chain.task_cost(
            name, (submitted.ref.meta or {}).get("model"), request.duration_seconds, submitted.cost_credits
        )
        try:
            db.task_submitted(
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
            db.task_answer_lost(row_id, last.code, last.message, cost_usd=cost_usd, cost_source=cost_source)
            break
        return JobOutcome(
            request.job_id,
            request.room_name,
            "submitted",
            provider=name,
            task_id=submitted.ref.task_id,
            seconds=round(time.monotonic() - started, 2),
            cost_credits=submitted.cost_credits,
        )
    code = last.code if last else ErrorCode.GENERATION_FAILED
    message = last.message if last else "no generation provider left to try"
    db.fail_job(request.job_id, code, message)
    return JobOutcome(request.job_id, request.room_name, "failed", error_code=code, error_message=message)


def _abandon_dead_intents(
    db: AppDatabase, chain: ProviderChain, job: Job, tasks: list[Task], run_id: str | None,
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
            db.task_answer_lost(
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
        if job.terminal or not job.photo_key:
            outcomes.append(JobOutcome(job.id, job.room_name, "skipped", error_code=job.error_code))
            continue
        tasks = db.tasks_for_job(job.id)
        if _abandon_dead_intents(db, chain, job, tasks, run_id, is_run_active):
            tasks = db.tasks_for_job(job.id)
        live = [task for task in tasks if task.status in LIVE_TASK_STATUSES]
        if live:
            task = live[-1]
            outcomes.append(
                JobOutcome(job.id, job.room_name, "existing", provider=task.provider, task_id=task.task_id)
            )
            continue
        lost = [task for task in tasks if task.possibly_orphaned and task.status != SUPERSEDED]
        if lost:  # a possibly paid task of this attempt: only an operator's regeneration pays again
            task = lost[-1]
            code, message = task.error_code or ErrorCode.PROVIDER_ANSWER_LOST, task.error_message or "answer lost"
            db.fail_job(job.id, code, message)
            outcomes.append(
                JobOutcome(job.id, job.room_name, "failed", task.provider, error_code=code, error_message=message)
            )
            continue
        failed_providers = _tried_providers(tasks)
        candidates = [name for name in chain.order if name not in failed_providers]
        try:
            photo = storage.get_file(job.photo_key, work_dir / f"{job.id}.jpg")
        except StorageError as exc:
            if storage.exists(job.photo_key):
                raise  # storage is failing, not the photo: the step is retried, the job stays open
            db.fail_job(job.id, exc.code, exc.message)
            outcomes.append(JobOutcome(job.id, job.room_name, "failed", error_code=exc.code))
            continue
        request = _build_request(batch, job, photo, storage, _attempt(tasks))
        outcomes.append(
            submit_with_fallback(db, chain, request, candidates, run_id, quota=quota and quota.for_batch(batch))
        )
    return outcomes


def _completion_from_poll(db: AppDatabase, chain: ProviderChain, task: Task) -> PolledCompletion | None:
    """Ask the provider about a task whose completion was not recorded (a lost webhook)."""
    status = chain.get(task.provider).poll(task_ref(task))
    if not status.state.terminal:
        if status.progress is not None:
            db.record_task_progress(task.id, status.progress)
        return None
    record_poll_result(db, task, status, rates=chain.rates)
    return PolledCompletion(
        GenerationTaskStatus(status.state.value), status.output_url, status.error_code, status.error_message
    )


def collect_outputs(
    db: AppDatabase,
    storage: Storage,
    chain: ProviderChain,
    batch: Batch,
    jobs: list[Job],
    work_dir: Path,
    *,
    poll_missing: bool = True,
    quota: QuotaLimits | None = None,
    max_download_attempts: int = DEFAULT_MAX_DOWNLOAD_ATTEMPTS,
) -> list[JobOutcome]:
    """Store every finished output in our storage; fall back or fail the failed ones.

    An output that does not download leaves its job in flight (error_code OUTPUT_DOWNLOAD_FAILED)
    for the next collect, which downloads it again from a fresh URL; past `max_download_attempts`
    failed downloads of the task (default: ZENCOURT_MAX_DOWNLOAD_ATTEMPTS, 5) the job fails
    OUTPUT_DOWNLOAD_FAILED, without fallback."""
    max_downloads = max(1, max_download_attempts)
    completions = {(c.provider, c.task_id): c for c in db.completions_for_batch(batch.id)}
    tasks_by_job: dict[str, list[Task]] = {}
    for task in db.tasks_for_batch(batch.id):
        tasks_by_job.setdefault(task.job_id, []).append(task)
    outcomes = []
    for job in jobs:
        name = job.room_name
        if job.terminal:
            outcomes.append(JobOutcome(job.id, name, "skipped", error_code=job.error_code))
            continue
        task = current_task(tasks_by_job.get(job.id, []))
        if job.raw_clip_key and storage.exists(job.raw_clip_key):
            outcomes.append(JobOutcome(job.id, name, "stored", task and task.provider, task and task.task_id))
            continue
        if task is None:
            outcomes.append(JobOutcome(job.id, name, "in_flight"))
            continue
        provider, task_id = task.provider, task.task_id
        completion: CompletionRecord | PolledCompletion | None = completions.get((provider, task_id))
        if completion is None and poll_missing:
            try:
                completion = _completion_from_poll(db, chain, task)
            except GenerationError:
                completion = None
        if completion is None:
            outcomes.append(JobOutcome(job.id, name, "in_flight", provider, task_id))
            continue
        code, message = completion.error_code, completion.error_message
        if completion.status == TaskState.SUCCEEDED:
            try:
                ref = TaskRef(provider, task_id, task.meta)
                # the recorded URL the first time; after a failed download, a fresh one
                url = completion.output_url if not task.download_attempts else None
                local = chain.get(provider).fetch_result(ref, work_dir / f"{job.id}.raw.mp4", url)
                key = raw_clip_key(batch.id, job.id)
                storage.put_file(key, local, "video/mp4")
                db.update_job(job.id, raw_clip_key=key)
                outcomes.append(JobOutcome(job.id, name, "stored", provider, task_id, cost_credits=task.cost_credits))
                continue
            except GenerationError as exc:
                if exc.download_failed:  # paid: download it again later, never generate it again
                    outcomes.append(_download_failed(db, job, task, exc, max_downloads))
                    continue
                code, message = exc.code, exc.message
                db.task_output_rejected(task.id, code, message)  # paid, its clip unusable: on the ledger why
            except StorageError as exc:
                outcomes.append(JobOutcome(job.id, name, "in_flight", provider, task_id, error_code=exc.code))
                continue
        code = code or ErrorCode.generation_failed(provider)
        message = message or f"{provider} task {task_id} ended {completion.status}"
        job_tasks = tasks_by_job[job.id]
        remaining = [p for p in chain.after(provider) if p not in _tried_providers(job_tasks)]
        if should_fall_back(code) and remaining:
            photo = storage.get_file(job.photo_key, work_dir / f"{job.id}.jpg")
            request = _build_request(batch, job, photo, storage, _attempt(job_tasks))
            outcomes.append(submit_with_fallback(db, chain, request, remaining, quota=quota and quota.for_batch(batch)))
            continue
        db.fail_job(job.id, code, message)
        outcomes.append(JobOutcome(job.id, name, "failed", provider, task_id, error_code=code, error_message=message))
    return outcomes


def _download_failed(db: AppDatabase, job: Job, task: Task, exc: GenerationError, max_downloads: int) -> JobOutcome:
    """Count the failed downloads of `task`; fail the job once they reach `max_downloads`."""
    total = db.task_download_failed(task.id, getattr(exc, "downloads", 1), f"{exc.code}: {exc.message}")
    provider, task_id = task.provider, task.task_id
    if total < max_downloads:
        return JobOutcome(
            job.id, job.room_name, "in_flight", provider, task_id,
            error_code=ErrorCode.OUTPUT_DOWNLOAD_FAILED, error_message=exc.message,
        )  # fmt: skip
    message = f"the output of {provider} task {task_id} was not downloaded after {total} attempts: {exc.message}"
    db.fail_job(job.id, ErrorCode.OUTPUT_DOWNLOAD_FAILED, message)
    return JobOutcome(
        job.id, job.room_name, "failed", provider, task_id,
        error_code=ErrorCode.OUTPUT_DOWNLOAD_FAILED, error_message=message,
    )  # fmt: skip


def generation_state(db: AppDatabase, batch_id: str) -> tuple[bool, str]:
    """(ready, digest) of one batch: see `pipeline.liveness.completion_state`."""
    ready, digest, _waiting = completion_state(db.generation_rows([batch_id])[batch_id])
    return ready, digest
