"""The reconciler: ask providers about tasks whose completion has not been recorded.

Runway has no webhooks: polling is how its completions arrive. fal calls back, but a webhook
can be lost: a request whose webhook is overdue is polled, so a lost webhook still completes
its job. Each task is polled no faster than its provider allows (Runway: every 5 s), tracked
in `generation_tasks.last_polled_at` so that the limit holds across ticks and processes.

A tick polls up to 200 tasks per provider, 16 at a time on the provider's one client
(`providers.polling`), and records the answers on its own thread: with `n` tasks in flight a
tick takes about `n / 16` round trips (300 Runway tasks at 0.2 s: ~4 s), so each task is still
asked about every 5 s loop until `n` passes ~200 per provider, and past that every
`n / 200` loops: the poll cycle grows with the tasks in flight divided by 200, not by 20.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.records import Task
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.pipeline.cancel import cancel_tasks
from zencourt_pipeline.providers.base import GenerationError, TaskRef, TaskStatus, VideoGenerator
from zencourt_pipeline.providers.chain import ProviderChain
from zencourt_pipeline.providers.polling import DEFAULT_POLL_WORKERS, poll_tasks
from zencourt_pipeline.providers.rates import PROVIDER, task_cost_usd


@dataclass
class ReconcileReport:
    polled: int = 0
    recorded: int = 0
    errors: int = 0
    canceled: int = 0
    intents_given_up: int = 0
    linked: int = 0


# a create still unanswered this long after it began has no run waiting for its answer any more
# (the providers' create timeouts are at most 60 s)
INTENT_ANSWER_WINDOW = timedelta(minutes=2)


def reconcile_tasks(
    db: AppDatabase,
    chain: ProviderChain,
    *,
    webhook_overdue_after: dict[str, timedelta],
    limit_per_provider: int = 200,
    budget_seconds: float = 20.0,
    poll_workers: int = DEFAULT_POLL_WORKERS,
    is_run_active: Callable[[str], bool] | None = None,
) -> ReconcileReport:
    """Poll awaiting tasks of every polling provider, up to `poll_workers` polls in flight per
    provider (`providers.polling`); record the terminal ones as completions."""
    report = ReconcileReport()
    deadline = time.monotonic() + budget_seconds
    # tasks still live at a provider although their job ended (a cancel that failed, a clip that
    # timed out): asked again every tick until the provider confirms, which stops the spend
    report.canceled = len(cancel_tasks(db.liveness, chain, db.liveness.live_tasks_of_ended_jobs(limit=limit_per_provider)).stopped)
    report.intents_given_up = give_up_intents_of_ended_jobs(db, chain, limit=limit_per_provider, is_run_active=is_run_active)
    # completions a webhook recorded before their task's id was persisted, never linked (db/completions.py)
    report.linked = db.completions.link_completions()
    for name in chain.order:
        generator = chain.get(name)
        if generator.poll_interval_seconds <= 0:  # the local generator finishes inside submit
            continue
        if time.monotonic() > deadline:
            break
        tasks = db.ledger.tasks_awaiting_completion(
            provider=name,
            submitted_before=webhook_overdue_after.get(name, timedelta(0)),
            polled_before=timedelta(seconds=generator.poll_interval_seconds),
            limit=limit_per_provider,
        )
        _poll_and_record(db, chain, generator, tasks, report, deadline=deadline, workers=poll_workers)
    return report


def _poll_and_record(
    db: AppDatabase, chain: ProviderChain, generator: VideoGenerator, tasks: list[Task], report: ReconcileReport,
    *, deadline: float, workers: int,
) -> None:
    """Poll `tasks` at `generator` concurrently (stamped polled first, so another process's tick
    leaves them alone), recording each answer on this thread as it arrives. The ones the tick's
    deadline left unpolled get their stamp cleared, so the next tick polls them first."""
    db.ledger.mark_polled([task.id for task in tasks])
    by_id = {task.task_id: task for task in tasks}
    unpolled = {task.id for task in tasks}
    for ref, answer in poll_tasks(generator, [task_ref(task) for task in tasks], workers=workers, deadline=deadline):
        report.polled += 1
        task = by_id[ref.task_id]
        unpolled.discard(task.id)
        if isinstance(answer, GenerationError):
            report.errors += 1
        elif answer.state.terminal:
            record_poll_result(db, task, answer, rates=chain.rates)
            report.recorded += 1
        elif answer.progress is not None:  # Runway's 0..1: a `job.progress` event when it moved
            db.events.record_task_progress(task.id, answer.progress)
    db.ledger.mark_polled(sorted(unpolled), polled=False)


def give_up_intents_of_ended_jobs(
    db: AppDatabase, chain: ProviderChain, *, limit: int = 20, older_than: timedelta = INTENT_ANSWER_WINDOW,
    is_run_active: Callable[[str], bool] | None = None,
) -> int:
    """Creates of ended jobs that were never answered (a cancel terminated the run mid-create, a
    kill): ambiguous creates, kept as possibly paid with their estimated cost (the job's run will
    not come back to them). Given up once the run that made them has finished (`is_run_active`),
    or `older_than` after they began. Returns how many."""
    candidates = db.liveness.intents_of_ended_jobs(timedelta(0), limit=limit)
    old = {task.id for task in db.liveness.intents_of_ended_jobs(older_than, limit=limit)}
    intents = [
        task for task in candidates
        if task.id in old or (is_run_active is not None and task.meta.get("intent_run_id")
                              and not is_run_active(task.meta["intent_run_id"]))
    ]  # fmt: skip
    for task in intents:
        job = db.batches.get_job(task.job_id)
        duration = int(job.duration_seconds) if job is not None and job.duration_seconds else 5
        cost_usd, cost_source = chain.task_cost(task.provider, None, duration)
        db.ledger.task_answer_lost(
            task.id, ErrorCode.PROVIDER_ANSWER_LOST,
            "the job ended while its create was unanswered (its run stopped mid-create): the create may have "
            "reached the provider (and be paid); its task is unknown",
            cost_usd=cost_usd, cost_source=cost_source,
        )  # fmt: skip
    return len(intents)


def task_ref(task: Task) -> TaskRef:
    """The provider reference (provider, task id, meta) of a stored task, for polling or canceling it."""
    return TaskRef(task.provider, task.task_id, task.meta)


def record_poll_result(
    db: AppDatabase, task: Task, status: TaskStatus, *, rates: Mapping[str, Any] | None = None
) -> None:
    """A terminal status learned by polling goes down the same path as a webhook; the cost the
    provider reports on a finished task (Runway's credits, converted at `rates`, the chain's
    table) replaces the rate-table estimate."""
    if status.cost_credits is not None:
        model = task.meta.get("model")
        cost_usd, source = task_cost_usd(task.provider, model, 0, status.cost_credits, rates=rates)
        if source == PROVIDER:
            db.ledger.record_task_cost(task.provider, task.task_id, credits=status.cost_credits, cost_usd=cost_usd)
    db.completions.record_completion(
        provider=task.provider,
        task_id=task.task_id,
        status=status.state.value,
        source="poll",
        output_url=status.output_url,
        error_code=status.error_code,
        error_message=status.error_message,
        payload=status.raw,
    )
