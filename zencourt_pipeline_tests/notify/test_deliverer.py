"""The webhook outbox deliverer against a real HTTP receiver on loopback.

Outbox rows are created through the real state transitions (`insert_batch`, `fail_job`,
`finish_batch`); time is an injected clock that the tests move past each backoff.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.records import OutboxEvent, as_dict
from zencourt_pipeline.notify.deliverer import OutboxDeliverer, webhook_url
from zencourt_pipeline.notify.signing import delivery_headers, sign, verify
from zencourt_pipeline_tests.conftest import make_batch
from zencourt_pipeline_tests.fakes.fixtures import MaxJitter

SECRET = "whsec_test_9f8e7d6c5b4a_do-not-log-me"
PATH = "/api/webhooks/video-server"


class Receiver:
    """A little webhook receiver: `statuses(n)` is the answer to the n-th request (1-based)."""

    def __init__(
        self, statuses: Callable[[int], int] = lambda n: 200, delay: float = 0.0, body: bytes = b"{}"
    ):
        self.statuses = statuses
        self.delay = delay
        self.body = body
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": raw})
                    n = len(receiver.requests)
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = receiver.statuses(n)
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(receiver.body)))
                self.end_headers()
                self.wfile.write(receiver.body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{PATH}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeClock:
    def __init__(self):
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{PATH}"


def _one_clip_failure(db: AppDatabase, batch_id: str = "b1") -> OutboxEvent:
    batch, jobs = make_batch(batch_id, n_jobs=1)
    db.batches.insert_batch(batch, jobs)
    assert db.batches.fail_job(jobs[0]["id"], "INVALID_INPUT", "photo could not be decoded")
    (row,) = db.outbox.rows(batch_id)
    return row


def _deliverer(db: AppDatabase, url: str | None, clock=None, **kwargs) -> OutboxDeliverer:
    return OutboxDeliverer(
        db, url=url, secret=SECRET, clock=clock or time.time, rng=MaxJitter(), timeout=5.0, **kwargs
    )


def _expected_signature(timestamp: str, raw: bytes) -> str:
    """The documented scheme, written out independently of `signing.py`."""
    return "sha256=" + hmac.new(SECRET.encode(), timestamp.encode() + b"." + raw, hashlib.sha256).hexdigest()


# -- signing -------------------------------------------------------------------------------------
def test_sign_and_verify():
    raw = b'{"id":"d1","event":"batch.completed"}'
    signature = sign(SECRET, 1_700_000_000, raw)
    assert signature == _expected_signature("1700000000", raw)
    assert verify(SECRET, 1_700_000_000, raw, signature)
    assert verify(SECRET, "1700000000", raw, signature, now=1_700_000_100)
    assert not verify(SECRET, 1_700_000_000, raw, signature, now=1_700_001_000)  # stale
    assert not verify(SECRET, 1_700_000_000, raw + b" ", signature)  # body changed
    assert not verify(SECRET, 1_700_000_001, raw, signature)  # timestamp changed
    assert not verify("other-secret", 1_700_000_000, raw, signature)
    assert not verify(SECRET, 1_700_000_000, raw, signature.removeprefix("sha256="))
    assert delivery_headers("d1", 1_700_000_000, signature) == {
        "Content-Type": "application/json",
        "X-Webhook-Id": "d1",
        "X-Webhook-Timestamp": "1700000000",
        "X-Webhook-Signature": signature,
    }
    assert webhook_url("https://app.example.com/", "/api/webhooks/video-server") == (
        "https://app.example.com/api/webhooks/video-server"
    )
    assert webhook_url("https://app.example.com", "api/x") == "https://app.example.com/api/x"
    assert webhook_url(None, PATH) is None


def test_backoff_doubles_from_10s_and_caps_at_an_hour(app_db):
    """The one backoff (net/backoff.py) with the outbox's steps: 10 s doubling to an hour."""
    deliverer = OutboxDeliverer(app_db, url=None, secret=None)
    steps = [deliverer.backoff.delay(n, MaxJitter()) for n in range(10)]
    assert steps == [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600]
    assert deliverer.backoff.delay(30, MaxJitter()) == 3600
    jittered = [deliverer.backoff.delay(2, deliverer.rng) for _ in range(200)]
    assert all(20 <= delay <= 40 for delay in jittered)  # jitter shortens a step by at most half


