"""The asset checks on a batch partition: photos (warn), clips (blocking), composed video."""

from __future__ import annotations

import dagster as dg

from zencourt_pipeline.defs.assets import pipeline_assets
from zencourt_pipeline.media.ffmpeg import run_ffmpeg
from zencourt_pipeline.pipeline.clip_checks import frame_stats, inspect_clip, inspect_composed, inspect_photo
from zencourt_pipeline_tests.defs.conftest import insert_batch_with_photos, write_photo

INTAKE = ["listing_photos", "clip_tasks"]
COMPOSE = ["generated_clips", "normalized_clips", "composed_video"]


def run(selection, batch_id, instance, resources):
    return dg.materialize(
        pipeline_assets, selection=selection, partition_key=batch_id, instance=instance, resources=resources,
        raise_on_error=False,
    )


def evaluations(result, check_name):
    return [e for e in result.get_asset_check_evaluations() if e.check_name == check_name]


def test_a_small_photo_fails_the_photo_check_as_a_warning_only(instance, resources, tmp_path):
    db, storage = resources["app_db"].get(), resources["storage"].get()
    small = write_photo(tmp_path / "small.jpg", size=(800, 500)).read_bytes()
    insert_batch_with_photos(db, storage, tmp_path, "b-small", [None, small])
    instance.add_dynamic_partitions("batches", ["b-small"])
    result = run(["listing_photos"], "b-small", instance, resources)
    assert result.success
    [check] = evaluations(result, "photos_usable")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "b-small-1 (Room 1): short side 500 px < 640 px" in check.description
    assert [job.status for job in db.batches.get_jobs("b-small")] == ["pending", "pending"]


def test_photo_inspection(tmp_path):
    assert inspect_photo(write_photo(tmp_path / "ok.jpg", size=(960, 640))).passed
    wide = inspect_photo(write_photo(tmp_path / "wide.jpg", size=(2400, 700)))
    assert wide.problems == ["aspect 2400x700 beyond 1:3"]
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert inspect_photo(tmp_path / "bad.jpg").problems[0].startswith("not decodable")


def test_frame_stats_tell_black_frozen_and_moving_apart():
    import numpy as np

    rng = np.random.default_rng(1)
    black = np.full((8, 64, 64), 16, np.uint8)
    still = np.repeat(rng.integers(0, 255, (1, 64, 64), dtype=np.uint8), 8, axis=0)
    moving = np.stack([np.roll(still[0], shift, axis=1) for shift in range(8)])
    assert (frame_stats(black).black_ratio, frame_stats(black).frozen_ratio) == (1.0, 1.0)
    assert (frame_stats(still).black_ratio, frame_stats(still).frozen_ratio) == (0.0, 1.0)
    assert frame_stats(moving).frozen_ratio == 0.0 and frame_stats(moving).motion > 1


