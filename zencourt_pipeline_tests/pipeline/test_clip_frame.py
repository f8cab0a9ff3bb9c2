"""The clip frame follows the primary output (issue 15 point 2): a batch asking only for feed shapes
is generated, normalized and composed in its own shape (960x960 for 1:1), not cropped out of a
16:9 clip; the default request keeps 1280x720."""

from __future__ import annotations

import json

import pytest

from zencourt_pipeline.config import Settings
from zencourt_pipeline.db.records import JobStatus
from zencourt_pipeline.defs.resources import build_resources
from zencourt_pipeline.domain import DEFAULT_OUTPUTS, OutputShape, OutputSpec
from zencourt_pipeline.media.ffmpeg import probe
from zencourt_pipeline.media.frames import clip_frame
from zencourt_pipeline.pipeline.collect import collect_outputs
from zencourt_pipeline.pipeline.composition import compose_batch
from zencourt_pipeline.pipeline.generation import submit_batch
from zencourt_pipeline.pipeline.intake import IntakeStatus, take_in_batch
from zencourt_pipeline.pipeline.normalize import normalize_batch
from zencourt_pipeline.pipeline.quota import QuotaLimits
from zencourt_pipeline_tests.defs.conftest import write_photo

SQUARE, PORTRAIT = OutputSpec(shape=OutputShape.SQUARE), OutputSpec(shape=OutputShape.PORTRAIT)


@pytest.mark.parametrize(("outputs", "orientation", "frame"), [
    ((), "landscape", (1280, 720)),  # the default request: 16:9 primary
    (DEFAULT_OUTPUTS, "vertical", (720, 1280)),  # the vertical orientation picks the 9:16 primary
    ((SQUARE, PORTRAIT), "landscape", (960, 960)),  # no 16:9 asked for: the first output is the primary
    ((PORTRAIT, SQUARE), "vertical", (832, 1104)),  # 4:5 -> Runway's nearest ratio, 832:1104
    ((SQUARE, OutputSpec(shape=OutputShape.LANDSCAPE, width=1280, height=720)), "landscape", (1280, 720)),
])  # fmt: skip
def test_the_clip_frame_is_the_generation_ratio_of_the_primary_output(outputs, orientation, frame):
    assert clip_frame(outputs, orientation) == frame


def test_a_square_only_batch_is_generated_normalized_and_composed_square(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'app.db'}")
    resources = build_resources(settings)
    db, storage, generators = resources["app_db"].get(), resources["storage"].get(), resources["generators"]
    db.db.upgrade()
    assert list(generators.providers) == ["local"]
    jobs = []
    for i in range(2):
        storage.put_file(f"uploads/{i}.jpg", write_photo(tmp_path / f"{i}.jpg", seed=i))
        jobs.append({"id": f"sq-{i}", "sort_order": i, "room_name": f"Room {i}", "image_url": storage.uri(f"uploads/{i}.jpg"),
                     "duration_seconds": 2})  # fmt: skip
    db.batches.insert_batch({"id": "sq", "listing_id": "L-sq", "outputs": json.dumps([{"shape": "square"}])}, jobs)
    work = tmp_path / "work"
    work.mkdir()
    intake = take_in_batch(db, storage, db.batches.get_batch("sq"), db.batches.get_jobs("sq"), work, generators.fetch_policy(),
                           quota=QuotaLimits())  # fmt: skip
    assert intake.status is IntakeStatus.TAKEN_IN, intake.error_message
    chain = generators.chain(db)
    submit_batch(db, storage, chain, db.batches.get_batch("sq"), db.batches.get_jobs("sq"), work, quota=QuotaLimits())
    collect_outputs(db, storage, chain, db.batches.get_batch("sq"), db.batches.get_jobs("sq"), work)
    raw = [probe(storage.get_file(job.raw_clip_key, tmp_path / f"{job.id}.raw.mp4")) for job in db.batches.get_jobs("sq")]
    assert {(info.width, info.height) for info in raw} == {(960, 960)}  # generated at 960:960, not 1280:720
    normalized = normalize_batch(db, storage, db.batches.get_batch("sq"), db.batches.get_jobs("sq"), work)
    assert [clip.status for clip in normalized.clips] == ["completed", "completed"]
    assert all(job.status == JobStatus.COMPLETED for job in db.batches.get_jobs("sq"))
    assert {(probe(clip.clip_path).width, probe(clip.clip_path).height) for clip in normalized.clips} == {(960, 960)}
    report = compose_batch(db, storage, db.batches.get_batch("sq"), db.batches.get_jobs("sq"), work)
    assert report.status == "completed", report.error
    (output,) = report.outputs
    info = probe(storage.path(storage.key_from_uri(output.video_uri)))
    assert (info.width, info.height) == (1080, 1080) and output.source_resolution == "960x960"
