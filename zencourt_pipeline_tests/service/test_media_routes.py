"""Playable URLs in the status API: local storage served by `GET /media/{key}` over real uvicorn,
B2 presigned URLs over moto, a public base. Each URL is fetched with plain httpx."""

from __future__ import annotations

import socket
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from moto.server import ThreadedMotoServer

from zencourt_pipeline.service.app import create_app
from zencourt_pipeline.storage.b2 import B2Storage
from zencourt_pipeline.storage.urls import media_signature, media_signing_key
from zencourt_pipeline_tests.fakes.server import ServerThread

from .conftest import API_KEY, make_batch

REGION = "us-west-002"
VIDEO = b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 400


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _completed_batch(db, storage, batch_id: str) -> tuple[str, str]:
    db.batches.insert_batch(*make_batch(batch_id, n_jobs=1))
    db.batches.start_batch(batch_id)
    clip = storage.put_bytes(f"batches/{batch_id}/clips/0.mp4", VIDEO)
    thumb = storage.put_bytes(f"batches/{batch_id}/thumb.jpg", b"\xff\xd8\xff\xe0jpeg")
    db.batches.complete_job(f"{batch_id}-0", clip, thumb)
    video = storage.put_bytes(f"batches/{batch_id}/video/listing.mp4", VIDEO[::-1])
    db.batches.finish_batch(batch_id, "completed", video_url=video, thumbnail_url=thumb)
    return video, thumb


@pytest.fixture
def served(settings, db, storage, verifier):
    port = _free_port()
    settings = settings.model_copy(update={"video_server_url": f"http://127.0.0.1:{port}"})
    with ServerThread(create_app(settings, db=db, storage=storage, verifier=verifier), port=port) as server:
        yield server


def test_local_storage_urls_play_over_http_with_ranges_and_refuse_tampering(served, db, storage):
    video_uri, thumb_uri = _completed_batch(db, storage, "m1")
    auth = {"x-api-key": API_KEY}
    body = httpx.get(f"{served.url}/video/batches/m1", headers=auth).json()
    assert (body["videoUri"], body["thumbnailUri"]) == (video_uri, thumb_uri)
    assert body["videoUrl"].startswith(f"{served.url}/media/batches/m1/video/listing.mp4?expires=")
    expires = int(parse_qs(urlsplit(body["videoUrl"]).query)["expires"][0])
    assert expires - time.time() == pytest.approx(86_400, abs=60) and body["urlsExpireAt"].endswith("Z")

    response = httpx.get(body["videoUrl"])
    assert response.status_code == 200 and response.content == VIDEO[::-1]
    assert response.headers["content-type"] == "video/mp4" and response.headers["accept-ranges"] == "bytes"
    part = httpx.get(body["videoUrl"], headers={"Range": "bytes=4-11"})
    assert part.status_code == 206 and part.content == VIDEO[::-1][4:12]
    assert part.headers["content-range"] == f"bytes 4-11/{len(VIDEO)}"
    head = httpx.head(body["videoUrl"])
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(VIDEO)
    job = body["jobs"][0]
    assert httpx.get(job["videoUrl"]).content == VIDEO
    assert httpx.get(job["thumbnailUrl"]).headers["content-type"] == "image/jpeg"
    listed = httpx.get(f"{served.url}/video/batches", headers=auth).json()["batches"][0]
    assert listed["videoUri"] == video_uri and httpx.get(listed["videoUrl"]).content == VIDEO[::-1]

    signing_key = media_signing_key(API_KEY)
    key = "batches/m1/video/listing.mp4"
    past = int(time.time()) - 1
    refused = [
        body["videoUrl"].replace("sig=", "sig=0"),  # tampered signature
        body["videoUrl"].replace(f"expires={expires}", f"expires={expires + 3600}"),  # longer life
        body["videoUrl"].replace("listing.mp4", "clips/0.mp4"),  # another object, same signature
        f"{served.url}/media/{key}?expires={past}&sig={media_signature(signing_key, key, past)}",  # expired
        f"{served.url}/media/{key}?expires={expires}",  # no signature
        f"{served.url}/media/{key}?expires=soon&sig=x",
        f"{served.url}/media/{key}?expires={expires}&sig={media_signature(media_signing_key('old'), key, expires)}",
    ]
    for url in refused:
        response = httpx.get(url)
        assert response.status_code == 403 and response.json()["code"] == "FORBIDDEN", url
    # traversal: signed for the escaping key, still refused (httpx would normalize `..`, send raw)
    escaping = "batches/../../app.db"
    raw = f"/media/{escaping}?expires={expires}&sig={media_signature(signing_key, escaping, expires)}"
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(f"GET {raw} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 403"), answer[:40]
    missing = "batches/m1/none.mp4"
    response = httpx.get(
        f"{served.url}/media/{missing}?expires={expires}&sig={media_signature(signing_key, missing, expires)}"
    )
    assert response.status_code == 404


