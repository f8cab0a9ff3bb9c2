"""A batch's narration at intake (issue 14 point 4): fetched over the SSRF-safe downloader or from
our storage, sniffed and checked, stored; a bad one (not audio, too big, too long for the clips, a
private address) fails the batch, and every job, with the code that says why, before anything is
generated."""

from __future__ import annotations

from pathlib import Path

import pytest

from zencourt_pipeline.db.records import BatchStatus, JobStatus
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.pipeline import narration as narration_stage
from zencourt_pipeline.pipeline.intake import IntakeStatus, take_in_batch
from zencourt_pipeline.pipeline.quota import QuotaLimits
from zencourt_pipeline_tests.defs.conftest import write_photo
from zencourt_pipeline_tests.media.test_narration import KINDS, make_voice
from zencourt_pipeline_tests.net.server import LocalServer, Route


@pytest.fixture(scope="module")
def voice(tmp_path_factory) -> Path:
    return make_voice(tmp_path_factory.mktemp("voice") / "voice.m4a", codec=KINDS["m4a"])  # 7 s


def _intake(stack, tmp_path: Path, batch_id: str, narration_url: str, *, seconds: int = 5, n_jobs: int = 2):
    db, storage, generators = stack
    photo = write_photo(tmp_path / "p.jpg")
    storage.put_file("uploads/p.jpg", photo)
    jobs = [{"id": f"{batch_id}-{i}", "sort_order": i, "image_url": storage.uri("uploads/p.jpg"),
             "duration_seconds": seconds} for i in range(n_jobs)]  # fmt: skip
    db.batches.insert_batch({"id": batch_id, "listing_id": "L", "narration_url": narration_url}, jobs)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return take_in_batch(db, storage, db.batches.get_batch(batch_id), db.batches.get_jobs(batch_id), work,
                         generators.fetch_policy(), quota=QuotaLimits())  # fmt: skip


def test_a_served_narration_is_fetched_checked_and_stored(stack, tmp_path, voice):
    db, storage, _ = stack
    with LocalServer() as server:
        server.routes["/voice"] = Route(body=voice.read_bytes(), content_type="application/octet-stream")
        report = _intake(stack, tmp_path, "nv", server.url("/voice"))
    assert report.status is IntakeStatus.TAKEN_IN, report.error_message
    batch = db.batches.get_batch("nv")
    assert batch.status == BatchStatus.PROCESSING and batch.narration_key == "batches/nv/narration.m4a"
    assert storage.exists(batch.narration_key)
    # a storage URI is read from the storage (and a re-run keeps the stored copy)
    storage.put_file("uploads/voice.m4a", voice)
    assert _intake(stack, tmp_path, "ns", storage.uri("uploads/voice.m4a")).status is IntakeStatus.TAKEN_IN
    assert db.batches.get_batch("ns").narration_key == "batches/ns/narration.m4a"


def _rejected(stack, report, batch_id: str, code: ErrorCode, words: str) -> None:
    db = stack[0]
    assert report.status is IntakeStatus.REJECTED and report.error_code is code, report.error_message
    assert words in report.error_message, report.error_message
    batch = db.batches.get_batch(batch_id)
    assert (batch.status, batch.error_code, batch.narration_key) == (BatchStatus.FAILED, code, None)
    assert {(job.status, job.error_code) for job in db.batches.get_jobs(batch_id)} == {(JobStatus.FAILED, code)}
    assert db.ledger.tasks_for_batch(batch_id) == []  # nothing generated, nothing paid


def test_bad_narrations_fail_the_batch_with_their_codes(stack, tmp_path, voice, monkeypatch):
    long_voice = make_voice(tmp_path / "long.mp3", codec=KINDS["mp3"], seconds=16.0, speech=((0.5, 15.5),))
    with LocalServer() as server:
        server.routes["/page"] = Route(body=b"<html><body>Not found</body></html>", content_type="audio/mpeg")
        server.routes["/voice"] = Route(body=voice.read_bytes(), content_type="audio/mp4")
        _rejected(stack, _intake(stack, tmp_path, "n1", server.url("/page")), "n1", ErrorCode.NARRATION_INVALID,
                  "an HTML page, not an MP3, WAV, M4A or AAC file")  # fmt: skip
        server.routes["/long"] = Route(body=long_voice.read_bytes(), content_type="audio/mpeg")
        # 16 s of voice over one 2 s clip: the last clip would be held over 10 s
        _rejected(stack, _intake(stack, tmp_path, "n2", server.url("/long"), seconds=2, n_jobs=1), "n2",
                  ErrorCode.NARRATION_TOO_LONG, "held at most 10 s")  # fmt: skip
        monkeypatch.setattr(narration_stage, "NARRATION_MAX_BYTES", 10_000)
        _rejected(stack, _intake(stack, tmp_path, "n3", server.url("/voice")), "n3", ErrorCode.NARRATION_TOO_LARGE,
                  "file too large")  # fmt: skip
    # a private address the fetch policy refuses (only 127.0.0.1 is allowed here): nothing is fetched
    _rejected(stack, _intake(stack, tmp_path, "n4", "https://10.1.2.3/voice.mp3"), "n4", ErrorCode.INVALID_INPUT, "private")
