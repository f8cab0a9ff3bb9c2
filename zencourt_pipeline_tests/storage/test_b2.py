"""B2Storage against moto's S3 server over real HTTP on loopback, with real boto3.

moto does not reproduce B2's 400 on the default CRC32 checksum headers, so the client's
config is asserted directly, and the headers actually sent are checked for checksum fields.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from botocore.awsrequest import AWSResponse
from moto.server import ThreadedMotoServer

from zencourt_pipeline.defs.resources import B2StorageResource
from zencourt_pipeline.storage.b2 import MIB, B2Storage
from zencourt_pipeline.storage.base import StorageError

REGION = "us-west-002"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def moto_endpoint():
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _storage(endpoint: str, bucket: str, **kwargs) -> B2Storage:
    return B2Storage(
        endpoint=endpoint,
        key_id="test-key-id",
        application_key="test-application-key",
        bucket=bucket,
        region=REGION,
        timeout_seconds=10,
        **kwargs,
    )


@pytest.fixture
def b2(moto_endpoint) -> B2Storage:
    bucket = f"zc-{uuid.uuid4().hex[:12]}"
    storage = _storage(moto_endpoint, bucket)
    storage.client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    return storage


@pytest.fixture
def b2_small_parts(b2: B2Storage) -> B2Storage:
    """Same bucket, multipart from 5 MiB with 5 MiB parts (the S3 minimum)."""
    return _storage(b2.endpoint, b2.bucket, multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)


def _file(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / name
    block = hashlib.sha256(name.encode()).digest() * 32  # 1 KiB, not all zeros
    with open(path, "wb") as handle:
        for _ in range(size // len(block)):
            handle.write(block)
        handle.write(block[: size % len(block)])
    return path


def _pending_uploads(storage: B2Storage) -> list[dict]:
    return storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", [])


class _Raw:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, *args, **kwargs):
        yield self._body


# -- client configuration ---------------------------------------------------------------------
def test_client_config_is_b2_compatible(b2: B2Storage):
    config = b2.client.meta.config
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"
    assert config.signature_version == "s3v4"
    assert config.retries["mode"] == "standard"
    assert config.retries["total_max_attempts"] == 6  # max_attempts=5 retries after the first try
    assert config.connect_timeout == 10 and config.read_timeout == 10
    assert b2.client.meta.region_name == REGION
    assert b2.client.meta.endpoint_url == b2.endpoint
    assert "test-application-key" not in repr(b2)


def test_defaults_endpoint_from_region():
    storage = B2Storage(key_id="k", application_key="s", bucket="bkt", region="eu-central-003")
    assert storage.endpoint == "https://s3.eu-central-003.backblazeb2.com"
    assert storage.uri("a/b.mp4") == "s3://bkt/a/b.mp4"


def test_missing_credentials_are_refused():
    with pytest.raises(StorageError) as excinfo:
        B2Storage(
            endpoint="https://s3.us-west-002.backblazeb2.com", key_id=None, application_key="", bucket="b"
        )
    assert "B2_KEY_ID" in excinfo.value.message and "B2_APPLICATION_KEY" in excinfo.value.message


def test_dagster_resource_builds_the_same_client(moto_endpoint):
    resource = B2StorageResource(
        endpoint=moto_endpoint,
        key_id="k",
        application_key="s",
        bucket_name="bkt",
        region=REGION,
        timeout_seconds=7,
    )
    storage = resource.get()
    assert isinstance(storage, B2Storage)
    assert storage.client.meta.config.request_checksum_calculation == "when_required"
    assert storage.client.meta.config.response_checksum_validation == "when_required"
    assert storage.client.meta.config.read_timeout == 7


def test_no_checksum_headers_are_sent(b2_small_parts: B2Storage, tmp_path: Path):
    sent: list[tuple[str, dict]] = []
    lock = threading.Lock()

    def record(request, **kwargs):
        with lock:
            sent.append((request.method, {k.lower(): v for k, v in request.headers.items()}))

    b2_small_parts.register_event("before-send.s3", record)
    b2_small_parts.put_file("c/small.jpg", _file(tmp_path, "small.jpg", 2000))
    b2_small_parts.put_file("c/big.mp4", _file(tmp_path, "big.mp4", 11 * MIB))
    assert len(sent) >= 6  # put + head, create + 3 parts + complete + head
    for method, headers in sent:
        offending = [
            name
            for name in headers
            if name.startswith("x-amz-checksum") or name in ("x-amz-sdk-checksum-algorithm", "x-amz-trailer")
        ]
        assert not offending, (method, offending)
        assert "aws-chunked" not in str(headers.get("content-encoding", ""))


# -- put / head / content type ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("b1/clip.mp4", "video/mp4"),
        ("b1/photo.jpg", "image/jpeg"),
        ("b1/blob.unknownext", "application/octet-stream"),
    ],
)
def test_every_upload_has_a_content_type(b2: B2Storage, tmp_path: Path, key: str, expected: str):
    source = _file(tmp_path, Path(key).name, 4096)
    assert b2.put_file(key, source) == f"s3://{b2.bucket}/{key}"
    head = b2.client.head_object(Bucket=b2.bucket, Key=key)
    assert head["ContentType"] == expected
    assert head["ContentLength"] == 4096


def test_explicit_content_type_wins(b2: B2Storage, tmp_path: Path):
    b2.put_file("x/data.bin", _file(tmp_path, "data.bin", 10), content_type="application/x-custom")
    assert b2.head("x/data.bin")["content_type"] == "application/x-custom"


def test_multipart_upload_above_threshold(b2_small_parts: B2Storage, tmp_path: Path):
    source = _file(tmp_path, "big.mp4", 11 * MIB)
    parts = []
    b2_small_parts.register_event(
        "before-send.s3.UploadPart", lambda request, **kw: parts.append(request.url)
    )
    b2_small_parts.put_file("batches/b/video.mp4", source)
    assert len(parts) == 3
    head = b2_small_parts.head("batches/b/video.mp4")
    assert head["size"] == 11 * MIB
    assert head["content_type"] == "video/mp4"
    assert head["etag"].endswith("-3")  # a multipart object
    dest = b2_small_parts.get_file("batches/b/video.mp4", tmp_path / "down" / "video.mp4")
    assert hashlib.md5(dest.read_bytes()).digest() == hashlib.md5(source.read_bytes()).digest()
    assert _pending_uploads(b2_small_parts) == []


def test_failure_in_second_part_leaves_nothing(b2_small_parts: B2Storage, tmp_path: Path):
    source = _file(tmp_path, "big.mp4", 11 * MIB)
    calls = {"n": 0}
    lock = threading.Lock()

    def fail_second_part(request, **kwargs):
        with lock:
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("injected: connection dropped during part 2")

    b2_small_parts.register_event("before-send.s3.UploadPart", fail_second_part)
    with pytest.raises(StorageError) as excinfo:
        b2_small_parts.put_file("batches/b/video.mp4", source)
    assert excinfo.value.code == "STORAGE_UPLOAD_FAILED"
    assert "injected" in excinfo.value.message
    assert not b2_small_parts.exists("batches/b/video.mp4")
    assert _pending_uploads(b2_small_parts) == []  # aborted, no dangling parts
    listed = b2_small_parts.client.list_objects_v2(Bucket=b2_small_parts.bucket).get("Contents", [])
    assert listed == []


def test_failed_single_put_keeps_previous_version(b2: B2Storage, tmp_path: Path):
    b2.put_bytes("p/photo.jpg", b"version-1")

    def fail(request, **kwargs):
        raise RuntimeError("injected: PUT interrupted")

    b2.register_event("before-send.s3.PutObject", fail)
    with pytest.raises(StorageError) as excinfo:
        b2.put_file("p/photo.jpg", _file(tmp_path, "v2.jpg", 5000))
    assert excinfo.value.code == "STORAGE_UPLOAD_FAILED"
    b2.client.meta.events.unregister("before-send.s3.PutObject", fail)
    dest = b2.get_file("p/photo.jpg", tmp_path / "got.jpg")
    assert dest.read_bytes() == b"version-1"


def test_5xx_on_a_part_is_retried_by_botocore(b2_small_parts: B2Storage, tmp_path: Path):
    calls = {"n": 0}
    lock = threading.Lock()

    def flaky(request, **kwargs):
        with lock:
            calls["n"] += 1
            first = calls["n"] == 1
        if first:
            body = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
            return AWSResponse(request.url, 500, {"content-type": "application/xml"}, _Raw(body))
        return None

    b2_small_parts.register_event("before-send.s3.UploadPart", flaky)
    b2_small_parts.put_file("r/video.mp4", _file(tmp_path, "r.mp4", 11 * MIB))
    assert calls["n"] == 4  # 3 parts + 1 retry
    assert b2_small_parts.head("r/video.mp4")["size"] == 11 * MIB


def test_upload_to_missing_bucket_is_an_upload_error(moto_endpoint, tmp_path: Path):
    storage = _storage(moto_endpoint, "no-such-bucket-zc")
    with pytest.raises(StorageError) as excinfo:
        storage.put_file("a.jpg", _file(tmp_path, "a.jpg", 10))
    assert excinfo.value.code == "STORAGE_UPLOAD_FAILED"
    assert "test-application-key" not in str(excinfo.value)
    assert storage.ping() is False


def test_missing_local_file_is_an_upload_error(b2: B2Storage, tmp_path: Path):
    with pytest.raises(StorageError) as excinfo:
        b2.put_file("a.jpg", tmp_path / "absent.jpg")
    assert excinfo.value.code == "STORAGE_UPLOAD_FAILED"


# -- read side -------------------------------------------------------------------------------------
def test_presigned_url_downloads_with_httpx(b2: B2Storage):
    b2.put_bytes("v/clip.mp4", b"\x00\x01video-bytes")
    url = b2.url("v/clip.mp4", expires_in=600)
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=600" in url
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == b"\x00\x01video-bytes"
    assert response.headers["content-type"] == "video/mp4"
    assert b2.url("v/clip.mp4", expires_in=604_800)  # the 7-day maximum is fine


@pytest.mark.parametrize("expires_in", [604_801, 0, -5])
def test_presign_lifetime_outside_limits_is_refused(b2: B2Storage, expires_in: int):
    with pytest.raises(StorageError) as excinfo:
        b2.url("v/clip.mp4", expires_in=expires_in)
    assert excinfo.value.code == "INVALID_INPUT"
    assert "between 1 and 604800 seconds" in excinfo.value.message
    assert str(expires_in) in excinfo.value.message


def test_exists_delete_and_download_errors(b2: B2Storage, tmp_path: Path):
    assert b2.exists("d/x.jpg") is False
    assert b2.delete("d/x.jpg") is False
    b2.put_bytes("d/x.jpg", b"jpeg")
    assert b2.exists("d/x.jpg") is True
    assert b2.delete("d/x.jpg") is True
    assert b2.exists("d/x.jpg") is False
    with pytest.raises(StorageError) as excinfo:
        b2.get_file("d/x.jpg", tmp_path / "x.jpg")
    assert excinfo.value.code == "STORAGE_DOWNLOAD_FAILED"
    assert not (tmp_path / "x.jpg").exists()
    assert list(tmp_path.glob(".x.jpg.*")) == []


def test_uri_round_trip_and_ping(b2: B2Storage):
    uri = b2.uri("batches/b1/clip.mp4")
    assert uri == f"s3://{b2.bucket}/batches/b1/clip.mp4"
    assert b2.key_from_uri(uri) == "batches/b1/clip.mp4"
    assert b2.key_from_uri("s3://other-bucket/batches/b1/clip.mp4") is None
    assert b2.key_from_uri(f"s3://{b2.bucket}/../etc/passwd") is None
    assert b2.key_from_uri("file:///tmp/x.mp4") is None
    assert b2.public_https_url("batches/b1/clip.mp4") is None
    assert b2.ping() is True
    with pytest.raises(StorageError) as excinfo:
        b2.put_bytes("../escape.mp4", b"x")
    assert excinfo.value.code == "INVALID_INPUT"


def test_abort_incomplete_uploads(b2: B2Storage):
    upload = b2.client.create_multipart_upload(Bucket=b2.bucket, Key="left/over.mp4", ContentType="video/mp4")
    assert len(_pending_uploads(b2)) == 1
    # (moto reports every upload as initiated in 2010, so only the "old enough" side is testable)
    assert b2.abort_incomplete_uploads(older_than=timedelta(seconds=0)) == 1
    assert _pending_uploads(b2) == []
    assert upload["UploadId"]


def test_size_mismatch_after_upload_is_an_upload_error(b2: B2Storage, tmp_path: Path):
    def another_writer_replaced_it(parsed, **kwargs):
        parsed["ContentLength"] = parsed.get("ContentLength", 0) + 1

    b2.register_event("after-call.s3.HeadObject", another_writer_replaced_it)
    with pytest.raises(StorageError) as excinfo:
        b2.put_file("m/clip.mp4", _file(tmp_path, "m.mp4", 1000))
    assert excinfo.value.code == "STORAGE_UPLOAD_FAILED"
    assert "stored size 1001 != local size 1000" in excinfo.value.message
    b2.client.meta.events.unregister("after-call.s3.HeadObject", another_writer_replaced_it)
    assert b2.exists("m/clip.mp4")  # not deleted: it may be another writer's object


def test_close_releases_the_client_and_may_be_called_twice(monkeypatch):
    storage = B2Storage(endpoint="https://s3.us-west-002.backblazeb2.com", key_id="k", application_key="s", bucket="b")
    closed = []
    original = storage.client.close
    monkeypatch.setattr(storage.client, "close", lambda: (closed.append(True), original()))
    storage.close()
    storage.close()
    assert closed == [True, True]
