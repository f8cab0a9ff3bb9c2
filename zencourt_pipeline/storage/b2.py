"""Backblaze B2 through its S3-compatible API (boto3), behind the `Storage` interface.

Client configuration
    The S3 client is built here, not with `dagster_aws.s3.S3Resource`: that resource has no
    field for a `botocore.config.Config`, and B2 needs one. boto3/botocore >= 1.36 send CRC32
    checksum headers on every upload by default and B2 answers them with 400 `InvalidArgument`
    ("Unsupported header"), so the client is built with
    `request_checksum_calculation="when_required"` and `response_checksum_validation="when_required"`
    (s3transfer >= 0.11.2 honours the same settings for `upload_file`/`download_file`).
    SigV4 only; botocore's `standard` retry mode (5 attempts) retries 5xx, throttling
    (429/503 SlowDown) and connection errors with backoff, so no retry loop lives here.

Atomic publish: single PUT or multipart, no temporary key
    A reader must never see a half-written object under a final key. S3 semantics already give
    that without staging: a `PutObject` makes the object visible only once the whole body has
    been received (an interrupted PUT creates nothing), and a multipart upload's parts are
    invisible until `CompleteMultipartUpload`, which publishes the object in one step. Both
    replace an existing object atomically (readers see the old or the new one). So:

    * files up to `multipart_threshold` (default 64 MiB): one PUT;
    * larger files: multipart upload through s3transfer (`TransferConfig`, parts >= 5 MiB,
      at most 10,000 parts: s3transfer grows the part size for very large files). When any
      part fails, s3transfer aborts the multipart upload (`AbortMultipartUpload`), so no
      parts linger. A process killed mid-upload can leave an *incomplete* multipart upload
      (never an object): `abort_incomplete_uploads()` cleans those up, and a B2 lifecycle rule
      (`daysFromStartingToCancelingUnfinishedLargeFiles`) does the same on the bucket side.

    The alternative (upload to `.incoming/<uuid>/<key>`, verify, `copy_object`, delete) was
    rejected: it costs two extra requests and a server-side copy per file, needs multipart
    copy above 5 GB, and a crash between its steps leaves orphaned temporary objects, while it
    adds no atomicity that PUT/CompleteMultipartUpload do not already have.

    After the upload the object is checked with `HeadObject`: its size must equal the local
    file's (S3/B2 refuse a body shorter than its Content-Length, so a mismatch means another
    writer replaced the key in between); a mismatch raises `STORAGE_UPLOAD_FAILED` and the
    caller's retry publishes again. The object is not deleted then: it is someone else's.
    Transfer integrity otherwise rests on TLS; no Content-MD5 or CRC header is sent, as B2's
    support for them is not what the pipeline should depend on.

Content types
    Every upload carries `ContentType` (the argument, else `content_type_for(key)`); without it
    B2 stores `binary/octet-stream`, and Runway refuses inputs whose HEAD shows that.

Errors
    botocore/s3transfer errors become `StorageError` with `STORAGE_UPLOAD_FAILED`,
    `STORAGE_DOWNLOAD_FAILED` or `STORAGE_DELETE_FAILED`; bad keys and presign lifetimes outside
    1..604,800 s raise `INVALID_INPUT`. Credentials never appear in messages or logs.

The bucket is private (B2 has no per-object ACLs): downloads go through presigned GET URLs
(`url`), and `public_https_url` is None.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from zencourt_pipeline.domain import StorageBackend
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.storage.base import (
    MAX_SIGNED_URL_SECONDS,
    Storage,
    StorageError,
    content_type_for,
    validate_key,
)

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB  # S3/B2 minimum multipart part size (all parts but the last)
MAX_SINGLE_PUT = 5 * 1024 * MIB  # S3/B2 single PUT ceiling: 5 GB
DEFAULT_MULTIPART_THRESHOLD = 64 * MIB
DEFAULT_MULTIPART_CHUNKSIZE = 16 * MIB

_NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}


def build_client_config(timeout_seconds: float = 60.0, max_pool_connections: int = 10) -> Config:
    """The botocore config every B2 client needs (see the module docstring)."""
    return Config(
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        signature_version="s3v4",
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=timeout_seconds,
        read_timeout=timeout_seconds,
        max_pool_connections=max_pool_connections,
        s3={"addressing_style": "path"},
    )


def _error_code(exc: BaseException) -> str | None:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _NOT_FOUND_CODES or status == 404:
            return "NotFound"
        return str(code) if code else (str(status) if status else None)
    return None


def _describe(exc: BaseException) -> str:
    """A short, credential-free description of a boto error."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"{error.get('Code', 'Error')} (HTTP {status}): {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


_SESSION: boto3.session.Session | None = None
_SESSION_LOCK = threading.Lock()


def _new_client(*, endpoint: str, region: str, key_id: str, application_key: str, config: Config):
    """An S3 client with explicit credentials (never the ambient AWS credential chain).

    One boto3 session is shared so that botocore's service models are loaded once (a fresh
    session costs ~0.4 s); sessions are not thread-safe, so client creation holds a lock.
    The clients themselves are thread-safe.
    """
    global _SESSION
    with _SESSION_LOCK:
        if _SESSION is None:
            _SESSION = boto3.session.Session()
        return _SESSION.client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id=key_id,
            aws_secret_access_key=application_key,
            config=config,
        )


