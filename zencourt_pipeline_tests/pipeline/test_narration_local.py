"""Stills + narration -> MP4 through the pipeline, offline (issue 14 point 4): with the local
generator as the only provider, intake times each photo's Ken Burns clip to the narration's pauses,
the local generator renders them, and the composed video lasts the voice (plus its tail) with every
crossfade in a pause; nothing is held."""

from __future__ import annotations

import json

from zencourt_pipeline.config import Settings
from zencourt_pipeline.defs.resources import build_resources
from zencourt_pipeline.media.timeline.model import Timeline
from zencourt_pipeline.media.timeline.narration import NARRATION_TAIL_S
from zencourt_pipeline.pipeline.collect import collect_outputs
from zencourt_pipeline.pipeline.composition import compose_batch
from zencourt_pipeline.pipeline.generation import submit_batch
from zencourt_pipeline.pipeline.intake import IntakeStatus, take_in_batch
from zencourt_pipeline.pipeline.normalize import normalize_batch
from zencourt_pipeline.pipeline.quota import QuotaLimits
from zencourt_pipeline_tests.defs.conftest import write_photo
from zencourt_pipeline_tests.media.test_narration import KINDS, make_voice

SPEECH = ((0.3, 2.8), (3.6, 6.0), (6.9, 9.5))  # pauses 2.8-3.6 and 6.0-6.9
PAUSES = ((2.8, 3.6), (6.0, 6.9))
VOICE_S = 10.0


def test_the_local_generator_times_its_clips_to_the_narration(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'app.db'}")
    resources = build_resources(settings)
    db, storage, generators = resources["app_db"].get(), resources["storage"].get(), resources["generators"]
    db.db.upgrade()
    assert list(generators.providers) == ["local"]  # the embedded default: what the intake asset times for
    storage.put_file("uploads/voice.mp3", make_voice(tmp_path / "voice.mp3", codec=KINDS["mp3"], seconds=VOICE_S, speech=SPEECH))
    jobs = []
    for i in range(3):
        storage.put_file(f"uploads/{i}.jpg", write_photo(tmp_path / f"{i}.jpg", seed=i))
        jobs.append({"id": f"lt-{i}", "sort_order": i, "room_name": f"Room {i}", "image_url": storage.uri(f"uploads/{i}.jpg")})
    outputs = [{"shape": "landscape", "width": 1280, "height": 720}]
    db.batches.insert_batch({"id": "lt", "listing_id": "L-lt", "narration_url": storage.uri("uploads/voice.mp3"),
                     "outputs": json.dumps(outputs)}, jobs)  # fmt: skip
    work = tmp_path / "work"
    work.mkdir()
    intake = take_in_batch(db, storage, db.batches.get_batch("lt"), db.batches.get_jobs("lt"), work, generators.fetch_policy(),
                           quota=QuotaLimits(), time_to_narration=True)  # fmt: skip
    assert intake.status is IntakeStatus.TAKEN_IN, intake.error_message
    timed = [(job.timed_seconds, job.duration_seconds) for job in db.batches.get_jobs("lt")]
    assert [round(s * 30) for s, _ in timed] == [104, 113, 128] and [d for _, d in timed] == [4, 4, 5]

    chain = generators.chain(db)
    submit_batch(db, storage, chain, db.batches.get_batch("lt"), db.batches.get_jobs("lt"), work, quota=QuotaLimits())
    collect_outputs(db, storage, chain, db.batches.get_batch("lt"), db.batches.get_jobs("lt"), work)
    normalize_batch(db, storage, db.batches.get_batch("lt"), db.batches.get_jobs("lt"), work)
    report = compose_batch(db, storage, db.batches.get_batch("lt"), db.batches.get_jobs("lt"), work)
    assert report.status == "completed", report.error
    timeline = report.outputs[0].result.timeline
    assert isinstance(timeline, Timeline) and timeline.narration is not None
    assert [c.out_frame for c in timeline.clips] == [104, 113, 128]  # as timed: nothing held
    assert timeline.total_frames == round((VOICE_S + NARRATION_TAIL_S) * 30)
    for k in range(1, 3):
        middle = (timeline.clip_starts[k] + timeline.clips[k - 1].transition.frames / 2) / 30
        assert any(a - 0.1 <= middle <= b + 0.1 for a, b in PAUSES), (k, middle)
    assert abs(report.duration_s - (VOICE_S + NARRATION_TAIL_S)) < 0.1
