"""Stage 2, second half: collect the finished outputs of a batch's provider tasks into our storage.

A finished task is paid: when its output does not download, it is downloaded again (fresh URL)
on the next collect, never generated again; the failed downloads are counted on the task and past
`max_download_attempts` the job fails OUTPUT_DOWNLOAD_FAILED. Only an output that arrived
complete and was not a valid MP4 twice (the provider's bad output, INVALID_OUTPUT on its row)
moves the job to the next provider: a second, counted payment. A failed task falls back as
the fallback policy allows (`pipeline.generation.submit_with_fallback`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.records import (
    Batch,
    CompletionRecord,
    GenerationTaskStatus,
    Job,
    Task,
    current_task,
)
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.pipeline.generation import (
    DEFAULT_MAX_DOWNLOAD_ATTEMPTS,
    JobOutcome,
    SubmissionOutcome,
    build_request,
    generation_attempt,
    submit_with_fallback,
    tried_providers,
)
from zencourt_pipeline.pipeline.keys import raw_clip_key
from zencourt_pipeline.pipeline.quota import QuotaLimits
from zencourt_pipeline.pipeline.reconcile import record_poll_result, task_ref
from zencourt_pipeline.providers.base import GenerationError, TaskRef, TaskState
from zencourt_pipeline.providers.chain import ProviderChain, should_fall_back
from zencourt_pipeline.storage.base import Storage, StorageError


@dataclass(frozen=True)
class PolledCompletion:
    """What a poll learned of a task whose completion was not recorded: read like a `CompletionRecord`."""

    status: GenerationTaskStatus
    output_url: str | None = None
    error_code: ErrorCode | None = None
    error_message: str | None = None


def _completion_from_poll(db: AppDatabase, chain: ProviderChain, task: Task) -> PolledCompletion | None:
    """Ask the provider about a task whose completion was not recorded (a lost webhook)."""
    status = chain.get(task.provider).poll(task_ref(task))
    if not status.state.terminal:
        if status.progress is not None:
            db.events.record_task_progress(task.id, status.progress)
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
    tasks_by_job: dict[str, list[Task]] = {}
    for task in db.ledger.tasks_for_batch(batch.id):
        tasks_by_job.setdefault(task.job_id, []).append(task)
    collect = _Collect(
        db, storage, chain, batch, work_dir, quota, max(1, max_download_attempts), poll_missing,
        {(c.provider, c.task_id): c for c in db.completions.completions_for_batch(batch.id)}, tasks_by_job,
    )  # fmt: skip
    return [collect.job(job) for job in jobs]


@dataclass
class _Collect:
    """One collect over a batch: what every job's turn reads."""

    db: AppDatabase
    storage: Storage
    chain: ProviderChain
    batch: Batch
    work_dir: Path
    quota: QuotaLimits | None
    max_downloads: int
    poll_missing: bool
    completions: dict[tuple[str, str], CompletionRecord]
    tasks_by_job: dict[str, list[Task]]

    def job(self, job: Job) -> JobOutcome:
        """The job's output stored, or why not: in flight, failed, fallen back, skipped."""
        name = job.room_name
        if job.terminal:
            return JobOutcome(job.id, name, SubmissionOutcome.SKIPPED, error_code=job.error_code)
        task = current_task(self.tasks_by_job.get(job.id, []))
        if job.raw_clip_key and self.storage.exists(job.raw_clip_key):
            return JobOutcome(job.id, name, SubmissionOutcome.STORED, task and task.provider, task and task.task_id)
        if task is None:
            return JobOutcome(job.id, name, SubmissionOutcome.IN_FLIGHT)
        completion = self._completion(task)
        if completion is None:
            return JobOutcome(job.id, name, SubmissionOutcome.IN_FLIGHT, task.provider, task.task_id)
        code, message = completion.error_code, completion.error_message
        if completion.status == TaskState.SUCCEEDED:
            stored = self._store(job, task, completion)
            if isinstance(stored, JobOutcome):
                return stored
            code, message = stored
        code = code or ErrorCode.generation_failed(task.provider)
        message = message or f"{task.provider} task {task.task_id} ended {completion.status}"
        return self._fall_back_or_fail(job, task, code, message)

    def _completion(self, task: Task) -> CompletionRecord | PolledCompletion | None:
        completion = self.completions.get((task.provider, task.task_id))
        if completion is None and self.poll_missing:
            try:
                return _completion_from_poll(self.db, self.chain, task)
            except GenerationError:
                return None
        return completion

    def _store(self, job: Job, task: Task, completion: CompletionRecord | PolledCompletion) -> JobOutcome | tuple[ErrorCode, str]:
        """Download the finished output into our storage; the provider's bad output is (code, message)."""
        provider, task_id = task.provider, task.task_id
        try:
            ref = TaskRef(provider, task_id, task.meta)
            # the recorded URL the first time; after a failed download, a fresh one
            url = completion.output_url if not task.download_attempts else None
            local = self.chain.get(provider).fetch_result(ref, self.work_dir / f"{job.id}.raw.mp4", url)
            key = raw_clip_key(self.batch.id, job.id)
            self.storage.put_file(key, local, "video/mp4")
            self.db.batches.update_job(job.id, raw_clip_key=key)
            return JobOutcome(job.id, job.room_name, SubmissionOutcome.STORED, provider, task_id, cost_credits=task.cost_credits)
        except GenerationError as exc:
            if exc.download_failed:  # paid: download it again later, never generate it again
                return _download_failed(self.db, job, task, exc, self.max_downloads)
            self.db.ledger.task_output_rejected(task.id, exc.code, exc.message)  # paid, its clip unusable: on the ledger why
            return exc.code, exc.message
        except StorageError as exc:
            return JobOutcome(job.id, job.room_name, SubmissionOutcome.IN_FLIGHT, provider, task_id, error_code=exc.code)

    def _lost_fallback_creates(self, job: Job, task: Task, job_tasks: list[Task]) -> list[Task]:
        """Creates to a later provider that were never answered (a run died mid-create): kept as
        possibly paid (an intent of a run that is gone is given up now), never re-sent."""
        later = set(self.chain.after(task.provider))
        lost = [t for t in job_tasks if t.provider in later and _unanswered(t)]
        for intent in lost:
            if intent.status == GenerationTaskStatus.SUBMITTING:
                cost_usd, cost_source = self.chain.task_cost(intent.provider, None, int(job.duration_seconds or 5))
                self.db.ledger.task_answer_lost(
                    intent.id, ErrorCode.PROVIDER_ANSWER_LOST,
                    "the run submitting this fallback ended before the provider answered: not re-sent",
                    cost_usd=cost_usd, cost_source=cost_source,
                )  # fmt: skip
        return lost

    def _fall_back_or_fail(self, job: Job, task: Task, code: ErrorCode, message: str) -> JobOutcome:
        job_tasks = self.tasks_by_job[job.id]
        remaining = [p for p in self.chain.after(task.provider) if p not in tried_providers(job_tasks)]
        if should_fall_back(code) and remaining:
            photo = self.storage.get_file(job.photo_key, self.work_dir / f"{job.id}.jpg")
            request = build_request(self.batch, job, photo, self.storage, generation_attempt(job_tasks))
            quota = self.quota and self.quota.for_batch(self.batch)
            return submit_with_fallback(self.db, self.chain, request, remaining, quota=quota)
        lost = self._lost_fallback_creates(job, task, job_tasks)
        if lost:  # the job already fell back, and that create's answer never came: that is why it ends
            code = ErrorCode.PROVIDER_ANSWER_LOST
            message = f"the fallback create to {lost[-1].provider} may have reached it (and be paid): not re-sent"
        self.db.batches.fail_job(job.id, code, message)
        return JobOutcome(job.id, job.room_name, SubmissionOutcome.FAILED, task.provider, task.task_id, error_code=code, error_message=message)