@pytest.fixture(scope="module")
def moto_endpoint():
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def b2(moto_endpoint):
    bucket = f"zc-{uuid.uuid4().hex[:12]}"
    storage = B2Storage(
        endpoint=moto_endpoint, key_id="kid", application_key="app-key", bucket=bucket, region=REGION
    )
    storage.client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    yield storage
    storage.close()


def test_b2_status_urls_are_presigned_https_style_urls_that_download(settings, db, b2, verifier, auth):
    video_uri, _ = _completed_batch(db, b2, "p1")
    app = create_app(
        settings.model_copy(update={"media_url_expires_seconds": 900}), db=db, storage=b2, verifier=verifier
    )
    with TestClient(app) as client:
        body = client.get("/video/batches/p1", headers=auth).json()
    assert body["videoUri"] == video_uri == f"s3://{b2.bucket}/batches/p1/video/listing.mp4"
    assert body["videoUrl"].startswith(f"{b2.endpoint}/{b2.bucket}/batches/p1/video/listing.mp4?")
    assert "X-Amz-Expires=900" in body["videoUrl"] and body["urlsExpireAt"].endswith("Z")
    response = httpx.get(body["videoUrl"])  # plain httpx, no credentials
    assert response.status_code == 200 and response.content == VIDEO[::-1]
    assert httpx.get(body["jobs"][0]["videoUrl"]).content == VIDEO
    with TestClient(app) as client:  # each read mints fresh URLs
        again = client.get("/video/batches/p1", headers=auth).json()
    assert again["videoUri"] == video_uri and httpx.get(again["videoUrl"]).status_code == 200


def test_public_media_base_url_gives_base_plus_key(settings, db, b2, verifier, auth):
    video_uri, thumb_uri = _completed_batch(db, b2, "q1")
    settings = settings.model_copy(update={"public_media_base_url": "https://cdn.example.com/zc"})
    with TestClient(create_app(settings, db=db, storage=b2, verifier=verifier)) as client:
        body = client.get("/video/batches/q1", headers=auth).json()
    assert body["videoUrl"] == "https://cdn.example.com/zc/batches/q1/video/listing.mp4"
    assert body["thumbnailUrl"] == "https://cdn.example.com/zc/batches/q1/thumb.jpg"
    assert (body["videoUri"], body["thumbnailUri"], body["urlsExpireAt"]) == (video_uri, thumb_uri, None)
    assert body["jobs"][0]["videoUrl"] == "https://cdn.example.com/zc/batches/q1/clips/0.mp4"


def test_every_output_of_the_status_downloads_with_plain_httpx(served, db, storage):
    from zencourt_pipeline.db.outputs import OutputRow, OutputStatus
    from zencourt_pipeline.domain import DEFAULT_OUTPUTS

    db.batches.insert_batch(*make_batch("m4", n_jobs=1))
    db.batches.start_batch("m4")
    rows, files = [], {}
    for i, spec in enumerate(DEFAULT_OUTPUTS):
        files[spec.name] = VIDEO[i:] + spec.name.encode()
        uri = storage.put_bytes(f"batches/m4/video/listing-{spec.name}-default.mp4", files[spec.name])
        thumb = storage.put_bytes(f"batches/m4/video/listing-{spec.name}-default.jpg", b"\xff\xd8\xff\xe0" + spec.name.encode())
        rows.append(OutputRow(spec, OutputStatus.COMPLETED, primary=i == 0, video_uri=uri, thumbnail_uri=thumb))
    db.batches.finish_batch("m4", "completed", video_url=rows[0].video_uri, thumbnail_url=rows[0].thumbnail_uri, outputs=rows)
    body = httpx.get(f"{served.url}/video/batches/m4", headers={"x-api-key": API_KEY}).json()
    assert [o["primary"] for o in body["outputs"]] == [True, False, False, False]
    assert body["outputs"][0]["videoUrl"].split("?")[0] == body["videoUrl"].split("?")[0]
    for output, spec in zip(body["outputs"], DEFAULT_OUTPUTS, strict=True):
        assert output["videoUrl"].startswith(f"{served.url}/media/batches/m4/video/listing-{spec.name}-default.mp4?expires=")
        response = httpx.get(output["videoUrl"])  # plain httpx, no key
        assert response.status_code == 200 and response.content == files[spec.name]
        assert httpx.get(output["thumbnailUrl"]).content.endswith(spec.name.encode())
        assert output["urlsExpireAt"].endswith("Z")
