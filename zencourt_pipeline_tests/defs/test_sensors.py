"""The two sensors, evaluated with build_sensor_context against a real (temporary) instance."""

from __future__ import annotations

from collections import Counter

import dagster as dg
import pytest

from zencourt_pipeline.defs.jobs import batch_intake_job
from zencourt_pipeline.defs.partitions import batch_partitions
from zencourt_pipeline.defs.resources import AppDatabaseResource, GeneratorsResource, PipelineSettingsResource
from zencourt_pipeline.defs.sensors import clip_completions_sensor, intake_failures, pending_batches_sensor
from zencourt_pipeline.pipeline.liveness import RunEnd
from zencourt_pipeline_tests.conftest import make_batch


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def tick(sensor, instance, url):
    resources = {"app_db": AppDatabaseResource(database_url=url), "pipeline_settings": PipelineSettingsResource(),
                 "generators": GeneratorsResource(providers=["local"])}  # the completions sensor polls first
    with dg.build_sensor_context(instance=instance, resources=resources) as context:  # generators: a lifecycle
        result = sensor(context)
    # build_sensor_context does not apply partition requests: do what the daemon does
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def test_each_pending_batch_is_picked_up_exactly_once_across_ticks(instance, sqlite_db, sqlite_url):
    sqlite_db.batches.insert_batch(*make_batch("batch-a"))
    first = tick(pending_batches_sensor, instance, sqlite_url)
    assert [(r.partition_key, r.run_key) for r in first.run_requests] == [("batch-a", "intake-batch-a")]
    assert [list(r.partition_keys) for r in first.dynamic_partitions_requests] == [["batch-a"]]

    sqlite_db.batches.insert_batch(*make_batch("batch-b"))
    sqlite_db.batches.insert_batch(*make_batch("batch-c"))
    second = tick(pending_batches_sensor, instance, sqlite_url)
    assert sorted(r.partition_key for r in second.run_requests) == ["batch-b", "batch-c"]

    third = tick(pending_batches_sensor, instance, sqlite_url)
    assert third.run_requests == [] and third.skip_reason is not None
    assert sorted(instance.get_dynamic_partitions(batch_partitions.name)) == ["batch-a", "batch-b", "batch-c"]


def test_only_new_partition_keys_are_sent(instance, sqlite_db, sqlite_url):
    instance.add_dynamic_partitions(batch_partitions.name, ["again"])
    sqlite_db.batches.insert_batch(*make_batch("again"))
    result = tick(pending_batches_sensor, instance, sqlite_url)
    assert [r.partition_key for r in result.run_requests] == ["again"]
    assert result.dynamic_partitions_requests == []


def _submitted(db, batch_id, job_id, task_id):
    row = db.ledger.begin_task(job_id, batch_id, "fal")
    db.ledger.task_submitted(row, job_id, "fal", task_id)


def test_completions_sensor_requests_one_compose_run_per_completion_state(instance, sqlite_db, sqlite_url):
    sqlite_db.batches.insert_batch(*make_batch("gen", n_jobs=2))
    sqlite_db.batches.start_batch("gen")
    _submitted(sqlite_db, "gen", "gen-0", "r0")
    _submitted(sqlite_db, "gen", "gen-1", "r1")
    assert tick(clip_completions_sensor, instance, sqlite_url).run_requests == []

    sqlite_db.completions.record_completion(provider="fal", task_id="r0", status="succeeded", source="webhook")
    assert tick(clip_completions_sensor, instance, sqlite_url).run_requests == []  # one still running

    sqlite_db.completions.record_completion(provider="fal", task_id="r1", status="succeeded", source="webhook")
    ready = tick(clip_completions_sensor, instance, sqlite_url).run_requests
    assert [r.partition_key for r in ready] == ["gen"]
    # the same state asks with the same run key: the daemon launches it once
    again = tick(clip_completions_sensor, instance, sqlite_url).run_requests
    assert [r.run_key for r in again] == [ready[0].run_key]
    # a duplicate webhook changes nothing, so not the key either
    sqlite_db.completions.record_completion(provider="fal", task_id="r1", status="succeeded", source="webhook")
    assert tick(clip_completions_sensor, instance, sqlite_url).run_requests[0].run_key == ready[0].run_key


def test_completions_sensor_ignores_finished_batches(instance, sqlite_db, sqlite_url):
    sqlite_db.batches.insert_batch(*make_batch("done", n_jobs=1))
    sqlite_db.batches.start_batch("done")
    sqlite_db.batches.finish_batch("done", "completed")
    assert tick(clip_completions_sensor, instance, sqlite_url).run_requests == []


