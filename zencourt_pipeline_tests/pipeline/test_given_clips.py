"""Stitching given clips (issue 14 point 5) through the stages, on the local generator: a batch of
three given clips (our storage's URIs and an http URL through the SSRF-safe downloader) and two
photos composes, in sort order, with no provider task for the clips; a bad clip fails only its job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zencourt_pipeline.db.records import BatchStatus, JobStatus
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.ffmpeg import probe
from zencourt_pipeline.media.timeline.model import Timeline
from zencourt_pipeline.pipeline.collect import collect_outputs
from zencourt_pipeline.pipeline.composition import compose_batch
from zencourt_pipeline.pipeline.generation import SubmissionOutcome, generation_state, submit_batch
from zencourt_pipeline.pipeline.given_clips import ClipOutcome
from zencourt_pipeline.pipeline.intake import IntakeStatus, take_in_batch
from zencourt_pipeline.pipeline.normalize import normalize_batch
from zencourt_pipeline.pipeline.quota import QuotaLimits
from zencourt_pipeline_tests.batches import ONE_OUTPUT_JSON
from zencourt_pipeline_tests.defs.conftest import write_photo
from zencourt_pipeline_tests.fakes.given_clips import audio_only, truncated, video_clip
from zencourt_pipeline_tests.net.server import LocalServer, Route


def _stored(storage, tmp_path: Path, name: str, path: Path) -> str:
    key = f"uploads/stitch/{name}"
    storage.put_file(key, path)
    return storage.uri(key)


def _run_stages(db, storage, generators, batch_id: str, work: Path):
    chain = generators.chain(db)
    batch, jobs = db.batches.get_batch(batch_id), db.batches.get_jobs(batch_id)
    intake = take_in_batch(db, storage, batch, jobs, work, generators.fetch_policy(), quota=QuotaLimits(listing_quota=2))
    submission = submit_batch(db, storage, chain, db.batches.get_batch(batch_id), db.batches.get_jobs(batch_id), work, quota=QuotaLimits(listing_quota=2))
    ready, _digest = generation_state(db.liveness, batch_id)
    collected = collect_outputs(db, storage, chain, db.batches.get_batch(batch_id), db.batches.get_jobs(batch_id), work)
    normalized = normalize_batch(db, storage, db.batches.get_batch(batch_id), db.batches.get_jobs(batch_id), work)
    composed = compose_batch(db, storage, db.batches.get_batch(batch_id), db.batches.get_jobs(batch_id), work)
    return intake, submission, ready, collected, normalized, composed


def test_three_given_clips_and_two_photos_compose_and_a_bad_clip_fails_only_its_job(stack, tmp_path):
    db, storage, generators = stack
    src = tmp_path / "src"
    src.mkdir()
    served = video_clip(src / "served.mp4", seconds=5, size="640x360", fps=30)
    with LocalServer() as server:
        server.routes["/clips/porch.mp4"] = Route(body=served.read_bytes(), content_type="application/octet-stream")
        jobs = [  # sort order: photo, clip, clip, bad clip, photo, clip
            {"image_url": _stored(storage, tmp_path, "0.jpg", write_photo(src / "0.jpg", seed=0)), "duration_seconds": 2},
            {"clip_url": _stored(storage, tmp_path, "a.mp4", video_clip(src / "a.mp4", seconds=4)),
             "clip_in_seconds": 1.0, "clip_out_seconds": 3.5, "caption": "Kitchen, as filmed"},
            {"clip_url": server.url("/clips/porch.mp4"), "clip_in_seconds": 0.5, "duration_seconds": 3},
            {"clip_url": _stored(storage, tmp_path, "x.m4a", audio_only(src / "x.m4a"))},
            {"image_url": _stored(storage, tmp_path, "4.jpg", write_photo(src / "4.jpg", seed=4)), "duration_seconds": 2},
            {"clip_url": _stored(storage, tmp_path, "b.webm", video_clip(src / "b.webm", size="400x300", fps=24)),
             "clip_out_seconds": 2.0},
        ]
        rows = []
        for i, job in enumerate(jobs):
            defaults = {"clip_url": None, "clip_in_seconds": None, "clip_out_seconds": None, "caption": None,
                        "duration_seconds": 5}  # fmt: skip
            job = {"id": f"st-{i}", "sort_order": i, "room_name": f"Room {i}", **defaults, **job}
            job.setdefault("image_url", job["clip_url"])  # NOT NULL: the clip's URL, as the API writes it
            rows.append(job)
        db.batches.insert_batch({"id": "st", "listing_id": "L-st", "title": "7 Stitch Road", "outputs": ONE_OUTPUT_JSON}, rows)
        work = tmp_path / "work"
        work.mkdir()
        intake, submission, ready, collected, normalized, composed = _run_stages(db, storage, generators, "st", work)
        assert server.hits["/clips/porch.mp4"] == 1

    assert intake.status is IntakeStatus.TAKEN_IN and intake.count("ready") == 2
    assert [(c.job_id, c.status) for c in intake.clips] == [
        ("st-1", ClipOutcome.READY), ("st-2", ClipOutcome.READY), ("st-3", ClipOutcome.FAILED), ("st-5", ClipOutcome.READY),
    ]  # fmt: skip
    # only the photos are generated (and counted against the quota of 2: the clips do not count)
    assert [o.status for o in submission.outcomes] == [
        SubmissionOutcome.SUBMITTED, SubmissionOutcome.GIVEN, SubmissionOutcome.GIVEN, SubmissionOutcome.SKIPPED,
        SubmissionOutcome.SUBMITTED, SubmissionOutcome.GIVEN,
    ]  # fmt: skip
    assert {task.job_id for task in db.ledger.tasks_for_batch("st")} == {"st-0", "st-4"} and ready
    assert {o.job_id for o in collected if o.status == SubmissionOutcome.STORED} == {"st-0", "st-1", "st-2", "st-4", "st-5"}
    assert normalized.count("completed") == 5 and normalized.blocked is None, normalized.failing

    jobs = {job.id: job for job in db.batches.get_jobs("st")}
    bad = jobs["st-3"]
    assert (bad.status, bad.error_code) == (JobStatus.FAILED, ErrorCode.CLIP_AUDIO_ONLY)
    assert "no video stream" in bad.error_message
    assert all(jobs[j].status == JobStatus.COMPLETED for j in ("st-0", "st-1", "st-2", "st-4", "st-5"))
    assert all(jobs[j].provider is None and jobs[j].raw_clip_key.startswith("batches/st/given/") for j in ("st-1", "st-2", "st-5"))

    assert composed.status == "completed", composed.error
    batch = db.batches.get_batch("st")
    assert batch.status == BatchStatus.COMPLETED and "st-3 CLIP_AUDIO_ONLY" in batch.error
    # each normalized clip lasts its span: out - in, or in + duration_seconds, or 0..out
    spans = {"st-0": 2.0, "st-1": 2.5, "st-2": 3.0, "st-4": 2.0, "st-5": 2.0}
    for job_id, span in spans.items():
        assert abs(composed.clip_durations[job_id] - span) < 0.05, (job_id, composed.clip_durations[job_id])
    timeline = Timeline.from_json(
        storage.get_file(composed.video_key.removesuffix(".mp4") + ".timeline.json", tmp_path / "t.json").read_text()
    )
    assert [clip.source for clip in timeline.clips] == [jobs[j].video_url for j in spans]  # sort order, bad one left out
    info = probe(storage.path(composed.video_key), count_frames=True)
    assert (info.width, info.height, info.fps) == (1280, 720, 30.0)  # the one output the batch asks for
    assert abs(info.duration - composed.planned_duration_s) < 0.1
    events = [json.loads(row.body)["event"] for row in db.outbox.rows("st")]
    assert events.count("clip.completed") == 5 and events.count("clip.failed") == 1 and events[-1] == "batch.completed"


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda d: audio_only(d / "x.m4a"), ErrorCode.CLIP_AUDIO_ONLY),
        (lambda d: truncated(d / "t.mp4", video_clip(d / "full.mp4")), ErrorCode.CLIP_TRUNCATED),
        (lambda d: write_photo(d / "p.jpg"), ErrorCode.CLIP_NOT_VIDEO),
    ],
    ids=["audio only", "truncated", "a photo"],
)
def test_a_batch_of_only_bad_clips_fails_no_usable_source(stack, tmp_path, make, code):
    db, storage, generators = stack
    src = tmp_path / "src"
    src.mkdir()
    uri = _stored(storage, tmp_path, "bad", make(src))
    db.batches.insert_batch({"id": "bad", "listing_id": "L"}, [{"id": "bad-0", "image_url": uri, "clip_url": uri}])
    work = tmp_path / "work"
    work.mkdir()
    report = take_in_batch(db, storage, db.batches.get_batch("bad"), db.batches.get_jobs("bad"), work, generators.fetch_policy(),
                           quota=QuotaLimits())  # fmt: skip
    assert report.status is IntakeStatus.NO_USABLE_PHOTO
    assert db.batches.get_job("bad-0").error_code == code and db.batches.get_batch("bad").error_code == ErrorCode.NO_USABLE_PHOTO


def test_a_given_clip_url_to_a_private_address_is_refused(stack, tmp_path):
    """The SSRF-safe downloader's policy: a loopback URL not in MEDIA_ALLOWED_PRIVATE_HOSTS fails the job."""
    db, storage, _generators = stack
    from zencourt_pipeline.net.policy import FetchPolicy
    from zencourt_pipeline.pipeline.given_clips import ingest_given_clips

    db.batches.insert_batch({"id": "ss", "listing_id": "L"}, [{"id": "ss-0", "image_url": "x", "clip_url": "https://127.0.0.1/a.mp4"}])
    (result,) = ingest_given_clips(db.batches, storage, db.batches.get_batch("ss"), db.batches.get_jobs("ss"), tmp_path, FetchPolicy())
    assert result.status is ClipOutcome.FAILED and result.error_code == ErrorCode.INVALID_INPUT
    assert "loopback" in result.error_message