# -- retries ---------------------------------------------------------------------------------------
def test_refused_three_times_then_delivered_on_the_fourth(db: AppDatabase, caplog):
    caplog.set_level(logging.DEBUG)
    row = _one_clip_failure(db)
    clock = FakeClock()
    with Receiver(statuses=lambda n: 500 if n <= 3 else 200, body=b'{"error":"try later"}') as receiver:
        deliverer = _deliverer(db, receiver.url, clock)
        for attempt, backoff in enumerate([10, 20, 40], start=1):
            assert deliverer.deliver_due() == {"claimed": 1, "delivered": 0, "failed": 1, "dead": 0}
            state = db.outbox.get(row.id)
            assert state.status == "pending"
            assert state.attempts == attempt
            assert state.last_status_code == 500
            assert state.last_error.startswith("HTTP 500")
            assert state.next_attempt_at == datetime.fromtimestamp(clock.now, UTC) + timedelta(
                seconds=backoff
            )
            # not due again until the backoff has passed
            clock.advance(backoff - 1)
            assert deliverer.deliver_due()["claimed"] == 0
            clock.advance(1)
        assert deliverer.deliver_due() == {"claimed": 1, "delivered": 1, "failed": 0, "dead": 0}
        assert deliverer.deliver_due()["claimed"] == 0  # delivered rows are never sent again
        deliverer.close()

    assert len(receiver.requests) == 4
    stored_body = row.body.encode()
    body_id = json.loads(stored_body)["id"]
    for request in receiver.requests:
        headers = request["headers"]
        assert request["path"] == PATH
        assert request["body"] == stored_body  # the exact stored bytes
        assert headers["X-Webhook-Id"] == body_id == row.id
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Webhook-Signature"] == _expected_signature(
            headers["X-Webhook-Timestamp"], request["body"]
        )
        assert verify(SECRET, headers["X-Webhook-Timestamp"], request["body"], headers["X-Webhook-Signature"])
    timestamps = [int(r["headers"]["X-Webhook-Timestamp"]) for r in receiver.requests]
    assert timestamps == sorted(timestamps) and timestamps[-1] - timestamps[0] == 70

    final = db.outbox.get(row.id)
    assert final.status == "delivered"
    assert final.attempts == 4
    assert final.last_status_code == 200
    assert final.last_error is None
    assert final.delivered_at is not None
    assert SECRET not in caplog.text


def test_network_error_counts_as_a_failed_attempt(db: AppDatabase):
    row = _one_clip_failure(db)
    deliverer = _deliverer(db, _closed_port_url())
    assert deliverer.deliver_due() == {"claimed": 1, "delivered": 0, "failed": 1, "dead": 0}
    state = db.outbox.get(row.id)
    assert state.status == "pending"
    assert state.attempts == 1
    assert state.last_status_code is None
    assert "ConnectError" in state.last_error
    assert SECRET not in state.last_error


@pytest.mark.parametrize("status", [302, 404, 429, 503])
def test_any_non_2xx_is_retried(db: AppDatabase, status: int):
    row = _one_clip_failure(db)
    with Receiver(statuses=lambda n: status) as receiver:
        assert _deliverer(db, receiver.url).deliver_due()["failed"] == 1
    state = db.outbox.get(row.id)
    assert (state.status, state.attempts, state.last_status_code) == ("pending", 1, status)
    assert len(receiver.requests) == 1  # a redirect is not followed


