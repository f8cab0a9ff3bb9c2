"""Cancel in-flight provider work: the tasks of canceled jobs (the Dagster runs of canceled batches:
`defs/runs.py`).

A cancel never fails silently: every task it could not stop is reported (the HTTP cancel answer
lists it) and stays `submitted`, so the reconciler asks its provider again every tick
(`db.liveness.live_tasks_of_ended_jobs`) until the provider confirms or the task ends."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.liveness import LivenessRepository
from zencourt_pipeline.db.records import Job, Task
from zencourt_pipeline.domain import provider_spec
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.providers.base import GenerationError, TaskRef
from zencourt_pipeline.providers.chain import ProviderChain

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UnstoppedTask:
    """A live provider task whose cancel was not confirmed (yet): the reconciler retries it."""

    task: Task
    error_code: ErrorCode
    error: str


@dataclass(frozen=True, slots=True)
class CancelReport:
    """What a cancel did: provider tasks confirmed stopped, tasks not stopped yet, and (the
    service's canceller) the Dagster runs of canceled batches it terminated."""

    stopped: list[Task] = field(default_factory=list)
    unstopped: list[UnstoppedTask] = field(default_factory=list)
    runs_terminated: int = 0


def cancel_provider_tasks(db: AppDatabase, chain: ProviderChain, canceled_jobs: list[Job]) -> CancelReport:
    """Cancel the accepted, unfinished provider tasks of these jobs."""
    return cancel_tasks(db.liveness, chain, db.ledger.live_tasks_for_jobs([job.id for job in canceled_jobs]))


def unstopped(tasks: list[Task], error: str) -> list[UnstoppedTask]:
    """These live tasks, reported as not stopped for one reason (a cancel that could not run at all)."""
    return [UnstoppedTask(task, cancel_failed_code(task.provider), error) for task in tasks]


def cancel_failed_code(provider: str) -> ErrorCode:
    """The provider's cancel-failed code (`RUNWAY_CANCEL_FAILED`, `FAL_CANCEL_FAILED`)."""
    spec = provider_spec(provider)  # the registry's (domain.PROVIDERS)
    return spec.cancel_failed_code if spec is not None else ErrorCode.GENERATION_FAILED


def cancel_tasks(liveness: LivenessRepository, chain: ProviderChain, tasks: list[Task]) -> CancelReport:
    """Ask each task's provider to cancel it; a confirmed cancel marks the task `canceled`. A
    failed one stays `submitted` and is reported, so the reconciler asks again."""
    report = CancelReport()
    for task in tasks:
        if task.provider not in chain.generators:
            log.warning("cancel of %s task %s: provider not configured here", task.provider, task.task_id)
            report.unstopped.extend(unstopped([task], f"provider {task.provider!r} is not configured"))
            continue
        ref = TaskRef(task.provider, task.task_id, task.meta)
        try:
            chain.get(task.provider).cancel(ref)
        except GenerationError as exc:
            log.warning("cancel of %s task %s failed: %s", task.provider, task.task_id, exc.code)
            report.unstopped.append(UnstoppedTask(task, exc.code, exc.message))
            continue
        except Exception as exc:  # noqa: BLE001 - one task's failure must not stop the other cancels
            log.exception("cancel of %s task %s failed", task.provider, task.task_id)
            report.unstopped.extend(unstopped([task], f"{type(exc).__name__}: {exc}"))
            continue
        liveness.mark_task_canceled(task.id)
        report.stopped.append(task)
    return report
