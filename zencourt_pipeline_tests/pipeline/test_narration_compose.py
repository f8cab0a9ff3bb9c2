"""Issue 14's acceptance for narration (point 4 with points 2 and 3): a batch with facts, per-job
captions, a narration file and the template with a lower third goes through intake, normalize and
compose, and yields a video whose decoded frames show the merged texts where the timeline says,
SRT and WebVTT sidecars that parse and match the timeline, a mix at the delivery loudness and the
music ducked at least 10 dB under the voice; the MLS-unbranded cut has no voice that names the agent."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import srt
import webvtt

from zencourt_pipeline.config import Settings
from zencourt_pipeline.defs.resources import build_resources
from zencourt_pipeline.media import loudness
from zencourt_pipeline.media.compose import render_timeline
from zencourt_pipeline.media.ffmpeg import ffmpeg_exe
from zencourt_pipeline.media.timeline.assets import place_text
from zencourt_pipeline.media.timeline.model import TextRole, Timeline
from zencourt_pipeline.pipeline.composition import compose_batch
from zencourt_pipeline.pipeline.intake import IntakeStatus, take_in_batch
from zencourt_pipeline.pipeline.normalize import normalize_outputs
from zencourt_pipeline.pipeline.quota import QuotaLimits
from zencourt_pipeline_tests.defs.conftest import write_photo
from zencourt_pipeline_tests.fakes.server import sample_mp4
from zencourt_pipeline_tests.media.test_narration import KINDS, make_voice, music_level_db
from zencourt_pipeline_tests.net.server import LocalServer, Route

W, H = 1280, 720
FACTS = {"address": "12 Oak Lane", "price": 1250000, "beds": 3, "baths": 2, "sqft": 1850, "agentName": "Jane Doe"}
SPEECH = ((0.5, 3.0), (5.0, 8.5))  # 9 s of "voice": longer than the three 3 s clips (7.8 s with the crossfades)
OUTPUTS = [{"shape": "landscape", "width": W, "height": H}, {"shape": "landscape", "width": W, "height": H, "branded": False}]


def _gray(path: Path, frame: int) -> np.ndarray:
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-vf", f"select=eq(n\\,{frame})", "-frames:v", "1",
         "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(H, W).astype(float)


@pytest.fixture(scope="module")
def composed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("narrated-batch")
    settings = Settings(data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'app.db'}",
                        media_allowed_private_hosts=["127.0.0.1"])  # fmt: skip
    resources = build_resources(settings)
    db, storage, generators = resources["app_db"].get(), resources["storage"].get(), resources["generators"]
    db.db.upgrade()
    voice = make_voice(tmp / "voice.m4a", codec=KINDS["m4a"], seconds=9.0, speech=SPEECH)
    storage.put_file("uploads/p.jpg", write_photo(tmp / "p.jpg"))
    captions = ["{{beds}}-bed kitchen", "Sunny deck", None]
    jobs = [{"id": f"nb-{i}", "sort_order": i, "room_name": f"Room {i}", "image_url": storage.uri("uploads/p.jpg"),
             "duration_seconds": 3, "caption": c} for i, c in enumerate(captions)]  # fmt: skip
    work = tmp / "work"
    work.mkdir()
    with LocalServer() as server:
        server.routes["/tour.m4a"] = Route(body=voice.read_bytes(), content_type="audio/mp4")
        db.batches.insert_batch({"id": "nb", "listing_id": "L-nb", "template": "showcase", "title": "Charming home",
                         "facts": json.dumps(FACTS), "outputs": json.dumps(OUTPUTS),
                         "narration_url": server.url("/tour.m4a")}, jobs)  # fmt: skip
        intake = take_in_batch(db, storage, db.batches.get_batch("nb"), db.batches.get_jobs("nb"), work, generators.fetch_policy(),
                               quota=QuotaLimits())  # fmt: skip
    assert intake.status is IntakeStatus.TAKEN_IN, intake.error_message
    for job in db.batches.get_jobs("nb"):  # the generated clips, as a provider would give them
        storage.put_file(f"batches/nb/generated/{job.id}.mp4", sample_mp4(W, H, seconds=3.0), "video/mp4")
        db.batches.update_job(job.id, raw_clip_key=f"batches/nb/generated/{job.id}.mp4")
    normalize_outputs(db, storage, db.batches.get_batch("nb"), db.batches.get_jobs("nb"), work)
    report = compose_batch(db, storage, db.batches.get_batch("nb"), db.batches.get_jobs("nb"), work)
    assert report.status == "completed", report.error
    return storage, report, tmp


def _stored(storage, key: str, dest: Path) -> Path:
    return storage.get_file(key, dest)


def test_the_narrated_video_has_its_texts_sidecars_loudness_and_ducking(composed):
    storage, report, tmp = composed
    branded, unbranded = report.outputs
    assert branded.primary and branded.spec.branded and not unbranded.spec.branded
    stem = branded.video_key.removesuffix(".mp4")
    timeline = Timeline.from_json(_stored(storage, stem + ".timeline.json", tmp / "t.json").read_text(encoding="utf-8"))
    # the narration is in the stored timeline; the music carries its ducking; the last clip is held
    assert timeline.narration is not None and len(timeline.music.gain) > 1
    assert timeline.total_frames == round((9.0 + 0.5) * 30) and timeline.clips[-1].out_frame > 90
    assert timeline.narration.source == storage.uri("batches/nb/narration.m4a")  # the stored copy: it re-renders
    video = _stored(storage, branded.video_key, tmp / "branded.mp4")

    # the texts, in decoded frames, where the timeline puts them: against the same timeline without texts
    local = branded.result.timeline
    bare = render_timeline(local.model_copy(update={"texts": []}), tmp / "bare.mp4", strategy="full", work_dir=tmp / "bw")
    roles = {t.role for t in timeline.texts}
    assert {TextRole.TITLE, TextRole.CAPTION, TextRole.INTRO, TextRole.LOWER_THIRD, TextRole.OUTRO} <= roles
    assert "$1,250,000 · 3 bd · 2 ba · 1,850 sq ft" in [t.text for t in timeline.texts]
    assert [t.text for t in timeline.texts if t.role == TextRole.CAPTION][:2] == ["3-bed kitchen", "Sunny deck"]
    for text in timeline.texts:
        frame = text.start_frame + text.duration_frames // 2
        box = place_text(text, W, H)
        diff = np.abs(_gray(video, frame) - _gray(bare.path, frame))
        inside = diff[box.y : box.y + box.height, box.x : box.x + box.width].mean()
        assert inside > 15, (text.role, text.text, inside)

    # SRT and WebVTT parse (real parsers) and match the timeline's texts and times
    subs = list(srt.parse(_stored(storage, stem + ".srt", tmp / "t.srt").read_text(encoding="utf-8")))
    vtt = webvtt.read(str(_stored(storage, stem + ".vtt", tmp / "t.vtt")))
    ordered = sorted(timeline.texts, key=lambda t: t.start_frame)
    assert [s.content for s in subs] == [c.text for c in vtt.captions] == [t.text for t in ordered]
    for sub, text in zip(subs, ordered, strict=True):
        assert round(sub.start.total_seconds() * 30) == text.start_frame
        assert round(sub.end.total_seconds() * 30) == text.end_frame

    # the mix at the delivery loudness, the music ducked under the voice (measured on the file)
    measured = loudness.measure(video)
    under = max(music_level_db(video, 1.0, 2.8), music_level_db(video, 5.5, 8.0))
    free = music_level_db(video, 3.7, 4.6)
    print(f"narrated batch: {measured.integrated_lufs:.2f} LUFS, true peak {measured.true_peak_dbtp:.2f} dBTP; "
          f"music {free:.1f} dB without speech, {under:.1f} dB under it: ducked {free - under:.1f} dB")  # fmt: skip
    assert abs(measured.integrated_lufs - loudness.TARGET_LUFS) <= loudness.TOLERANCE_LU, measured
    assert measured.true_peak_dbtp <= loudness.MAX_TRUE_PEAK_DBTP, measured
    assert free - under >= 10.0, (free, under)
    assert not branded.platforms or not any(branded.platforms.values()), branded.platforms
    assert report.narration_s == 9.0 and report.music_ducked_db == 15.0  # the asset's metadata


def test_the_unbranded_cut_leaves_out_the_voice_that_names_the_agent(composed):
    storage, report, tmp = composed
    unbranded = report.outputs[1]
    stem = unbranded.video_key.removesuffix(".mp4")
    timeline = Timeline.from_json(_stored(storage, stem + ".timeline.json", tmp / "u.json").read_text(encoding="utf-8"))
    assert timeline.narration is None and len(timeline.music.gain) == 1  # no voice, nothing ducked
    assert timeline.total_frames == 3 * 90 - 2 * 18  # no clip held for it
    assert not any("Jane Doe" in t.text for t in timeline.texts)
    measured = loudness.measure(_stored(storage, unbranded.video_key, tmp / "unbranded.mp4"))
    assert abs(measured.integrated_lufs - loudness.TARGET_LUFS) <= loudness.TOLERANCE_LU, measured


def test_a_narration_the_surviving_clips_cannot_hold_fails_the_batch_narration_too_long(sqlite_db, tmp_path):
    """Intake found the clips asked for long enough; two of them failed, and the one left cannot
    hold the voice even with its last frame held 10 s: the batch fails with the narration's code."""
    from zencourt_pipeline.db.records import BatchStatus
    from zencourt_pipeline.errors import ErrorCode
    from zencourt_pipeline.storage.local import LocalStorage
    from zencourt_pipeline_tests.conftest import make_batch

    storage = LocalStorage(tmp_path / "storage")
    voice = make_voice(tmp_path / "voice.mp3", codec=KINDS["mp3"], seconds=16.0, speech=((0.5, 15.5),))
    storage.put_file("batches/nl/narration.mp3", voice, "audio/mpeg")
    batch, jobs = make_batch("nl", n_jobs=3, narration_url="https://voice.example.com/v.mp3",
                             outputs=json.dumps(OUTPUTS[:1]))  # fmt: skip
    for job in jobs:
        job["duration_seconds"] = 3
    sqlite_db.batches.insert_batch(batch, jobs)
    sqlite_db.batches.set_narration_key("nl", "batches/nl/narration.mp3")
    sqlite_db.batches.start_batch("nl")
    storage.put_file("batches/nl/generated/nl-0.mp4", sample_mp4(W, H, seconds=3.0), "video/mp4")
    sqlite_db.batches.update_job("nl-0", raw_clip_key="batches/nl/generated/nl-0.mp4")
    for job in ("nl-1", "nl-2"):
        sqlite_db.batches.fail_job(job, ErrorCode.RUNWAY_GENERATION_FAILED, "failed")
    work = tmp_path / "work"
    work.mkdir()
    normalize_outputs(sqlite_db, storage, sqlite_db.batches.get_batch("nl"), sqlite_db.batches.get_jobs("nl"), work)
    report = compose_batch(sqlite_db, storage, sqlite_db.batches.get_batch("nl"), sqlite_db.batches.get_jobs("nl"), work)
    assert report.status == "failed" and report.error_code is ErrorCode.NARRATION_TOO_LONG, report.error
    stored = sqlite_db.batches.get_batch("nl")
    assert (stored.status, stored.error_code) == (BatchStatus.FAILED, ErrorCode.NARRATION_TOO_LONG)
    assert "held at most 10 s" in stored.error