def _lavfi_clip(path, *, seconds=1, size="1280x720", audio=False, source="testsrc2"):
    sep = ":" if "=" in source else "="
    args = ["-f", "lavfi", "-i", f"{source}{sep}size={size}:rate=30:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac"]
    run_ffmpeg([*args, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-shortest", str(path)])
    return path


def test_clip_and_video_inspection_on_real_files(tmp_path):
    moving = _lavfi_clip(tmp_path / "moving.mp4", seconds=2)
    assert inspect_clip(moving, expected_duration_s=2, width=1280, height=720).passed
    wrong = inspect_clip(moving, expected_duration_s=5, width=720, height=1280)
    assert wrong.problems == ["duration 2.00 s, expected 5 s", "size 1280x720, expected 720x1280"]
    black = _lavfi_clip(tmp_path / "black.mp4", seconds=2, source="color=c=black")
    assert [p.split(" (")[0] for p in inspect_clip(black, expected_duration_s=2, width=1280, height=720).problems] == [
        "black",
        "frozen",
    ]

    thumb = write_photo(tmp_path / "thumb.jpg")
    silent = inspect_composed(moving, planned_duration_s=2.0, expects_audio=True, thumbnail=thumb)
    assert silent.problems == ["no audio track although the template has music or the batch a narration"]
    with_music = _lavfi_clip(tmp_path / "music.mp4", seconds=2, audio=True)
    assert inspect_composed(with_music, planned_duration_s=2.0, expects_audio=True, thumbnail=thumb).passed
    off_plan = inspect_composed(with_music, planned_duration_s=3.5, expects_audio=False, thumbnail=None)
    assert off_plan.problems == ["duration 2.00 s, planned 3.50 s", "no thumbnail"]


def test_the_platform_check_names_what_is_wrong_per_profile():
    from types import SimpleNamespace

    from zencourt_pipeline.defs.assets.composition import _platform_check
    from zencourt_pipeline.media.validate import Problem, Rule
    from zencourt_pipeline.pipeline.composition import CompositionReport

    batch = SimpleNamespace(id="b-plat")  # the check reads the batch's id only
    report = CompositionReport("completed", platforms={
        "house": [Problem(Rule.EDIT_LIST, "edit list (edts/elst) in the vide track(s)")],
        "instagram_reels": [Problem(Rule.EDIT_LIST, "edit list (edts/elst) in the vide track(s)"),
                            Problem(Rule.DURATION, "2.00 s shorter than 3 s")],
        "mls": [],
    })  # fmt: skip
    check = _platform_check(batch, report)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.description == (
        "video of batch b-plat fails house: edit_list: edit list (edts/elst) in the vide track(s); "
        "instagram_reels: edit_list: edit list (edts/elst) in the vide track(s), duration: 2.00 s shorter than 3 s"
    )
    assert _platform_check(batch, CompositionReport("skipped")).passed  # clip-first: nothing composed


def test_platform_ready_reads_every_output_and_fails_on_one_that_was_not_rendered():
    from types import SimpleNamespace

    from zencourt_pipeline.defs.assets.composition import _platform_check
    from zencourt_pipeline.domain import OutputShape, OutputSpec
    from zencourt_pipeline.media.validate import Problem, Rule
    from zencourt_pipeline.pipeline.composition import CompositionReport
    from zencourt_pipeline.pipeline.renditions import Rendition

    batch = SimpleNamespace(id="b-out")
    ok = {"house": [], "mls": []}
    landscape, vertical = OutputSpec(shape=OutputShape.LANDSCAPE), OutputSpec(shape=OutputShape.VERTICAL, branded=False)
    rendered = SimpleNamespace(info=None)  # the check reads whether an output was rendered, not its file
    outputs = [Rendition(landscape, True, result=rendered, platforms=ok), Rendition(vertical, False, result=rendered, platforms=ok)]
    check = _platform_check(batch, CompositionReport("completed", platforms=ok, outputs=outputs))
    assert check.passed and check.description == (
        "2 outputs of batch b-out meet their profiles: landscape-1920x1080-branded (house, mls); "
        "vertical-1080x1920-unbranded (house, mls)"
    )
    bad = {"house": [Problem(Rule.LOUDNESS, "-20.5 LUFS")], "mls": []}
    square = OutputSpec(shape=OutputShape.SQUARE)
    outputs = [outputs[0], Rendition(vertical, False, result=rendered, platforms=bad), Rendition(square, False, error="INVALID_INPUT: x")]
    check = _platform_check(batch, CompositionReport("completed", platforms=ok, outputs=outputs))
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.description == (
        "3 outputs of batch b-out fail vertical-1080x1920-unbranded house: loudness: -20.5 LUFS; "
        "square-1080x1080-branded not rendered: INVALID_INPUT: x"
    )
    assert check.metadata["outputs"].value == ["landscape-1920x1080-branded", "square-1080x1080-branded", "vertical-1080x1920-unbranded"]
