"""Cancel in-flight work: provider tasks of canceled jobs, and the Dagster runs of canceled batches."""

from __future__ import annotations

import logging
from collections.abc import Callable

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.records import Job, Task
from zencourt_pipeline.providers.base import GenerationError, TaskRef
from zencourt_pipeline.providers.chain import ProviderChain

log = logging.getLogger(__name__)

ACTIVE_RUN_STATUSES = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED")


def cancel_provider_tasks(db: AppDatabase, chain: ProviderChain, canceled_jobs: list[Job]) -> int:
    """Cancel the accepted, unfinished provider tasks of these jobs; returns how many were stopped."""
    return cancel_tasks(db, chain, db.live_tasks_for_jobs([job.id for job in canceled_jobs]))


def cancel_tasks(db: AppDatabase, chain: ProviderChain, tasks: list[Task]) -> int:
    """Ask each task's provider to cancel it; a confirmed cancel marks the task `canceled`. A
    failed one stays `submitted`, so the reconciler asks again (`live_tasks_of_ended_jobs`)."""
    stopped = 0
    for task in tasks:
        if task.provider not in chain.generators:
            continue
        ref = TaskRef(task.provider, task.task_id, task.meta)
        try:
            chain.get(task.provider).cancel(ref)
        except GenerationError as exc:
            log.warning("cancel of %s task %s failed: %s", task.provider, task.task_id, exc.code)
            continue
        except Exception:  # noqa: BLE001 - one task's failure must not stop the other cancels
            log.exception("cancel of %s task %s failed", task.provider, task.task_id)
            continue
        db.mark_task_canceled(task.id)
        stopped += 1
    return stopped


def terminate_batch_runs(instance, batch_ids: list[str]) -> int:
    """Cancel the queued and in-progress runs of these batch partitions."""
    import dagster as dg

    statuses = [dg.DagsterRunStatus[name] for name in ACTIVE_RUN_STATUSES]
    terminated = 0
    for batch_id in batch_ids:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": batch_id}, statuses=statuses))
        for run in runs:
            if instance.run_coordinator.cancel_run(run.run_id):
                terminated += 1
    return terminated


def make_canceller(db: AppDatabase, chain_factory: Callable[[], ProviderChain], instance_factory=None):
    """The callback the HTTP service runs after it marked jobs canceled in the database."""

    def canceller(canceled_jobs: list[Job], batch_ids: list[str]) -> None:
        chain = chain_factory()
        try:
            asked = cancel_provider_tasks(db, chain, canceled_jobs)
        finally:
            chain.close()
        instance = instance_factory() if instance_factory and batch_ids else None
        terminated = terminate_batch_runs(instance, batch_ids) if instance is not None else 0
        log.info("canceled %d provider task(s), terminated %d run(s)", asked, terminated)

    return canceller
