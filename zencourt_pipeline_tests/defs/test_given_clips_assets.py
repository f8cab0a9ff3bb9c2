"""Given clips (issue 14 point 5) through the assets, materialized for a batch partition on the local
generator: three clips and two photos compose; a truncated clip fails only its own job."""

from __future__ import annotations

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.ffmpeg import probe
from zencourt_pipeline_tests.batches import ONE_OUTPUT_JSON
from zencourt_pipeline_tests.defs.conftest import write_photo
from zencourt_pipeline_tests.defs.test_assets import COMPOSE, INTAKE, materializations, run
from zencourt_pipeline_tests.fakes.given_clips import truncated, video_clip


def test_a_stitch_batch_composes_through_the_assets(instance, resources, tmp_path, generator_calls):
    db, storage = resources["app_db"].get(), resources["storage"].get()
    src = tmp_path / "src"
    src.mkdir()

    def stored(name, path):
        storage.put_file(f"uploads/sa/{name}", path)
        return storage.uri(f"uploads/sa/{name}")

    sources = [
        ("photo", stored("0.jpg", write_photo(src / "0.jpg", seed=1))),
        ("clip", stored("a.mp4", video_clip(src / "a.mp4", seconds=3))),
        ("clip", stored("b.webm", video_clip(src / "b.webm", size="400x300", fps=24))),
        ("clip", stored("t.mp4", truncated(src / "t.mp4", video_clip(src / "full.mp4")))),
        ("photo", stored("4.jpg", write_photo(src / "4.jpg", seed=4))),
        ("clip", stored("c.mp4", video_clip(src / "c.mp4", size="720x1280", seconds=5))),
    ]
    jobs = [
        {"id": f"sa-{i}", "sort_order": i, "room_name": f"Room {i}", "image_url": uri, "duration_seconds": 2,
         "clip_url": uri if kind == "clip" else None, "clip_in_seconds": 0.5 if kind == "clip" else None}
        for i, (kind, uri) in enumerate(sources)
    ]  # fmt: skip
    db.batches.insert_batch({"id": "sa", "listing_id": "L-sa", "title": "9 Asset Lane", "outputs": ONE_OUTPUT_JSON}, jobs)
    instance.add_dynamic_partitions("batches", ["sa"])
    intake = run(INTAKE, "sa", instance, resources)
    [photos] = materializations(intake, "listing_photos")
    assert (photos.metadata["photos_ready"].value, photos.metadata["given_clips_ready"].value,
            photos.metadata["given_clips_failed"].value) == (2, 3, 1)  # fmt: skip
    [tasks] = materializations(intake, "clip_tasks")
    assert (tasks.metadata["submitted"].value, tasks.metadata["given_clips"].value) == (2, 3)
    assert sorted(generator_calls) == ["sa-0", "sa-4"]  # nothing generated (or paid) for a given clip
    composed = run(COMPOSE, "sa", instance, resources)
    assert composed.success
    [video] = materializations(composed, "composed_video")
    assert video.metadata["clips_used"].value == 5
    bad = db.batches.get_job("sa-3")
    assert (bad.status, bad.error_code) == ("failed", ErrorCode.CLIP_TRUNCATED)
    batch = db.batches.get_batch("sa")
    assert batch.status == "completed" and "sa-3 CLIP_TRUNCATED" in batch.error
    info = probe(storage.path(storage.key_from_uri(batch.video_url)))
    assert (info.width, info.height) == (1280, 720)  # the one output the batch asks for
    # five 2 s clips (the clips from 0.5 s for duration_seconds), four 0.5 s crossfades
    assert abs(info.duration - (5 * 2 - 4 * 0.5)) < 0.1, info.duration
    checks = {check.check_name: check for check in composed.get_asset_check_evaluations()}
    assert checks["video_matches_plan"].passed and checks["platform_ready"].passed, checks["platform_ready"].description