class B2Storage(Storage):
    """Objects in one private B2 bucket, addressed as `s3://<bucket>/<key>`."""

    name = StorageBackend.B2

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        key_id: str | None,
        application_key: str | None,
        bucket: str | None,
        region: str | None = "us-west-002",
        timeout_seconds: float = 60.0,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        multipart_chunksize: int = DEFAULT_MULTIPART_CHUNKSIZE,
        max_concurrency: int = 4,
    ):
        region = region or "us-west-002"
        missing = [
            name
            for name, value in (
                ("B2_KEY_ID", key_id),
                ("B2_APPLICATION_KEY", application_key),
                ("B2_BUCKET_NAME", bucket),
            )
            if not value
        ]
        if missing:
            raise StorageError(ErrorCode.INVALID_INPUT, f"B2 storage is not configured: set {', '.join(missing)}")
        if multipart_chunksize < MIN_PART_SIZE:
            raise StorageError(
                ErrorCode.INVALID_INPUT, f"multipart_chunksize must be at least {MIN_PART_SIZE} bytes (5 MiB)"
            )
        if not MIN_PART_SIZE <= multipart_threshold <= MAX_SINGLE_PUT:
            raise StorageError(ErrorCode.INVALID_INPUT, "multipart_threshold must be between 5 MiB and 5 GiB")
        self.endpoint = (endpoint or f"https://s3.{region}.backblazeb2.com").rstrip("/")
        self.region = region
        self.bucket = bucket
        self.timeout_seconds = timeout_seconds
        self.transfer_config = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunksize,
            max_concurrency=max_concurrency,
            use_threads=True,
        )
        self.client_config = build_client_config(
            timeout_seconds, max_pool_connections=max(10, max_concurrency * 2)
        )
        self.client = _new_client(
            endpoint=self.endpoint,
            region=region,
            key_id=key_id,
            application_key=application_key,
            config=self.client_config,
        )

    def close(self) -> None:
        """Close the client's connection pool (idempotent); the storage is not used afterwards."""
        self.client.close()

    def __repr__(self) -> str:  # no credentials
        return f"B2Storage(endpoint={self.endpoint!r}, bucket={self.bucket!r}, region={self.region!r})"

    # -- writes ------------------------------------------------------------------------------
    def put_file(self, key: str, path: Path, content_type: str | None = None) -> str:
        validate_key(key)
        path = Path(path)
        content_type = content_type or content_type_for(key)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise StorageError(ErrorCode.STORAGE_UPLOAD_FAILED, f"cannot read {path}: {exc.strerror or exc}") from exc
        multipart = size >= self.transfer_config.multipart_threshold
        try:
            # upload_file chooses PUT below the threshold and multipart above it, and aborts
            # the multipart upload when a part fails.
            self.client.upload_file(
                str(path),
                self.bucket,
                key,
                ExtraArgs={"ContentType": content_type},
                Config=self.transfer_config,
            )
        except Exception as exc:  # botocore, s3transfer, OS or injected: all are upload failures
            cause = exc.__cause__ if isinstance(exc, Boto3Error) and exc.__cause__ else exc
            logger.warning("upload of %s failed: %s", key, _describe(cause))
            raise StorageError(
                ErrorCode.STORAGE_UPLOAD_FAILED, f"upload of {key!r} failed: {_describe(cause)}"
            ) from exc
        self._verify_upload(key, size)
        logger.debug(
            "uploaded %s (%d bytes, %s, %s)", key, size, content_type, "multipart" if multipart else "put"
        )
        return self.uri(key)

    def _verify_upload(self, key: str, size: int) -> None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(ErrorCode.STORAGE_UPLOAD_FAILED, f"cannot verify {key!r}: {_describe(exc)}") from exc
        if head.get("ContentLength") != size:
            raise StorageError(
                ErrorCode.STORAGE_UPLOAD_FAILED,
                f"upload of {key!r} did not verify: stored size {head.get('ContentLength')} != local size {size}",
            )

    def delete(self, key: str) -> bool:
        validate_key(key)
        existed = self.exists(key, error_code=ErrorCode.STORAGE_DELETE_FAILED)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            if _error_code(exc) == "NotFound":
                return False
            raise StorageError(
                ErrorCode.STORAGE_DELETE_FAILED, f"delete of {key!r} failed: {_describe(exc)}"
            ) from exc
        return existed

    def abort_incomplete_uploads(self, older_than: timedelta = timedelta(hours=24), prefix: str = "") -> int:
        """Abort multipart uploads started more than `older_than` ago (left by killed processes).

        Returns how many were aborted. Safe to run from a schedule: an upload in progress is
        younger than any sensible `older_than`.
        """
        cutoff = datetime.now(UTC) - older_than
        aborted = 0
        try:
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] <= cutoff:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        aborted += 1
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(
                ErrorCode.STORAGE_DELETE_FAILED, f"aborting incomplete uploads failed: {_describe(exc)}"
            ) from exc
        return aborted

    # -- reads -------------------------------------------------------------------------------
    def get_file(self, key: str, dest: Path) -> Path:
        validate_key(key)
        dest = Path(dest)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            if _error_code(exc) == "NotFound":
                raise StorageError(ErrorCode.STORAGE_DOWNLOAD_FAILED, f"no object at {key!r}") from exc
            raise StorageError(
                ErrorCode.STORAGE_DOWNLOAD_FAILED, f"download of {key!r} failed: {_describe(exc)}"
            ) from exc
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        os.close(fd)
        try:
            self.client.download_file(self.bucket, key, tmp, Config=self.transfer_config)
            got = os.path.getsize(tmp)
            if got != head["ContentLength"]:
                raise StorageError(
                    ErrorCode.STORAGE_DOWNLOAD_FAILED,
                    f"download of {key!r} is {got} bytes, expected {head['ContentLength']}",
                )
            os.replace(tmp, dest)
        except StorageError:
            Path(tmp).unlink(missing_ok=True)
            raise
        except Exception as exc:
            Path(tmp).unlink(missing_ok=True)
            raise StorageError(
                ErrorCode.STORAGE_DOWNLOAD_FAILED, f"download of {key!r} failed: {_describe(exc)}"
            ) from exc
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest

    def exists(self, key: str, *, error_code: ErrorCode = ErrorCode.STORAGE_DOWNLOAD_FAILED) -> bool:
        validate_key(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except (BotoCoreError, ClientError) as exc:
            if _error_code(exc) == "NotFound":
                return False
            raise StorageError(error_code, f"cannot check {key!r}: {_describe(exc)}") from exc

    def list_keys(self, prefix: str = "") -> list[str]:
        keys: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", []))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(ErrorCode.STORAGE_DOWNLOAD_FAILED, f"cannot list {prefix!r}: {_describe(exc)}") from exc
        return sorted(keys)

    def head(self, key: str) -> dict[str, Any] | None:
        """Size, content type and ETag of `key`, or None when absent."""
        validate_key(key)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            if _error_code(exc) == "NotFound":
                return None
            raise StorageError(ErrorCode.STORAGE_DOWNLOAD_FAILED, f"cannot check {key!r}: {_describe(exc)}") from exc
        return {
            "size": head.get("ContentLength"),
            "content_type": head.get("ContentType"),
            "etag": str(head.get("ETag", "")).strip('"'),
        }

    def url(self, key: str, expires_in: int = 3600) -> str:
        validate_key(key)
        if isinstance(expires_in, bool) or not isinstance(expires_in, int):
            raise StorageError(
                ErrorCode.INVALID_INPUT, f"expires_in must be a whole number of seconds, got {expires_in!r}"
            )
        if not 1 <= expires_in <= MAX_SIGNED_URL_SECONDS:
            raise StorageError(
                ErrorCode.INVALID_INPUT,
                f"expires_in must be between 1 and {MAX_SIGNED_URL_SECONDS} seconds (7 days, the B2/S3 "
                f"presigned URL limit), got {expires_in}",
            )
        try:
            return self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in
            )
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(
                ErrorCode.STORAGE_DOWNLOAD_FAILED, f"cannot sign a URL for {key!r}: {_describe(exc)}"
            ) from exc

    # -- addressing --------------------------------------------------------------------------
    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{validate_key(key)}"

    def key_from_uri(self, uri: str) -> str | None:
        prefix = f"s3://{self.bucket}/"
        if not uri.startswith(prefix):
            return None
        key = uri[len(prefix) :]
        try:
            return validate_key(key)
        except StorageError:
            return None

    def ping(self) -> bool:
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return True
        except (BotoCoreError, ClientError) as exc:
            logger.warning("B2 bucket %s is not reachable: %s", self.bucket, _describe(exc))
            return False

    def public_https_url(self, key: str) -> str | None:
        return None  # private bucket: only presigned URLs

    # -- hooks (tests, instrumentation) ----------------------------------------------------------
    def register_event(self, event_name: str, handler: Callable[..., Any]) -> None:
        """Attach a botocore event handler to this storage's client (e.g. `before-send.s3.UploadPart`)."""
        self.client.meta.events.register(event_name, handler)
