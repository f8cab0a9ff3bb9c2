"""Each asset materialized for a batch partition with `materialize`, on the local generator."""

from __future__ import annotations

import json

import dagster as dg

from zencourt_pipeline.defs.assets import pipeline_assets
from zencourt_pipeline.media.ffmpeg import probe
from zencourt_pipeline_tests.defs.conftest import insert_batch_with_photos

INTAKE = ["listing_photos", "clip_tasks"]
COMPOSE = ["generated_clips", "normalized_clips", "composed_video"]


def run(selection, batch_id, instance, resources, run_config=None, raise_on_error=True):
    return dg.materialize(
        pipeline_assets,
        selection=selection,
        partition_key=batch_id,
        instance=instance,
        resources=resources,
        run_config=run_config,
        raise_on_error=raise_on_error,
    )


def materializations(result, key):
    return [event.materialization for event in result.get_asset_materialization_events() if event.asset_key.path == [key]]


def test_each_asset_materializes_for_a_partition(instance, resources, tmp_path):
    db, storage = resources["app_db"].get(), resources["storage"].get()
    insert_batch_with_photos(db, storage, tmp_path, "b-all", [None, None], outputs=None)  # the default four
    instance.add_dynamic_partitions("batches", ["b-all"])
    for key in INTAKE + COMPOSE:
        result = run([key], "b-all", instance, resources)
        assert result.success and len(materializations(result, key)) == 1, key
    batch = db.batches.get_batch("b-all")
    assert batch.status == "completed"
    video = storage.path(storage.key_from_uri(batch.video_url))
    info = probe(video, count_frames=True)
    assert (info.codec, info.width, info.height, info.fps) == ("h264", 1920, 1080, 30.0)  # the primary output
    assert abs(info.duration - (2 + 2 - 0.5)) < 0.1
    [composed] = materializations(result, "composed_video")
    assert composed.metadata["clips_used"].value == 2
    # Two 2 s clips under the default 3 s title: no frame is left unchanged to stream-copy.
    assert composed.metadata["render_strategy"].value == "full"
    assert composed.metadata["render_note"].value.startswith("smart: ")
    assert composed.metadata["preview"].value.startswith("![")
    clips = composed.metadata["clips"].value
    columns = [column.name for column in clips.schema.columns]
    assert {"room", "provider", "task_id", "duration_s", "latency_s", "cost_credits", "status"} <= set(columns)
    assert [record.data["provider"] for record in clips.records] == ["local", "local"]
    assert all(abs(record.data["duration_s"] - 2.0) < 0.1 for record in clips.records)
    assert all(record.data["latency_s"] is not None and record.data["latency_s"] >= 0 for record in clips.records)
    checks = {check.check_name: check for check in result.get_asset_check_evaluations()}
    assert sorted(checks) == ["platform_ready", "video_matches_plan"]
    check = checks["video_matches_plan"]
    assert check.passed
    assert check.metadata["has_audio"].value is True  # the default template has music
    platform = checks["platform_ready"]  # the published file read back: house rules + its destinations
    assert platform.passed, platform.description
    assert platform.metadata["profiles"].value == ["house", "instagram_reels", "mls", "tiktok", "youtube_shorts"]
    assert platform.metadata["outputs"].value == [
        "landscape-1920x1080-branded", "landscape-1920x1080-unbranded", "vertical-1080x1920-branded",
        "vertical-1080x1920-unbranded",
    ]  # fmt: skip
    assert platform.description.startswith(
        "4 outputs of batch b-all meet their profiles: landscape-1920x1080-branded (house, instagram_reels, tiktok, mls); "
    )
    outputs = composed.metadata["outputs"].value
    assert [(r.data["output"], r.data["status"]) for r in outputs.records][0] == ("landscape-1920x1080-branded", "completed")
    # the 1080p outputs are scaled up from the local generator's 720p clips, and the table says so
    assert [r.data["source_resolution"] for r in outputs.records] == ["1280x720"] * 4
    assert len(db.outputs.get_outputs("b-all")) == 4


def test_rematerializing_never_resubmits_a_job(instance, resources, tmp_path):
    db, storage = resources["app_db"].get(), resources["storage"].get()
    insert_batch_with_photos(db, storage, tmp_path, "b-again", [None])
    instance.add_dynamic_partitions("batches", ["b-again"])
    run(INTAKE, "b-again", instance, resources)
    second = run(["clip_tasks"], "b-again", instance, resources)
    [event] = materializations(second, "clip_tasks")
    assert (event.metadata["submitted"].value, event.metadata["already_submitted"].value) == (0, 1)
    assert len(db.ledger.tasks_for_job("b-again-0")) == 1


