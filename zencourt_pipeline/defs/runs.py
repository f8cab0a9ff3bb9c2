"""The Dagster side of a cancel: terminate the runs of canceled batches, and the canceller the HTTP
service calls after it marked jobs canceled (provider tasks through `pipeline/cancel.py`)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import dagster as dg

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.records import Job
from zencourt_pipeline.pipeline.cancel import CancelReport, cancel_provider_tasks
from zencourt_pipeline.providers.chain import ProviderChain

log = logging.getLogger(__name__)

ACTIVE_RUN_STATUSES = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED")


def terminate_batch_runs(instance, batch_ids: list[str]) -> int:
    """Cancel the queued and in-progress runs of these batch partitions."""
    statuses = [dg.DagsterRunStatus[name] for name in ACTIVE_RUN_STATUSES]
    terminated = 0
    for batch_id in batch_ids:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": batch_id}, statuses=statuses))
        for run in runs:
            if instance.run_coordinator.cancel_run(run.run_id):
                terminated += 1
    return terminated


def make_canceller(db: AppDatabase, chain_factory: Callable[[], ProviderChain], instance_factory=None):
    """The callback the HTTP service runs after it marked jobs canceled in the database: it cancels
    the jobs' provider tasks, terminates the batches' runs and reports what it did."""

    def canceller(canceled_jobs: list[Job], batch_ids: list[str]) -> CancelReport:
        chain = chain_factory()
        try:
            report = cancel_provider_tasks(db, chain, canceled_jobs)
        finally:
            chain.close()
        instance = instance_factory() if instance_factory and batch_ids else None
        terminated = terminate_batch_runs(instance, batch_ids) if instance is not None else 0
        log.info(
            "canceled %d provider task(s), %d not stopped yet, terminated %d run(s)",
            len(report.stopped), len(report.unstopped), terminated,
        )
        return dataclasses.replace(report, runs_terminated=terminated)

    return canceller
