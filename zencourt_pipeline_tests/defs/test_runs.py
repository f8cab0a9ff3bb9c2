"""Cancel orchestration: a canceled batch's queued runs are canceled, other batches' are not."""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.dagster_run import DagsterRun

from zencourt_pipeline.defs.runs import terminate_batch_runs


def _queued_run(instance, partition: str) -> str:
    from dagster._core.remote_origin import (
        GrpcServerCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )

    origin = RemoteJobOrigin(
        RemoteRepositoryOrigin(GrpcServerCodeLocationOrigin(host="localhost", port=4000, location_name="zc"), "__repository__"),
        "batch_intake_job",
    )
    run = DagsterRun(job_name="batch_intake_job", status=dg.DagsterRunStatus.QUEUED,
                     tags={"dagster/partition": partition}, remote_job_origin=origin)
    instance.add_run(run)
    return run.run_id


def test_terminate_batch_runs_cancels_only_that_batches_active_runs():
    overrides = {"run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"}}
    with dg.instance_for_test(overrides=overrides) as instance:
        target = _queued_run(instance, "batch-x")
        other = _queued_run(instance, "batch-y")
        assert terminate_batch_runs(instance, ["batch-x"]) == 1
        assert instance.get_run_by_id(target).status == dg.DagsterRunStatus.CANCELED
        assert instance.get_run_by_id(other).status == dg.DagsterRunStatus.QUEUED
        assert terminate_batch_runs(instance, ["batch-x"]) == 0  # nothing active is left