def _download_failed(db: AppDatabase, job: Job, task: Task, exc: GenerationError, max_downloads: int) -> JobOutcome:
    """Count the failed downloads of `task`; fail the job once they reach `max_downloads`."""
    total = db.ledger.task_download_failed(task.id, getattr(exc, "downloads", 1), f"{exc.code}: {exc.message}")
    provider, task_id = task.provider, task.task_id
    if total < max_downloads:
        return JobOutcome(
            job.id, job.room_name, SubmissionOutcome.IN_FLIGHT, provider, task_id,
            error_code=ErrorCode.OUTPUT_DOWNLOAD_FAILED, error_message=exc.message,
        )  # fmt: skip
    message = f"the output of {provider} task {task_id} was not downloaded after {total} attempts: {exc.message}"
    db.batches.fail_job(job.id, ErrorCode.OUTPUT_DOWNLOAD_FAILED, message)
    return JobOutcome(
        job.id, job.room_name, SubmissionOutcome.FAILED, provider, task_id,
        error_code=ErrorCode.OUTPUT_DOWNLOAD_FAILED, error_message=message,
    )  # fmt: skip


def _unanswered(task: Task) -> bool:
    return not task.task_id and task.status != GenerationTaskStatus.SUPERSEDED and (
        task.possibly_orphaned or task.status == GenerationTaskStatus.SUBMITTING
    )
