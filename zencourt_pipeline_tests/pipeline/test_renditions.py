"""Renditions (issue 15 point 1): a batch asking for 16:9, 9:16, 1:1 and 4:5, branded and unbranded,
gets 8 files from the same clips, each the size and codecs asked for and passing every profile its
shape targets; each is a `video_gen_outputs` row, listed in the `batch.completed` webhook; the
primary one stays `video_gen_batch.video_url`; the unbranded cuts carry no text naming the agent."""

from __future__ import annotations

import json
import subprocess

import numpy as np

from zencourt_pipeline.db.outputs import OutputStatus
from zencourt_pipeline.domain import OutputShape, OutputSpec, outputs_json
from zencourt_pipeline.media.ffmpeg import ffmpeg_exe, probe
from zencourt_pipeline.media.timeline.model import TextRole, Timeline
from zencourt_pipeline.pipeline.composition import compose_batch
from zencourt_pipeline.pipeline.normalize import normalize_outputs
from zencourt_pipeline.storage.local import LocalStorage
from zencourt_pipeline_tests.conftest import make_batch
from zencourt_pipeline_tests.fakes.server import sample_mp4

FACTS = {"address": "12 Oak Lane", "price": 1250000, "agentName": "Jane Doe"}
EIGHT = [OutputSpec(shape=shape, branded=branded) for shape in OutputShape for branded in (True, False)]


def _composed(db, storage, tmp_path, batch_id: str, outputs: list[OutputSpec] | None, **fields):
    fields = {"template": "showcase", "title": "Charming home", "facts": json.dumps(FACTS), **fields}
    batch, jobs = make_batch(batch_id, n_jobs=2, outputs=outputs_json(outputs) if outputs is not None else None, **fields)
    db.insert_batch(batch, jobs)
    db.start_batch(batch_id)
    for job in (f"{batch_id}-0", f"{batch_id}-1"):
        storage.put_file(f"batches/{batch_id}/generated/{job}.mp4", sample_mp4(1280, 720), "video/mp4")
        db.update_job(job, raw_clip_key=f"batches/{batch_id}/generated/{job}.mp4")
    work = tmp_path / "work"
    work.mkdir()
    normalize_outputs(db, storage, db.get_batch(batch_id), db.get_jobs(batch_id), work)
    return compose_batch(db, storage, db.get_batch(batch_id), db.get_jobs(batch_id), work)


def _frame(path, at: float, width: int, height: int) -> np.ndarray:
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-ss", str(at), "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(height, width).astype(float)