def test_a_broken_photo_fails_its_job_and_the_rest_compose(instance, resources, tmp_path):
    db, storage = resources["app_db"].get(), resources["storage"].get()
    insert_batch_with_photos(db, storage, tmp_path, "b-broken", [None, b"this is not an image at all", None])
    instance.add_dynamic_partitions("batches", ["b-broken"])
    assert run(INTAKE, "b-broken", instance, resources).success
    assert run(COMPOSE, "b-broken", instance, resources).success
    jobs = {job.id: job for job in db.batches.get_jobs("b-broken")}
    broken = jobs["b-broken-1"]
    assert (broken.status, broken.error_code) == ("failed", "INVALID_INPUT")
    assert broken.error_message
    assert [jobs[j].status for j in ("b-broken-0", "b-broken-2")] == ["completed", "completed"]
    batch = db.batches.get_batch("b-broken")
    # documented end state: completed with the clips that worked, the failure named in `error`
    assert batch.status == "completed" and batch.video_url
    assert "b-broken-1 INVALID_INPUT" in batch.error
    info = probe(storage.path(storage.key_from_uri(batch.video_url)))
    assert abs(info.duration - (2 + 2 - 0.5)) < 0.1
    events = [json.loads(row.body)["event"] for row in db.outbox.rows("b-broken")]
    assert events.count("clip.failed") == 1 and events.count("clip.completed") == 2 and events[-1] == "batch.completed"


def test_a_batch_with_an_unknown_template_is_rejected_before_any_work(instance, resources, tmp_path):
    db, storage = resources["app_db"].get(), resources["storage"].get()
    insert_batch_with_photos(db, storage, tmp_path, "b-tpl", [None], template="no-such-template")
    instance.add_dynamic_partitions("batches", ["b-tpl"])
    result = run(INTAKE, "b-tpl", instance, resources, raise_on_error=False)
    assert not result.success
    batch = db.batches.get_batch("b-tpl")
    assert batch.status == "failed" and "unknown template" in batch.error
    assert db.ledger.tasks_for_batch("b-tpl") == []


def test_recompose_with_another_template_reuses_the_clips(instance, resources, tmp_path, generator_calls):
    db, storage = resources["app_db"].get(), resources["storage"].get()
    insert_batch_with_photos(db, storage, tmp_path, "b-re", [None, None])
    instance.add_dynamic_partitions("batches", ["b-re"])
    run(INTAKE, "b-re", instance, resources)
    run(COMPOSE, "b-re", instance, resources)
    assert sorted(generator_calls) == ["b-re-0", "b-re-1"]  # the counter sees the generation
    first = db.batches.get_batch("b-re").video_url
    generated = sorted(p.name for p in (tmp_path / "data" / "local-generator").iterdir())
    result = run(
        ["composed_video"], "b-re", instance, resources,
        run_config={"ops": {"composed_video": {"config": {"template": "classic", "orientation": "vertical"}}}},
    )
    assert result.success
    second = db.batches.get_batch("b-re").video_url
    assert second != first and "listing-vertical-1080x1920-branded-classic" in second
    info = probe(storage.path(storage.key_from_uri(second)))
    assert (info.width, info.height) == (1080, 1920)
    # no generator call, no new task, no new render: the clips were reused
    assert sorted(generator_calls) == ["b-re-0", "b-re-1"]
    assert sum(len(db.ledger.tasks_for_job(job.id)) for job in db.batches.get_jobs("b-re")) == 2
    assert sorted(p.name for p in (tmp_path / "data" / "local-generator").iterdir()) == generated
    [composed] = materializations(result, "composed_video")
    assert (composed.metadata["template"].value, composed.metadata["clips_used"].value) == ("classic", 2)


def test_normalized_clips_get_keyframes_where_the_batch_composition_cuts(instance, resources, tmp_path):
    from zencourt_pipeline.media.mp4index import read_video_index

    db, storage = resources["app_db"].get(), resources["storage"].get()
    jobs = insert_batch_with_photos(db, storage, tmp_path, "b-kf", [None, None, None])
    for job in jobs:
        db.batches.update_job(job["id"], duration_seconds=5)
    instance.add_dynamic_partitions("batches", ["b-kf"])
    assert run(INTAKE, "b-kf", instance, resources).success
    assert run(COMPOSE, "b-kf", instance, resources).success
    keyframes = {}
    for job in db.batches.get_jobs("b-kf"):
        keyframes[job.id] = read_video_index(storage.path(storage.key_from_uri(job.video_url))).keyframes
    # default template: the 3 s title and its caption cover the first clip (grid only); the
    # others need keyframes where crossfade + caption end (83) and where the last clip's 1 s fade
    # out (120) or the next crossfade (135) begins.
    assert keyframes == {"b-kf-0": (0, 30, 60, 90, 120), "b-kf-1": (0, 30, 60, 83, 113, 135), "b-kf-2": (0, 30, 60, 83, 113, 120)}