def test_an_operator_cannot_regenerate_a_given_clip(stack):
    from zencourt_pipeline.pipeline.regenerate import RegenerationRefused, plan_regeneration

    db, _storage, _generators = stack
    db.batches.insert_batch({"id": "rg", "listing_id": "L"}, [{"id": "rg-0", "image_url": "https://c.example.com/a.mp4",
                                                       "clip_url": "https://c.example.com/a.mp4"}])  # fmt: skip
    db.batches.fail_job("rg-0", ErrorCode.CLIP_TRUNCATED, "cut short")
    with pytest.raises(RegenerationRefused) as refused:
        plan_regeneration(db, db.batches.get_batch("rg"), db.batches.get_jobs("rg"), ["rg-0"])
    assert refused.value.code is ErrorCode.INVALID_INPUT and "given clip" in refused.value.message


def test_a_clip_only_batch_is_ready_to_compose_right_after_intake(stack, tmp_path):
    """No task to wait for: the completions sensor's state is ready once the clips are stored; an
    absent out point stops at the clip's end when in + duration_seconds is past it."""
    db, storage, generators = stack
    src = tmp_path / "src"
    src.mkdir()
    uris = [_stored(storage, tmp_path, f"{i}.mp4", video_clip(src / f"{i}.mp4", seconds=3)) for i in range(2)]
    db.batches.insert_batch({"id": "co", "listing_id": "L"},
                    [{"id": f"co-{i}", "sort_order": i, "image_url": uri, "clip_url": uri} for i, uri in enumerate(uris)])  # fmt: skip
    assert generation_state(db.liveness, "co")[0] is False
    work = tmp_path / "work"
    work.mkdir()
    report = take_in_batch(db, storage, db.batches.get_batch("co"), db.batches.get_jobs("co"), work, generators.fetch_policy(),
                           quota=QuotaLimits(listing_quota=1))  # fmt: skip  # nothing is generated: the quota is not touched
    assert report.status is IntakeStatus.TAKEN_IN and report.count_clips(ClipOutcome.READY) == 2
    assert {job.status for job in db.batches.get_jobs("co")} == {JobStatus.PROCESSING}
    # no out point, duration_seconds 5, clips of 3 s: the out point is the clip's end, written back
    assert {(job.clip_out_seconds, job.seconds) for job in db.batches.get_jobs("co")} == {(3.0, 3.0)}
    assert generation_state(db.liveness, "co")[0] is True and db.ledger.tasks_for_batch("co") == []
