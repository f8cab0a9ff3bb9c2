"""Intake under a failing storage: the storage's fault fails the step (retried), the photo's fails its job."""

from __future__ import annotations

import pytest

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.net.policy import FetchPolicy
from zencourt_pipeline.pipeline.intake import ingest_photos
from zencourt_pipeline.storage.base import StorageError
from zencourt_pipeline.storage.local import LocalStorage
from zencourt_pipeline_tests.conftest import make_batch
from zencourt_pipeline_tests.defs.conftest import write_photo


class ReadsFail(LocalStorage):
    """Local storage answering every download with an error (a 503 window), uploads working."""

    def get_file(self, key, dest):
        raise StorageError(ErrorCode.STORAGE_DOWNLOAD_FAILED, f"503 SlowDown on {key}")


def _batch_with_stored_photo(db, storage, tmp_path, batch_id: str, store: bool) -> None:
    key = f"uploads/{batch_id}/photo.jpg"
    if store:
        LocalStorage(storage.root).put_file(key, write_photo(tmp_path / f"{batch_id}.jpg"), "image/jpeg")
    batch, jobs = make_batch(batch_id, n_jobs=1)
    jobs[0]["image_url"] = storage.uri(key)
    db.batches.insert_batch(batch, jobs)


def test_a_failing_read_of_a_stored_photo_fails_the_step_not_the_job(sqlite_db, tmp_path):
    """The strict soak caught it: a storage 503 window failed a job STORAGE_DOWNLOAD_FAILED for good."""
    storage = ReadsFail(tmp_path / "storage")
    _batch_with_stored_photo(sqlite_db, storage, tmp_path, "rf", store=True)
    with pytest.raises(StorageError):
        ingest_photos(sqlite_db.batches, storage, sqlite_db.batches.get_batch("rf"), sqlite_db.batches.get_jobs("rf"), tmp_path, FetchPolicy())
    assert not sqlite_db.batches.get_job("rf-0").terminal
    # storage back: the retried step takes the photo in
    working = LocalStorage(tmp_path / "storage")
    (result,) = ingest_photos(sqlite_db.batches, working, sqlite_db.batches.get_batch("rf"), sqlite_db.batches.get_jobs("rf"), tmp_path,
                              FetchPolicy())
    assert result.status == "ready"


def test_a_stored_photo_that_is_not_there_fails_its_job(sqlite_db, tmp_path):
    storage = LocalStorage(tmp_path / "storage")
    _batch_with_stored_photo(sqlite_db, storage, tmp_path, "nf", store=False)
    (result,) = ingest_photos(sqlite_db.batches, storage, sqlite_db.batches.get_batch("nf"), sqlite_db.batches.get_jobs("nf"), tmp_path,
                              FetchPolicy())
    assert result.status == "failed" and sqlite_db.batches.get_job("nf-0").status == "failed"