def test_sixteen_nine_nine_sixteen_square_and_four_five_branded_and_unbranded_make_eight_checked_files(sqlite_db, tmp_path):
    storage = LocalStorage(tmp_path / "storage")
    report = _composed(sqlite_db, storage, tmp_path, "r8", EIGHT)
    assert report.status == "completed", report.error
    assert [r.spec for r in report.outputs][0] == EIGHT[0] and {r.spec for r in report.outputs} == set(EIGHT)
    for rendition in report.outputs:
        assert rendition.status == OutputStatus.COMPLETED, rendition.error
        info = probe(storage.path(storage.key_from_uri(rendition.video_uri)))
        assert (info.width, info.height) == rendition.spec.size
        assert (info.codec, info.video_profile, info.pix_fmt, info.audio_codec) == ("h264", "High", "yuv420p", "aac")
        failing = {name: problems for name, problems in rendition.platforms.items() if problems}
        assert "house" in rendition.platforms and not failing, (rendition.spec.name, failing)
        # a rendition's file name says what it is
        assert f"listing-{rendition.spec.name}-showcase.mp4" in rendition.video_uri
    batch = sqlite_db.get_batch("r8")
    rows = sqlite_db.get_outputs("r8")
    assert batch.video_url == report.outputs[0].video_uri == rows[0].video_url and rows[0].is_primary
    assert [(r.spec, r.status) for r in rows] == [(r.spec, OutputStatus.COMPLETED) for r in report.outputs]
    assert all(r.thumbnail_url and r.size_bytes and abs(r.duration_seconds - report.duration_s) < 0.1 for r in rows)
    [completed] = [json.loads(e.body) for e in sqlite_db.outbox("r8") if json.loads(e.body)["event"] == "batch.completed"]
    assert [o["videoUri"] for o in completed["outputs"]] == [r.video_url for r in rows]

    # the unbranded cuts: the same video without the agent's card
    for rendition in report.outputs:
        stem = rendition.video_key.removesuffix(".mp4")
        text = storage.get_file(stem + ".timeline.json", tmp_path / "t.json").read_text(encoding="utf-8")
        timeline = Timeline.from_json(text)
        outro = [t for t in timeline.texts if t.role == TextRole.OUTRO]
        assert ("Jane Doe" in text) is rendition.spec.branded and bool(outro) is rendition.spec.branded
    by_name = {r.spec.name: r for r in report.outputs}
    branded, unbranded = by_name["square-1080x1080-branded"], by_name["square-1080x1080-unbranded"]
    card = next(t for t in branded.result.timeline.texts if t.role == TextRole.OUTRO)
    during = (card.start_frame + card.duration_frames // 2) / 30
    a, b = (_frame(r.result.path, during, 1080, 1080) for r in (branded, unbranded))
    assert np.abs(a - b).mean() > 1.0  # the agent card is drawn in the branded cut only
    a, b = (_frame(r.result.path, 0.9, 1080, 1080) for r in (branded, unbranded))
    assert np.abs(a - b).mean() < 1.0  # elsewhere the two cuts are the same picture


def test_the_default_request_is_four_outputs_and_an_operator_orientation_picks_the_primary(sqlite_db, tmp_path):
    storage = LocalStorage(tmp_path / "storage")
    # the default template without an agent: nothing brands the video, the unbranded cuts are copies
    report = _composed(sqlite_db, storage, tmp_path, "r4", None, orientation="vertical", template="default", facts=None)
    assert report.status == "completed", report.error
    assert [(r.spec.name, r.copied) for r in report.outputs] == [
        ("vertical-1080x1920-branded", False), ("landscape-1920x1080-branded", False),
        ("landscape-1920x1080-unbranded", True), ("vertical-1080x1920-unbranded", True),
    ]  # fmt: skip
    assert (report.width, report.height) == (1080, 1920)
    assert len(sqlite_db.get_outputs("r4")) == 4
    files = {r.spec.name: storage.path(storage.key_from_uri(r.video_uri)).read_bytes() for r in report.outputs}
    assert files["vertical-1080x1920-unbranded"] == files["vertical-1080x1920-branded"]
    assert all(not problems for r in report.outputs for problems in r.platforms.values())


def test_an_output_that_cannot_be_made_is_recorded_failed_and_the_others_are_published(sqlite_db, tmp_path):
    storage = LocalStorage(tmp_path / "storage")
    outputs = [OutputSpec(shape=OutputShape.LANDSCAPE, width=1280, height=720), OutputSpec(shape=OutputShape.SQUARE)]
    # a title that fits 16:9 but not 1:1 (intake would have refused it; composition does not stop for it)
    report = _composed(sqlite_db, storage, tmp_path, "rf", outputs, title="W" * 28)
    assert report.status == "completed", report.error
    landscape, square = report.outputs
    assert landscape.status == OutputStatus.COMPLETED and landscape.primary
    assert square.status == OutputStatus.FAILED and "does not fit the 1080x1080 frame" in square.error
    rows = sqlite_db.get_outputs("rf")
    assert [(r.shape, r.status, r.video_url is None) for r in rows] == [
        (OutputShape.LANDSCAPE, OutputStatus.COMPLETED, False), (OutputShape.SQUARE, OutputStatus.FAILED, True),
    ]  # fmt: skip
    assert not any("square" in key for key in storage.list_keys("batches/rf/video/"))
