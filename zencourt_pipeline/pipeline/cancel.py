"""Cancel in-flight provider work: the tasks of canceled jobs (the Dagster runs of canceled batches:
`defs/runs.py`)."""

from __future__ import annotations

import logging

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.records import Job, Task
from zencourt_pipeline.providers.base import GenerationError, TaskRef
from zencourt_pipeline.providers.chain import ProviderChain

log = logging.getLogger(__name__)


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