def test_a_batch_id_unsafe_as_a_partition_key_is_rejected_before_it_becomes_one(instance, sqlite_db, sqlite_url):
    sqlite_db.batches.insert_batch(*make_batch("bad,id|x"))
    sqlite_db.batches.insert_batch(*make_batch("good-id"))
    result = tick(pending_batches_sensor, instance, sqlite_url)
    assert [r.partition_key for r in result.run_requests] == ["good-id"]
    assert instance.get_dynamic_partitions(batch_partitions.name) == ["good-id"]
    batch = sqlite_db.batches.get_batch("bad,id|x")
    assert batch.status == "failed" and batch.error.startswith("INVALID_INPUT: batch id")
    assert {job.status for job in sqlite_db.batches.get_jobs("bad,id|x")} == {"failed"}


def test_intake_failures_tell_interrupted_runs_from_failed_ones(instance):
    """A run stopped by the infrastructure (run monitoring records no reason for a dead worker)
    spends from the larger budget; a run whose step failed, or that raised, spends an attempt."""
    from dagster._core.storage.dagster_run import DagsterRunStatus

    from zencourt_pipeline.definitions import defs

    job = defs().resolve_job_def(batch_intake_job.name)
    reasons = ["RUN_WORKER_RESTART", "START_TIMEOUT", None, "STEP_FAILURE", "RUN_EXCEPTION"]
    for reason in reasons:
        tags = {"zencourt/batch_id": "fb"} | ({"dagster/failure_reason": reason} if reason else {})
        instance.create_run_for_job(job, tags=tags, status=DagsterRunStatus.FAILURE)
    instance.create_run_for_job(job, tags={"zencourt/batch_id": "other"}, status=DagsterRunStatus.FAILURE)
    instance.create_run_for_job(job, tags={"zencourt/batch_id": "fb"}, status=DagsterRunStatus.SUCCESS)
    assert intake_failures(instance, "fb") == Counter({RunEnd.INTERRUPTED: 3, RunEnd.FAILED: 2})


@dg.op
def _noop() -> None:
    pass


@dg.job
def _stand_in_job() -> None:
    _noop()


def test_a_claim_whose_run_request_was_lost_is_requested_again_and_one_whose_run_exists_is_not(
    instance, sqlite_db, sqlite_url
):
    """The daemon can die between the sensor's claim (committed) and the run's creation: the soak
    caught a batch left pending. After RECLAIM_AFTER the batch is offered again and its intake run is
    requested again, unless a run with that key exists (then it only waits in the run queue)."""
    import sqlalchemy as sa

    from zencourt_pipeline.db.clock import utcnow
    from zencourt_pipeline.db.pickup import RECLAIM_AFTER
    from zencourt_pipeline.db.schema import video_gen_batch
    from zencourt_pipeline.defs.sensors import RUN_KEY_TAG

    def age_claims() -> None:
        with sqlite_db.db.transaction() as conn:
            conn.execute(sa.update(video_gen_batch).values(claimed_at=utcnow() - RECLAIM_AFTER * 2))

    sqlite_db.batches.insert_batch(*make_batch("lost"))
    sqlite_db.batches.insert_batch(*make_batch("queued"))
    first = tick(pending_batches_sensor, instance, sqlite_url)  # the daemon dies: no run is created
    assert sorted(r.run_key for r in first.run_requests) == ["intake-lost", "intake-queued"]
    instance.create_run_for_job(_stand_in_job, tags={RUN_KEY_TAG: "intake-queued"})  # this one landed
    assert tick(pending_batches_sensor, instance, sqlite_url).run_requests == []  # within the window
    age_claims()
    again = tick(pending_batches_sensor, instance, sqlite_url)
    assert [(r.partition_key, r.run_key) for r in again.run_requests] == [("lost", "intake-lost")]


def test_a_retried_intake_is_left_to_the_failure_sensor_within_its_window(instance, sqlite_db, sqlite_url):
    """`retry_intake` bumps the attempt (and claims the batch) before the failure sensor's run
    exists: the pending sensor must not request that same new key meanwhile (two intake runs would
    submit every clip twice: the CI soak caught one paid twice). Only past RETRY_RECLAIM_AFTER."""
    import sqlalchemy as sa

    from zencourt_pipeline.db.clock import utcnow
    from zencourt_pipeline.db.pickup import RECLAIM_AFTER, RETRY_RECLAIM_AFTER
    from zencourt_pipeline.db.schema import video_gen_batch

    def claimed_ago(age) -> None:
        with sqlite_db.db.transaction() as conn:
            conn.execute(sa.update(video_gen_batch).values(claimed_at=utcnow() - age))

    sqlite_db.batches.insert_batch(*make_batch("retried"))
    tick(pending_batches_sensor, instance, sqlite_url)  # its first intake run: it fails, say
    assert sqlite_db.liveness.retry_intake("retried") == 1  # the failure sensor's retry, run not created yet
    claimed_ago(RECLAIM_AFTER * 2)
    assert tick(pending_batches_sensor, instance, sqlite_url).run_requests == []
    claimed_ago(RETRY_RECLAIM_AFTER + RECLAIM_AFTER)  # that request was lost too: offered again
    again = tick(pending_batches_sensor, instance, sqlite_url)
    assert [r.run_key for r in again.run_requests] == ["intake-retried-a2"]