def test_dead_only_after_the_retry_horizon(db: AppDatabase, caplog):
    row = _one_clip_failure(db)
    created = db.outbox.get(row.id).created_at.timestamp()
    clock = FakeClock()
    url = _closed_port_url()
    with pytest.raises(ValueError):
        _deliverer(db, url, clock, retry_horizon=timedelta(hours=23))
    shortest = _deliverer(db, url, clock, retry_horizon=timedelta(hours=24))
    default = _deliverer(db, url, clock)

    clock.now = created + 23 * 3600 + 59 * 60
    assert shortest.deliver_due()["failed"] == 1
    assert db.outbox.get(row.id).status == "pending"

    clock.now = created + 30 * 3600  # past 24 h: the default 72 h horizon keeps retrying
    assert default.deliver_due()["failed"] == 1
    assert db.outbox.get(row.id).status == "pending"

    clock.now = created + 30 * 3600 + 3601  # the 24 h deliverer gives up
    with caplog.at_level(logging.WARNING, logger="zencourt_pipeline.notify.deliverer"):
        assert shortest.deliver_due() == {"claimed": 1, "delivered": 0, "failed": 0, "dead": 1}
    (gone,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert gone.getMessage().startswith("WEBHOOK_DELIVERY_FAILED: webhook " + row.id)
    assert gone.errorCode == "WEBHOOK_DELIVERY_FAILED" and gone.batchId == row.batch_id
    state = db.outbox.get(row.id)
    assert state.status == "dead" and state.attempts == 3 and state.error_code == "WEBHOOK_DELIVERY_FAILED"
    clock.advance(10 * 24 * 3600)
    assert default.deliver_due()["claimed"] == 0  # dead rows are not sent

    assert db.outbox.requeue(row.id, now=datetime.fromtimestamp(clock.now, UTC))
    with Receiver() as receiver:
        assert _deliverer(db, receiver.url, clock).deliver_due()["delivered"] == 1
    assert db.outbox.get(row.id).attempts == 1  # requeue resets the attempts


# -- concurrency -----------------------------------------------------------------------------------
def test_concurrent_deliverers_never_send_a_row_twice(app_db: AppDatabase):
    for i in range(8):
        batch, jobs = make_batch(f"c{i}", n_jobs=2)
        app_db.batches.insert_batch(batch, jobs)
        app_db.batches.fail_job(jobs[0]["id"], "FAL_GENERATION_FAILED", "boom")
        app_db.batches.complete_job(jobs[1]["id"], f"s3://bkt/c{i}/clip.mp4", None)
        app_db.batches.finish_batch(f"c{i}", "completed", video_url=f"s3://bkt/c{i}/video.mp4")
    rows = app_db.outbox.rows()
    assert len(rows) == 24

    with Receiver(delay=0.005) as receiver:
        deliverers = [_deliverer(app_db, receiver.url) for _ in range(3)]
        start = threading.Barrier(len(deliverers))
        errors: list[BaseException] = []

        def drain(deliverer: OutboxDeliverer) -> None:
            try:
                start.wait()
                while deliverer.deliver_due(limit=3)["claimed"]:
                    pass
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=drain, args=(d,)) for d in deliverers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        for deliverer in deliverers:
            deliverer.close()
    assert not errors
    sent = Counter(request["headers"]["X-Webhook-Id"] for request in receiver.requests)
    assert sent == Counter({row.id: 1 for row in rows})
    assert all(row.status == "delivered" and row.attempts == 1 for row in app_db.outbox.rows())
    assert app_db.outbox.stats().delivered == 24


# -- queries ---------------------------------------------------------------------------------------
def test_due_claims_oldest_first_with_a_lease(db: AppDatabase):
    for i in range(3):
        _one_clip_failure(db, f"q{i}")
    ids = [row.id for row in db.outbox.rows()]
    now = datetime.now(UTC) + timedelta(seconds=1)
    first = db.outbox.due(limit=2, now=now, lease=timedelta(minutes=5))
    assert [row.id for row in first] == ids[:2]
    second = db.outbox.due(limit=10, now=now, lease=timedelta(minutes=10))
    assert [row.id for row in second] == ids[2:]  # the leased rows are not offered again
    assert db.outbox.due(limit=10, now=now + timedelta(minutes=4)) == []
    expired = db.outbox.due(limit=10, now=now + timedelta(minutes=6))
    assert [row.id for row in expired] == ids[:2]  # a lease runs out (crashed deliverer)


def test_late_failure_never_undoes_a_delivery_and_stats(db: AppDatabase):
    row = _one_clip_failure(db)
    _one_clip_failure(db, "other")
    now = datetime.now(UTC)
    assert db.outbox.mark_delivered(row.id, 204, now=now)
    assert not db.outbox.mark_failed(row.id, "timeout", None, now + timedelta(seconds=10))
    assert not db.outbox.mark_delivered(row.id, 200)
    state = db.outbox.get(row.id)
    assert (state.status, state.attempts, state.last_status_code) == ("delivered", 1, 204)
    stats = db.outbox.stats(now=now + timedelta(seconds=5))
    assert stats.pending == 1 and stats.delivered == 1 and stats.dead == 0 and stats.due == 1
    assert stats.oldest_pending_age_seconds >= 0
    assert isinstance(json.dumps(as_dict(stats)), str)


