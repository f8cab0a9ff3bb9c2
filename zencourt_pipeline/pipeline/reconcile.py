"""The reconciler: ask providers about tasks whose completion has not been recorded.

Runway has no webhooks: polling is how its completions arrive. fal calls back, but a webhook
can be lost: a request whose webhook is overdue is polled, so a lost webhook still completes
its job. Each task is polled no faster than its provider allows (Runway: every 5 s), tracked
in `generation_tasks.last_polled_at` so that the limit holds across ticks and processes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.records import Task
from zencourt_pipeline.pipeline.cancel import cancel_tasks
from zencourt_pipeline.providers.base import GenerationError, TaskRef, TaskStatus
from zencourt_pipeline.providers.chain import ProviderChain
from zencourt_pipeline.providers.rates import PROVIDER, task_cost_usd


@dataclass
class ReconcileReport:
    polled: int = 0
    recorded: int = 0
    errors: int = 0
    canceled: int = 0


def reconcile_tasks(
    db: AppDatabase,
    chain: ProviderChain,
    *,
    webhook_overdue_after: dict[str, timedelta],
    limit_per_provider: int = 20,
    budget_seconds: float = 20.0,
) -> ReconcileReport:
    """Poll awaiting tasks of every polling provider; record the terminal ones as completions."""
    report = ReconcileReport()
    deadline = time.monotonic() + budget_seconds
    # tasks still live at a provider although their job ended (a cancel that failed, a clip that
    # timed out): asked again every tick until the provider confirms, which stops the spend
    report.canceled = len(cancel_tasks(db, chain, db.live_tasks_of_ended_jobs(limit=limit_per_provider)).stopped)
    for name in chain.order:
        generator = chain.get(name)
        if generator.poll_interval_seconds <= 0:  # the local generator finishes inside submit
            continue
        tasks = db.tasks_awaiting_completion(
            provider=name,
            submitted_before=webhook_overdue_after.get(name, timedelta(0)),
            polled_before=timedelta(seconds=generator.poll_interval_seconds),
            limit=limit_per_provider,
        )
        for task in tasks:
            if time.monotonic() > deadline:
                return report
            db.mark_polled(task.id)
            report.polled += 1
            ref = task_ref(task)
            try:
                status = generator.poll(ref)
            except GenerationError:
                report.errors += 1
                continue
            if status.state.terminal:
                record_poll_result(db, task, status, rates=chain.rates)
                report.recorded += 1
            elif status.progress is not None:  # Runway's 0..1: a `job.progress` event when it moved
                db.record_task_progress(task.id, status.progress)
    return report


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
            db.record_task_cost(task.provider, task.task_id, credits=status.cost_credits, cost_usd=cost_usd)
    db.record_completion(
        provider=task.provider,
        task_id=task.task_id,
        status=status.state.value,
        source="poll",
        output_url=status.output_url,
        error_code=status.error_code,
        error_message=status.error_message,
        payload=status.raw,
    )
