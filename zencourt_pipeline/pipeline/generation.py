"""Stage 2: submit each job to a provider (at most once per provider), then collect the outputs.

Money rules kept here:
- a task row is written *before* the provider is called and gets its task id as soon as the
  provider answers, so a retried or crashed run sees what it already paid for;
- a job that has a live or finished task is never submitted again;
- a job moves to the next provider only on a failure the fallback policy allows.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from zencourt_pipeline.db.database import AppDatabase, Row, as_utc, utcnow
from zencourt_pipeline.db.schema import TERMINAL_STATUSES
from zencourt_pipeline.pipeline.keys import raw_clip_key
from zencourt_pipeline.providers.base import GenerationError, GenerationRequest, TaskRef, TaskState
from zencourt_pipeline.providers.chain import ProviderChain, default_prompt, job_seed, should_fall_back
from zencourt_pipeline.storage.base import Storage, StorageError

LIVE_TASK_STATUSES = ("submitting", "submitted", "succeeded")
ABANDON_SUBMITTING_AFTER = timedelta(minutes=10)


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


def current_task(tasks: list[Row]) -> Row | None:
    """The job's newest task that the provider accepted (has a task id)."""
    accepted = [task for task in tasks if task["task_id"]]
    return accepted[-1] if accepted else None


def _build_request(batch: Row, job: Row, photo: Path, storage: Storage) -> GenerationRequest:
    return GenerationRequest(
        job_id=job["id"],
        batch_id=batch["id"],
        photo_path=photo,
        prompt=job["prompt"] or default_prompt(job["room_name"]),
        duration_seconds=int(job["duration_seconds"]),
        orientation=batch["orientation"],
        seed=job_seed(job["id"]),
        room_name=job["room_name"],
        photo_https_url=storage.public_https_url(job["photo_key"]),
    )


def submit_with_fallback(
    db: AppDatabase, chain: ProviderChain, request: GenerationRequest, candidates: list[str]
) -> JobOutcome:
    last: GenerationError | None = None
    for name in candidates:
        row_id = db.begin_task(request.job_id, request.batch_id, name)
        started = time.monotonic()
        try:
            submitted = chain.get(name).submit(request)
        except GenerationError as exc:
            db.task_rejected(row_id, exc.code, exc.message)
            last = exc
            if exc.fallback:
                continue
            break
        db.task_submitted(
            row_id,
            request.job_id,
            name,
            submitted.ref.task_id,
            cost=submitted.cost_credits,
            meta=submitted.ref.meta or None,
        )
        return JobOutcome(
            request.job_id,
            request.room_name,
            "submitted",
            provider=name,
            task_id=submitted.ref.task_id,
            seconds=round(time.monotonic() - started, 2),
            cost_credits=submitted.cost_credits,
        )
    code = last.code if last else "GENERATION_FAILED"
    message = last.message if last else "no generation provider left to try"
    db.fail_job(request.job_id, code, message)
    return JobOutcome(request.job_id, request.room_name, "failed", error_code=code, error_message=message)


def _abandon_stale_intents(db: AppDatabase, tasks: list[Row]) -> list[Row]:
    """An intent without a task id older than the window: the run died before the provider answered."""
    kept = []
    for task in tasks:
        stale = (
            task["status"] == "submitting"
            and not task["task_id"]
            and as_utc(task["submitted_at"]) < utcnow() - ABANDON_SUBMITTING_AFTER
        )
        if stale:
            db.task_rejected(task["id"], "ABANDONED", "no provider answer was recorded")
        else:
            kept.append(task)
    return kept


def submit_jobs(
    db: AppDatabase, storage: Storage, chain: ProviderChain, batch: Row, jobs: list[Row], work_dir: Path
) -> list[JobOutcome]:
    outcomes = []
    for job in jobs:
        if job["status"] in TERMINAL_STATUSES or not job["photo_key"]:
            outcomes.append(JobOutcome(job["id"], job["room_name"], "skipped", error_code=job["error_code"]))
            continue
        tasks = _abandon_stale_intents(db, db.tasks_for_job(job["id"]))
        live = [task for task in tasks if task["status"] in LIVE_TASK_STATUSES]
        if live:
            task = live[-1]
            outcomes.append(
                JobOutcome(job["id"], job["room_name"], "existing", provider=task["provider"], task_id=task["task_id"])
            )
            continue
        failed_providers = {task["provider"] for task in tasks}
        candidates = [name for name in chain.order if name not in failed_providers]
        try:
            photo = storage.get_file(job["photo_key"], work_dir / f"{job['id']}.jpg")
        except StorageError as exc:
            db.fail_job(job["id"], exc.code, exc.message)
            outcomes.append(JobOutcome(job["id"], job["room_name"], "failed", error_code=exc.code))
            continue
        outcomes.append(submit_with_fallback(db, chain, _build_request(batch, job, photo, storage), candidates))
    return outcomes