def test_unconfigured_sends_nothing_and_says_so_once(db: AppDatabase, caplog):
    row = _one_clip_failure(db)
    caplog.set_level(logging.DEBUG)
    deliverer = OutboxDeliverer(db, url=None, secret=SECRET)
    assert not deliverer.enabled
    assert deliverer.deliver_due()["claimed"] == 0
    assert deliverer.deliver_due()["claimed"] == 0
    warnings = [r for r in caplog.records if "webhook delivery is off" in r.getMessage()]
    assert len(warnings) == 1 and "VERCEL_API_URL" in warnings[0].getMessage()
    assert db.outbox.get(row.id).status == "pending"
    no_secret = OutboxDeliverer(db, url="http://127.0.0.1:9/x", secret=None)
    assert no_secret.deliver_due()["claimed"] == 0
    assert SECRET not in caplog.text and SECRET not in repr(deliverer)


def test_secret_never_logged_even_when_the_receiver_echoes_it(db: AppDatabase, caplog):
    caplog.set_level(logging.DEBUG)
    row = _one_clip_failure(db)
    echo = json.dumps({"error": f"bad signature, expected secret {SECRET}"}).encode()
    with Receiver(statuses=lambda n: 401, body=echo) as receiver:
        _deliverer(db, receiver.url).deliver_due()
    state = db.outbox.get(row.id)
    assert state.last_status_code == 401
    assert "[redacted]" in state.last_error
    assert SECRET not in state.last_error
    assert SECRET not in caplog.text
    assert "webhook" in caplog.text  # the failure itself was logged


def test_run_forever_delivers_and_stops(db: AppDatabase):
    batch, jobs = make_batch("rf", n_jobs=1)
    db.batches.insert_batch(batch, jobs)
    db.batches.finish_batch("rf", "failed", error="all clips failed")
    stop = threading.Event()
    with Receiver() as receiver:
        with httpx.Client() as client:  # an injected client is used and left open
            deliverer = _deliverer(db, receiver.url, client=client)
            thread = deliverer.start(stop, interval=0.05)
            deadline = time.monotonic() + 10
            while db.outbox.rows("rf")[0].status != "delivered" and time.monotonic() < deadline:
                time.sleep(0.02)
            stop.set()
            thread.join(timeout=5)
            deliverer.close()
            assert not client.is_closed
    assert not thread.is_alive()
    assert db.outbox.rows("rf")[0].status == "delivered"
    assert json.loads(receiver.requests[0]["body"])["event"] == "batch.failed"


# -- playable URLs resolved at delivery ------------------------------------------------------------
def _media_urls(storage, clock):
    """Service-signed URLs living an hour, on the fake clock."""
    from zencourt_pipeline.storage.urls import MediaUrls, media_signing_key

    return MediaUrls(
        storage, expires_seconds=3600, service_url="https://video.example.com", signing_key=media_signing_key("k"),
        clock=clock,
    )  # fmt: skip


