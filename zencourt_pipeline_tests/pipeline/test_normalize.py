"""Keyframe planning for a batch's clips (pure: rows in, frames out)."""

from __future__ import annotations

from zencourt_pipeline.db.records import Batch, Job, JobStatus
from zencourt_pipeline.pipeline.normalize import planned_keyframes


def _job(index: int, status: str, raw: str | None, video: str | None = None) -> Job:
    return Job(id=f"j{index}", batch_id="b", image_url="https://example.com/p.jpg", status=JobStatus(status),
               raw_clip_key=raw, video_url=video, duration_seconds=5, room_name=f"Room {index}")  # fmt: skip


def _batch(template: str, title: str | None) -> Batch:
    return Batch(id="b", listing_id="L", template=template, title=title)


def test_keyframes_follow_the_clips_the_batch_will_compose():
    jobs = [
        _job(0, "failed", None),  # never composed: the next clip opens the video
        _job(1, "processing", "raw/1"),
        _job(2, "completed", "raw/2", "s3://bucket/clip2.mp4"),  # already normalized (a regeneration)
        _job(3, "processing", "raw/3"),
        _job(4, "processing", None),  # no clip yet: still expected (clip-first normalizes j3 before it arrives)
    ]
    batch = _batch("default", "Loft")
    frames = planned_keyframes(batch, jobs, width=1280, height=720)
    # default: 3 s title + caption cover the whole first clip (nothing to copy, no extra keyframe);
    # later clips: crossfade + caption end at frame 83, the next crossfade starts at 135, and the
    # last clip's 1 s fade to black starts at 120. j3 is a middle clip: j4 is still to come.
    assert frames == {"j1": [], "j2": [83, 135], "j3": [83, 135], "j4": [83, 120]}


def test_no_keyframes_when_the_composition_cannot_be_planned():
    jobs = [_job(0, "processing", "raw/0")]
    assert planned_keyframes(_batch("no-such-template", None), jobs, width=1280, height=720) == {}
    assert planned_keyframes(_batch("default", None), [_job(0, "failed", None)], width=1280, height=720) == {}


# -- storage failing under normalize -----------------------------------------------------------
import pytest  # noqa: E402

from zencourt_pipeline.errors import ErrorCode  # noqa: E402
from zencourt_pipeline.pipeline.normalize import normalize_outputs  # noqa: E402
from zencourt_pipeline.storage.base import StorageError  # noqa: E402
from zencourt_pipeline.storage.local import LocalStorage  # noqa: E402
from zencourt_pipeline_tests.conftest import make_batch  # noqa: E402
from zencourt_pipeline_tests.fakes.server import sample_mp4  # noqa: E402


class UploadsFail(LocalStorage):
    """Local storage whose uploads of normalized clips fail (a storage outage), reads work."""

    def put_file(self, key, path, content_type=None):
        if "/clips/" in key:
            raise StorageError(ErrorCode.STORAGE_UPLOAD_FAILED, f"503 SlowDown on {key}")
        return super().put_file(key, path, content_type)


def test_a_failed_upload_fails_the_step_not_the_clip(sqlite_db, tmp_path):
    """The strict soak caught it: a storage 503 window failed a normalized clip for good
    (STORAGE_UPLOAD_FAILED) and its batch ALL_CLIPS_FAILED. The upload error now fails the step
    (retried, then the compose run re-attempted) and the job stays open with its raw clip."""
    storage = UploadsFail(tmp_path / "storage")
    sqlite_db.batches.insert_batch(*make_batch("up", n_jobs=1))
    sqlite_db.batches.start_batch("up")
    storage.put_file("batches/up/generated/up-0.mp4", sample_mp4(1280, 720), "video/mp4")
    sqlite_db.batches.update_job("up-0", raw_clip_key="batches/up/generated/up-0.mp4")
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(StorageError):
        normalize_outputs(sqlite_db, storage, sqlite_db.batches.get_batch("up"), sqlite_db.batches.get_jobs("up"), work)
    job = sqlite_db.batches.get_job("up-0")
    assert not job.terminal and job.error_code is None and job.raw_clip_key

    working = LocalStorage(tmp_path / "storage")  # storage is back: the retried step completes the clip
    (result,) = normalize_outputs(sqlite_db, working, sqlite_db.batches.get_batch("up"), sqlite_db.batches.get_jobs("up"), work)
    assert result.status == "completed" and sqlite_db.batches.get_job("up-0").status == JobStatus.COMPLETED


def test_a_raw_clip_missing_from_storage_fails_its_job(sqlite_db, tmp_path):
    storage = LocalStorage(tmp_path / "storage")
    sqlite_db.batches.insert_batch(*make_batch("gone", n_jobs=1))
    sqlite_db.batches.update_job("gone-0", raw_clip_key="batches/gone/generated/gone-0.mp4")  # never stored
    (result,) = normalize_outputs(sqlite_db, storage, sqlite_db.batches.get_batch("gone"), sqlite_db.batches.get_jobs("gone"), tmp_path)
    assert result.status == "failed" and result.error_code == ErrorCode.STORAGE_DOWNLOAD_FAILED
    assert sqlite_db.batches.get_job("gone-0").status == JobStatus.FAILED