def _completion_from_poll(db: AppDatabase, chain: ProviderChain, task: Row) -> Row | None:
    """Ask the provider about a task whose completion was not recorded (a lost webhook)."""
    ref = TaskRef(task["provider"], task["task_id"], json.loads(task["provider_meta"] or "{}"))
    status = chain.get(task["provider"]).poll(ref)
    if not status.state.terminal:
        return None
    db.record_completion(
        provider=task["provider"],
        task_id=task["task_id"],
        status=status.state.value,
        source="poll",
        output_url=status.output_url,
        error_code=status.error_code,
        error_message=status.error_message,
        payload=status.raw,
    )
    return {
        "status": status.state.value,
        "output_url": status.output_url,
        "error_code": status.error_code,
        "error_message": status.error_message,
    }


def collect_outputs(
    db: AppDatabase,
    storage: Storage,
    chain: ProviderChain,
    batch: Row,
    jobs: list[Row],
    work_dir: Path,
    *,
    poll_missing: bool = True,
) -> list[JobOutcome]:
    """Store every finished output in our storage; fall back or fail the failed ones."""
    completions = {(c["provider"], c["task_id"]): c for c in db.completions_for_batch(batch["id"])}
    tasks_by_job: dict[str, list[Row]] = {}
    for task in db.tasks_for_batch(batch["id"]):
        tasks_by_job.setdefault(task["job_id"], []).append(task)
    outcomes = []
    for job in jobs:
        name = job["room_name"]
        if job["status"] in TERMINAL_STATUSES:
            outcomes.append(JobOutcome(job["id"], name, "skipped", error_code=job["error_code"]))
            continue
        task = current_task(tasks_by_job.get(job["id"], []))
        if job["raw_clip_key"] and storage.exists(job["raw_clip_key"]):
            outcomes.append(JobOutcome(job["id"], name, "stored", task and task["provider"], task and task["task_id"]))
            continue
        if task is None:
            outcomes.append(JobOutcome(job["id"], name, "in_flight"))
            continue
        provider, task_id = task["provider"], task["task_id"]
        completion = completions.get((provider, task_id))
        if completion is None and poll_missing:
            try:
                completion = _completion_from_poll(db, chain, task)
            except GenerationError:
                completion = None
        if completion is None:
            outcomes.append(JobOutcome(job["id"], name, "in_flight", provider, task_id))
            continue
        code, message = completion["error_code"], completion["error_message"]
        if completion["status"] == TaskState.SUCCEEDED.value:
            try:
                ref = TaskRef(provider, task_id, json.loads(task["provider_meta"] or "{}"))
                local = chain.get(provider).fetch_result(ref, work_dir / f"{job['id']}.raw.mp4", completion["output_url"])
                key = raw_clip_key(batch["id"], job["id"])
                storage.put_file(key, local, "video/mp4")
                db.update_job(job["id"], raw_clip_key=key)
                outcomes.append(JobOutcome(job["id"], name, "stored", provider, task_id, cost_credits=task["cost_credits"]))
                continue
            except GenerationError as exc:
                code, message = exc.code, exc.message
            except StorageError as exc:
                outcomes.append(JobOutcome(job["id"], name, "in_flight", provider, task_id, error_code=exc.code))
                continue
        code = code or f"{provider.upper()}_GENERATION_FAILED"
        message = message or f"{provider} task {task_id} ended {completion['status']}"
        remaining = [p for p in chain.after(provider) if p not in {t["provider"] for t in tasks_by_job[job["id"]]}]
        if should_fall_back(code) and remaining:
            photo = storage.get_file(job["photo_key"], work_dir / f"{job['id']}.jpg")
            request = _build_request(batch, job, photo, storage)
            outcomes.append(submit_with_fallback(db, chain, request, remaining))
            continue
        db.fail_job(job["id"], code, message)
        outcomes.append(JobOutcome(job["id"], name, "failed", provider, task_id, error_code=code, error_message=message))
    return outcomes


def generation_state(db: AppDatabase, batch_id: str) -> tuple[bool, str]:
    """(ready, digest): every live job has a recorded completion for its current task.

    The digest changes whenever a new completion or job state arrives, so the completions
    sensor's run key asks for one collection run per distinct state.
    """
    jobs = db.get_jobs(batch_id)
    completions = {(c["provider"], c["task_id"]): c["id"] for c in db.completions_for_batch(batch_id)}
    tasks_by_job: dict[str, list[Row]] = {}
    for task in db.tasks_for_batch(batch_id):
        tasks_by_job.setdefault(task["job_id"], []).append(task)
    ready = True
    parts = []
    for job in jobs:
        task = current_task(tasks_by_job.get(job["id"], []))
        completion_id = completions.get((task["provider"], task["task_id"])) if task else None
        parts.append(f"{job['id']}:{job['status']}:{completion_id}")
        if job["status"] in TERMINAL_STATUSES or job["raw_clip_key"]:
            continue
        if completion_id is None:
            ready = False
    digest = hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]
    return ready, digest