def test_media_urls_are_resolved_at_each_delivery_and_signed_as_sent(db: AppDatabase, tmp_path):
    from zencourt_pipeline.config import Settings
    from zencourt_pipeline.storage.local import LocalStorage

    storage, clock = LocalStorage(tmp_path / "storage"), FakeClock()
    media_urls = _media_urls(storage, clock)
    batch, jobs = make_batch("u1", n_jobs=1)
    db.batches.insert_batch(batch, jobs)
    clip, thumb = storage.uri("batches/u1/clip.mp4"), storage.uri("batches/u1/clip.jpg")
    assert db.batches.complete_job(jobs[0]["id"], clip, thumb)
    (row,) = db.outbox.rows("u1")
    stored = row.body
    clock.advance(1)  # the row is due
    with Receiver(statuses=lambda n: 500 if n == 1 else 200) as receiver:
        deliverer = _deliverer(db, receiver.url, clock, media_urls=media_urls)
        assert deliverer.deliver_due()["failed"] == 1
        clock.advance(3000)  # the redelivery is nearly an hour later: its URLs must be fresh
        assert deliverer.deliver_due()["delivered"] == 1
        deliverer.close()
    first, second = (json.loads(request["body"]) for request in receiver.requests)
    for request, body in zip(receiver.requests, (first, second), strict=True):
        headers = request["headers"]
        assert verify(SECRET, headers["X-Webhook-Timestamp"], request["body"], headers["X-Webhook-Signature"])
        assert (body["videoUri"], body["thumbnailUri"]) == (clip, thumb)
        assert body["videoUrl"].startswith("https://video.example.com/media/batches/u1/clip.mp4?expires=")
        assert body["thumbnailUrl"].startswith("https://video.example.com/media/batches/u1/clip.jpg?expires=")
        assert list(body) == [
            "id", "event", "batchId", "listingId", "jobId", "videoUrl", "videoUri", "thumbnailUrl", "thumbnailUri",
            "urlsExpireAt", "occurredAt",
        ]  # fmt: skip
    assert first["id"] == second["id"] and first["occurredAt"] == second["occurredAt"]
    assert first["videoUrl"] != second["videoUrl"]
    assert second["urlsExpireAt"] == datetime.fromtimestamp(int(clock.now) + 3600, UTC).isoformat().replace(
        "+00:00", "Z"
    )
    assert db.outbox.get(row.id).body == stored and json.loads(stored)["videoUrl"] == clip  # the row keeps the URI

    # a body without media fields goes out byte for byte; from_settings resolves with the configured storage
    failure = _one_clip_failure(db, "u2")
    assert deliverer.body_to_send(failure) == failure.body.encode()
    settings = Settings(data_dir=tmp_path / "data", video_server_api_key="k", video_server_url="http://svc:3001")
    configured = OutboxDeliverer.from_settings(db, settings)
    local_uri = configured.media_urls.storage.uri("x/v.mp4")
    assert configured.media_urls.resolve(local_uri).url.startswith("http://svc:3001/media/x/v.mp4?expires=")
    configured.close()


def test_each_output_of_batch_completed_gets_playable_urls_at_delivery(db: AppDatabase, tmp_path):
    from zencourt_pipeline.db.outputs import OutputRow, OutputStatus
    from zencourt_pipeline.db.records import BatchStatus
    from zencourt_pipeline.domain import DEFAULT_OUTPUTS
    from zencourt_pipeline.storage.local import LocalStorage

    storage, clock = LocalStorage(tmp_path / "storage"), FakeClock()
    media_urls = _media_urls(storage, clock)
    db.batches.insert_batch(*make_batch("o1", n_jobs=1))
    uris = [storage.uri(f"batches/o1/video/listing-{spec.name}-default.mp4") for spec in DEFAULT_OUTPUTS]
    rows = [
        OutputRow(spec, OutputStatus.COMPLETED, primary=i == 0, video_uri=uri, thumbnail_uri=uri.replace(".mp4", ".jpg"))
        for i, (spec, uri) in enumerate(zip(DEFAULT_OUTPUTS, uris, strict=True))
    ]
    db.batches.finish_batch("o1", BatchStatus.COMPLETED, video_url=uris[0], thumbnail_url=rows[0].thumbnail_uri, outputs=rows)
    [row] = [r for r in db.outbox.rows("o1") if r.event == "batch.completed"]
    clock.advance(1)
    with Receiver() as receiver:
        deliverer = _deliverer(db, receiver.url, clock, media_urls=media_urls)
        assert deliverer.deliver_due()["delivered"] == 1
        deliverer.close()
    body = json.loads(receiver.requests[0]["body"])
    assert body["videoUrl"].startswith("https://video.example.com/media/batches/o1/video/listing-landscape-1920x1080-branded")
    assert [o["videoUri"] for o in body["outputs"]] == uris
    for output, uri in zip(body["outputs"], uris, strict=True):
        key = storage.key_from_uri(uri)
        assert output["videoUrl"].startswith(f"https://video.example.com/media/{key}?expires=")
        assert output["thumbnailUrl"].startswith(f"https://video.example.com/media/{key.replace('.mp4', '.jpg')}?expires=")
        assert output["urlsExpireAt"] == body["urlsExpireAt"]
        assert list(output) == [
            "shape", "width", "height", "branded", "primary", "status", "videoUrl", "videoUri", "thumbnailUrl",
            "thumbnailUri", "urlsExpireAt", "durationSeconds", "bytes", "sourceResolution", "error",
        ]  # fmt: skip
    assert json.loads(db.outbox.get(row.id).body)["outputs"][0]["videoUri"] == uris[0]  # the row keeps the URIs
