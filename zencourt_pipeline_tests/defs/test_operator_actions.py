"""Operator actions on one batch partition: a blocking clip check stops composition and says why;
regenerating named jobs re-submits exactly those; refusals that keep money safe."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from zencourt_pipeline.defs.assets import pipeline_assets
from zencourt_pipeline.defs.resources import AppDatabaseResource, GeneratorsResource, PipelineSettingsResource
from zencourt_pipeline.defs.sensors import clip_completions_sensor
from zencourt_pipeline.media.ffmpeg import run_ffmpeg
from zencourt_pipeline.pipeline.generation import generation_state
from zencourt_pipeline_tests.defs.conftest import insert_batch_with_photos

INTAKE = ["listing_photos", "clip_tasks"]
COMPOSE = ["generated_clips", "normalized_clips", "composed_video"]


def run(selection, batch_id, instance, resources, run_config=None):
    return dg.materialize(
        pipeline_assets, selection=selection, partition_key=batch_id, instance=instance, resources=resources,
        run_config=run_config, raise_on_error=False,
    )


def regenerate(job_ids):
    return {"ops": {"clip_tasks": {"config": {"regenerate_job_ids": job_ids}}}}


def materialized(result):
    return {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}


def black_out(output_url: str) -> None:
    """What a provider glitch looks like: the rendered clip is replaced by a black one."""
    path = Path(output_url.removeprefix("file://"))
    run_ffmpeg(
        ["-f", "lavfi", "-i", "color=c=black:size=1280x720:rate=30:duration=2", "-c:v", "libx264",
         "-pix_fmt", "yuv420p", str(path)]
    )


def test_a_black_clip_stops_composition_and_regenerating_only_it_finishes_the_batch(
    instance, resources, tmp_path, generator_calls, sqlite_url
):
    db, storage = resources["app_db"].get(), resources["storage"].get()
    insert_batch_with_photos(db, storage, tmp_path, "b-op", [None, None, None])
    instance.add_dynamic_partitions("batches", ["b-op"])
    assert run(INTAKE, "b-op", instance, resources).success
    assert sorted(generator_calls) == ["b-op-0", "b-op-1", "b-op-2"]
    [glitch] = [c for c in db.completions.completions_for_batch("b-op") if c.job_id == "b-op-1"]
    black_out(glitch.output_url)

    # 1. the blocking check stops composition of the batch and says why
    blocked = run(COMPOSE, "b-op", instance, resources)
    assert not blocked.success
    assert materialized(blocked) == {"generated_clips", "normalized_clips"}  # composed_video never ran
    [failure] = [e for e in blocked.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == "normalized_clips"
    assert "blocking asset check failed" in failure.event_specific_data.error.message
    [check] = [e for e in blocked.get_asset_check_evaluations() if e.check_name == "clips_usable"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "b-op-1 (Room 1): black (100% of sampled frames); frozen" in check.description
    assert "b-op-0" not in check.description and "b-op-2" not in check.description
    assert check.metadata["failing_jobs"].value == "b-op-1"
    # the batch shows why it waits (status API, watchdog): an operator's turn, or CLIP_CHECK_FAILED at the deadline
    assert db.batches.get_batch("b-op").blocked_reason == "CLIP_CHECK_FAILED"
    batch = db.batches.get_batch("b-op")
    assert batch.status == "processing" and batch.video_url is None
    assert not [row for row in db.outbox.rows("b-op") if row.event.startswith("batch.")]

    # 2. the operator regenerates only that job: one new task, the other jobs untouched
    before = {job.id: job for job in db.batches.get_jobs("b-op")}
    tasks_before = {job_id: db.ledger.tasks_for_job(job_id) for job_id in before}
    result = run(["clip_tasks"], "b-op", instance, resources, run_config=regenerate(["b-op-1"]))
    assert result.success
    assert sorted(generator_calls) == ["b-op-0", "b-op-1", "b-op-1", "b-op-2"]
    for job_id in ("b-op-0", "b-op-2"):
        assert db.ledger.tasks_for_job(job_id) == tasks_before[job_id]
        assert db.batches.get_job(job_id).video_url == before[job_id].video_url
    old, new = db.ledger.tasks_for_job("b-op-1")
    assert (old.task_id, old.status) == (tasks_before["b-op-1"][0].task_id, "superseded")
    assert new.status == "succeeded" and new.task_id != old.task_id
    [event] = [e.materialization for e in result.get_asset_materialization_events()]
    assert (event.metadata["submitted"].value, event.metadata["superseded_tasks"].value) == (1, 1)
    assert db.batches.get_job("b-op-1").provider_task_id == new.task_id

    # 3. the completions sensor sees the new completion and asks for a compose run
    assert generation_state(db.liveness, "b-op")[0]
    sensor_resources = {"app_db": AppDatabaseResource(database_url=sqlite_url), "pipeline_settings": PipelineSettingsResource(),
                        "generators": GeneratorsResource(providers=["local"])}
    with dg.build_sensor_context(instance=instance, resources=sensor_resources) as context:
        assert [r.partition_key for r in clip_completions_sensor(context).run_requests] == ["b-op"]
    composed = run(COMPOSE, "b-op", instance, resources)
    assert composed.success
    assert db.batches.get_batch("b-op").blocked_reason is None
    checks = {e.check_name: e.passed for e in composed.get_asset_check_evaluations()}
    assert checks == {"clips_usable": True, "video_matches_plan": True, "platform_ready": True}
    batch = db.batches.get_batch("b-op")
    assert batch.status == "completed" and batch.video_url and batch.error is None
    assert sorted(generator_calls) == ["b-op-0", "b-op-1", "b-op-1", "b-op-2"]  # composing generated nothing


@pytest.fixture
def finished_batch(instance, resources, tmp_path):
    db, storage = resources["app_db"].get(), resources["storage"].get()
    insert_batch_with_photos(db, storage, tmp_path, "b-fin", [None, None])
    instance.add_dynamic_partitions("batches", ["b-fin"])
    assert run(INTAKE, "b-fin", instance, resources).success
    return db


def test_regenerating_an_unknown_or_canceled_job_is_refused_before_any_call(
    instance, resources, finished_batch, generator_calls
):
    db = finished_batch
    refused = run(["clip_tasks"], "b-fin", instance, resources, run_config=regenerate(["b-fin-0", "nope"]))
    assert not refused.success
    [failure] = [e for e in refused.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "regeneration refused: INVALID_INPUT: job(s) nope are not in batch b-fin" in (
        failure.event_specific_data.error.message
    )
    db.cancels.cancel(batch_id="b-fin")
    canceled = run(["clip_tasks"], "b-fin", instance, resources, run_config=regenerate(["b-fin-0"]))
    assert not canceled.success
    assert generator_calls == []
    assert [task.status for task in db.ledger.tasks_for_batch("b-fin")] == ["succeeded", "succeeded"]


def test_asking_twice_never_pays_twice(instance, resources, finished_batch, generator_calls):
    """A job already reset and re-submitted (e.g. a retried regeneration run) is not reset again."""
    db = finished_batch
    db.batches.update_job("b-fin-0", status="completed")  # as normalize leaves it (composition not needed here)
    assert run(["clip_tasks"], "b-fin", instance, resources, run_config=regenerate(["b-fin-0"])).success
    assert db.batches.get_job("b-fin-0").status == "processing"
    again = run(["clip_tasks"], "b-fin", instance, resources, run_config=regenerate(["b-fin-0"]))
    assert again.success
    assert generator_calls == ["b-fin-0"]
    [event] = [e.materialization for e in again.get_asset_materialization_events()]
    assert event.metadata["regenerate_skipped"].value == "b-fin-0: not finished yet"
    assert [t.status for t in db.ledger.tasks_for_job("b-fin-0")] == ["superseded", "succeeded"]
