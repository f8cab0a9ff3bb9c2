"""storage/urls.py: stored URIs into playable URLs (public base, presigned B2 over moto, service-signed)."""

from __future__ import annotations

import json
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from moto.server import ThreadedMotoServer
from pydantic import ValidationError

from zencourt_pipeline.config import Settings
from zencourt_pipeline.storage.b2 import B2Storage
from zencourt_pipeline.storage.local import LocalStorage
from zencourt_pipeline.storage.urls import MediaUrls, media_signature, media_signing_key, verify_media_token

REGION = "us-west-002"
NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def moto_endpoint():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def b2(moto_endpoint) -> B2Storage:
    bucket = f"zc-{uuid.uuid4().hex[:12]}"
    storage = B2Storage(
        endpoint=moto_endpoint, key_id="kid", application_key="app-key", bucket=bucket, region=REGION
    )
    storage.client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    yield storage
    storage.close()


def _video(tmp_path: Path) -> Path:
    path = tmp_path / "v.mp4"
    path.write_bytes(uuid.uuid4().bytes * 5000)
    return path


def test_presigned_b2_url_downloads_with_plain_httpx_and_states_its_expiry(b2, tmp_path):
    source = _video(tmp_path)
    uri = b2.put_file("batches/b1/video/listing.mp4", source)
    urls = MediaUrls(b2, expires_seconds=3600, clock=lambda: NOW)
    playable = urls.resolve(uri)
    assert playable.url.startswith(b2.endpoint + f"/{b2.bucket}/batches/b1/video/listing.mp4?")
    assert "X-Amz-Expires=3600" in playable.url and "X-Amz-Signature=" in playable.url
    assert playable.expires_at == datetime.fromtimestamp(NOW + 3600, UTC)
    response = httpx.get(playable.url)
    assert response.status_code == 200 and response.content == source.read_bytes()
    assert response.headers["content-type"] == "video/mp4"
    fields = urls.fields(uri, None)
    assert fields["video_uri"] == uri and fields["thumbnail_url"] is None
    assert fields["urls_expire_at"] == "2027-01-15T09:00:00Z"


def test_public_base_url_is_base_plus_key_and_never_expires(b2, tmp_path):
    source = _video(tmp_path)
    uri = b2.put_file("batches/b1/thumb(1).jpg", source)
    assert httpx.get(f"{b2.endpoint}/{b2.bucket}/batches/b1/thumb(1).jpg").status_code == 403  # private
    public_read = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{b2.bucket}/*",
    }
    b2.client.put_bucket_policy(
        Bucket=b2.bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [public_read]})
    )
    urls = MediaUrls(b2, public_base_url=f"{b2.endpoint}/{b2.bucket}/")
    playable = urls.resolve(uri)
    assert playable.url == f"{b2.endpoint}/{b2.bucket}/batches/b1/thumb%281%29.jpg"
    assert playable.expires_at is None
    response = httpx.get(playable.url)
    assert response.status_code == 200 and response.content == source.read_bytes()
    assert urls.fields(uri, uri)["urls_expire_at"] is None


def test_local_storage_gets_service_signed_urls(tmp_path):
    storage = LocalStorage(tmp_path / "storage")
    key = media_signing_key("api-key")
    urls = MediaUrls(
        storage,
        expires_seconds=600,
        service_url="https://video.example.com/",
        signing_key=key,
        clock=lambda: NOW,
    )
    playable = urls.resolve(storage.uri("batches/b1/clip.mp4"))
    expires = int(NOW) + 600
    assert playable.url == (
        f"https://video.example.com/media/batches/b1/clip.mp4?expires={expires}"
        f"&sig={media_signature(key, 'batches/b1/clip.mp4', expires)}"
    )
    assert playable.expires_at == datetime.fromtimestamp(expires, UTC)
    sig = media_signature(key, "batches/b1/clip.mp4", expires)
    assert verify_media_token(key, "batches/b1/clip.mp4", expires, sig, NOW)
    assert not verify_media_token(key, "batches/b1/clip.mp4", expires, sig, expires)  # expired
    assert not verify_media_token(key, "batches/b1/other.mp4", expires, sig, NOW)  # another key
    assert not verify_media_token(key, "batches/b1/clip.mp4", expires + 1, sig, NOW)  # expiry moved
    assert not verify_media_token(media_signing_key("rotated"), "batches/b1/clip.mp4", expires, sig, NOW)
    assert not verify_media_token(None, "batches/b1/clip.mp4", expires, sig, NOW)


def test_uris_that_cannot_be_resolved_are_given_as_stored(tmp_path):
    storage = LocalStorage(tmp_path / "storage")
    no_key = MediaUrls(storage, service_url="http://localhost:3001", signing_key=None)
    local_uri = storage.uri("a/b.mp4")
    assert no_key.resolve(local_uri).url == local_uri  # no API key: nothing to sign with
    assert no_key.resolve("s3://elsewhere/a.mp4").url == "s3://elsewhere/a.mp4"
    assert no_key.resolve(None) is None and no_key.resolve("") is None


def test_settings_validate_the_media_url_variables(tmp_path):
    env = {"ZENCOURT_DATA_DIR": str(tmp_path)}
    settings = Settings.from_env(env)
    assert (settings.public_media_base_url, settings.media_url_expires_seconds) == (None, 86_400)
    settings = Settings.from_env(
        {
            **env,
            "PUBLIC_MEDIA_BASE_URL": "https://cdn.example.com/media/",
            "MEDIA_URL_EXPIRES_SECONDS": "604800",
        }
    )
    assert (settings.public_media_base_url, settings.media_url_expires_seconds) == (
        "https://cdn.example.com/media",
        604_800,
    )
    assert Settings.from_env(
        {**env, "PUBLIC_MEDIA_BASE_URL": "http://127.0.0.1:9000/b"}
    ).public_media_base_url
    for bad in (
        "http://cdn.example.com",
        "ftp://cdn.example.com",
        "https://",
        "https://cdn.example.com/?a=1",
    ):
        with pytest.raises(ValidationError, match="PUBLIC_MEDIA_BASE_URL"):
            Settings.from_env({**env, "PUBLIC_MEDIA_BASE_URL": bad})
    for bad in ("59", "604801"):
        with pytest.raises(ValidationError):
            Settings.from_env({**env, "MEDIA_URL_EXPIRES_SECONDS": bad})
