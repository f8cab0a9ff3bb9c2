"""LocalStorage: atomic publish, key validation, URI round trip."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from zencourt_pipeline.storage import local as local_module
from zencourt_pipeline.storage.base import StorageError, content_type_for, validate_key
from zencourt_pipeline.storage.local import LocalStorage


def test_put_get_round_trip(storage: LocalStorage, tmp_path: Path):
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"x" * 3000)
    uri = storage.put_file("batches/b1/clip.mp4", source)
    assert uri.startswith("file://")
    assert storage.key_from_uri(uri) == "batches/b1/clip.mp4"
    assert storage.exists("batches/b1/clip.mp4")
    dest = storage.get_file("batches/b1/clip.mp4", tmp_path / "out" / "copy.mp4")
    assert dest.read_bytes() == source.read_bytes()
    assert storage.url("batches/b1/clip.mp4") == uri
    assert storage.delete("batches/b1/clip.mp4") is True
    assert storage.delete("batches/b1/clip.mp4") is False
    assert not storage.exists("batches/b1/clip.mp4")


def test_failing_copy_leaves_no_final_file_and_no_temp(storage: LocalStorage, tmp_path: Path, monkeypatch):
    source = tmp_path / "big.mp4"
    source.write_bytes(b"y" * (3 * 1024 * 1024))
    calls = {"n": 0}

    def broken_copyfileobj(src, dst, length=0):
        dst.write(src.read(1024 * 1024))  # part of the file lands in the temp file, then...
        calls["n"] += 1
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(local_module.shutil, "copyfileobj", broken_copyfileobj)
    with pytest.raises(OSError):
        storage.put_file("batches/b1/big.mp4", source)
    assert calls["n"] == 1
    assert not storage.exists("batches/b1/big.mp4")
    leftovers = [p for p in storage.root.rglob("*") if p.is_file()]
    assert leftovers == []


def test_failing_overwrite_keeps_previous_version(storage: LocalStorage, tmp_path: Path, monkeypatch):
    old = tmp_path / "v1.jpg"
    old.write_bytes(b"old")
    storage.put_file("p/photo.jpg", old)
    new = tmp_path / "v2.jpg"
    new.write_bytes(b"new" * 1000)

    def broken(src, dst, length=0):
        raise OSError("disk went away")

    monkeypatch.setattr(local_module.shutil, "copyfileobj", broken)
    with pytest.raises(OSError):
        storage.put_file("p/photo.jpg", new)
    monkeypatch.setattr(local_module.shutil, "copyfileobj", shutil.copyfileobj)
    assert storage.path("p/photo.jpg").read_bytes() == b"old"


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/abs/path.mp4",
        "../escape.mp4",
        "a/../../b.mp4",
        "has space.mp4",
        "semi;colon",
        "x" * 1025,
        "a\\b",
    ],
)
def test_invalid_keys_are_refused(storage: LocalStorage, tmp_path: Path, key: str):
    source = tmp_path / "f.bin"
    source.write_bytes(b"1")
    with pytest.raises(StorageError) as excinfo:
        storage.put_file(key, source)
    assert excinfo.value.code == "INVALID_INPUT"
    with pytest.raises(StorageError):
        validate_key(key)


def test_get_missing_key_is_a_download_error(storage: LocalStorage, tmp_path: Path):
    with pytest.raises(StorageError) as excinfo:
        storage.get_file("nope/missing.mp4", tmp_path / "x.mp4")
    assert excinfo.value.code == "STORAGE_DOWNLOAD_FAILED"
    assert not (tmp_path / "x.mp4").exists()


def test_key_from_foreign_uri_is_none(storage: LocalStorage, tmp_path: Path):
    assert storage.key_from_uri("s3://bucket/key.mp4") is None
    assert storage.key_from_uri((tmp_path / "elsewhere" / "a.mp4").as_uri()) is None
    assert storage.key_from_uri("https://example.com/a.mp4") is None


def test_ping_and_content_types(storage: LocalStorage):
    assert storage.ping()
    assert storage.public_https_url("a.mp4") is None
    assert content_type_for("x/clip.MP4") == "video/mp4"
    assert content_type_for("x/photo.jpg") == "image/jpeg"
    assert content_type_for("x/unknown.zzz") == "application/octet-stream"
