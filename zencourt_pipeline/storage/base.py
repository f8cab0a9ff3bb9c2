"""The storage interface every backend implements (put, get, exists, url, delete)."""

from __future__ import annotations

import mimetypes
import re
from abc import ABC, abstractmethod
from pathlib import Path

from zencourt_pipeline.errors import CodedError, ErrorCode

KEY_PATTERN = re.compile(r"^[A-Za-z0-9!_.*'()/-]{1,1024}$")
MAX_SIGNED_URL_SECONDS = 604_800  # B2/S3 presigned URL ceiling: 7 days

_CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".json": "application/json",
    ".csv": "text/csv",
    ".parquet": "application/vnd.apache.parquet",
}


class StorageError(CodedError):
    """A storage operation failed. `code` is one of the error codes of docs/contract.md section 3
    (an `ErrorCode`: INVALID_INPUT, STORAGE_DOWNLOAD_FAILED, STORAGE_UPLOAD_FAILED, STORAGE_DELETE_FAILED)."""


def content_type_for(key: str) -> str:
    suffix = Path(key).suffix.lower()
    return _CONTENT_TYPES.get(suffix) or mimetypes.guess_type(key)[0] or "application/octet-stream"


def validate_key(key: str) -> str:
    if not KEY_PATTERN.match(key) or key.startswith("/") or ".." in key.split("/"):
        raise StorageError(ErrorCode.INVALID_INPUT, f"invalid storage key {key!r}")
    return key


class Storage(ABC):
    """Keys are relative, '/'-separated. Writes are atomic: a key holds the whole file or nothing."""

    name: str

    @abstractmethod
    def put_file(self, key: str, path: Path, content_type: str | None = None) -> str:
        """Publish a local file under `key`; returns the object's URI (see `uri`)."""

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> str:
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=Path(key).suffix) as handle:
            handle.write(data)
            handle.flush()
            return self.put_file(key, Path(handle.name), content_type)

    @abstractmethod
    def get_file(self, key: str, dest: Path) -> Path:
        """Download `key` to `dest` (atomically); raises StorageError STORAGE_DOWNLOAD_FAILED."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def url(self, key: str, expires_in: int = 3600) -> str:
        """A URL a client can download from (presigned for private buckets, file:// locally)."""

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Delete `key`; True when something was deleted."""

    @abstractmethod
    def uri(self, key: str) -> str:
        """The stable address stored in the database (s3://bucket/key or file:///path)."""

    @abstractmethod
    def key_from_uri(self, uri: str) -> str | None:
        """Inverse of `uri`; None when the URI is not in this storage."""

    @abstractmethod
    def list_keys(self, prefix: str = "") -> list[str]:
        """Keys under `prefix`, sorted."""

    def ping(self) -> bool:
        return True

    def public_https_url(self, key: str) -> str | None:
        """An unsigned HTTPS URL that third parties (Runway) can HEAD and GET, if the backend has one."""
        return None


def storage_is_failing(storage: Storage, exc: StorageError, source_url: str) -> bool:
    """Whether a storage error is the storage's (an upload, or a read of a source that is there)
    rather than the source's (a missing object, a bad key): the step is retried, not the job failed."""
    if exc.code == ErrorCode.STORAGE_UPLOAD_FAILED:
        return True
    key = storage.key_from_uri(source_url)
    return key is not None and exc.code == ErrorCode.STORAGE_DOWNLOAD_FAILED and storage.exists(key)
