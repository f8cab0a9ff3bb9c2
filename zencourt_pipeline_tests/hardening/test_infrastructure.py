"""Infrastructure faults: the database connection dropped mid-run (real PostgreSQL), storage
answering 503 during uploads (B2 on moto), the web app answering 500 to completion webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from botocore.awsrequest import AWSResponse

from zencourt_pipeline.config import Settings
from zencourt_pipeline.definitions import build_definitions
from zencourt_pipeline.media import kenburns
from zencourt_pipeline.notify.deliverer import OutboxDeliverer
from zencourt_pipeline.storage.base import StorageError
from zencourt_pipeline_tests.conftest import POSTGRES_ADMIN_URL
from zencourt_pipeline_tests.defs.conftest import insert_batch_with_photos
from zencourt_pipeline_tests.fakes.server import RequestRecorder

from .conftest import Driven, canned_render, drive

# ---------------------------------------------------------------- database connection dropped


def _terminate_backends(database: str, *, pid: int | None = None) -> int:
    """pg_terminate_backend on every connection to `database` (or only `pid`); how many."""
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            query = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"
            params: dict = {"db": database}
            if pid is not None:
                query += " AND pid = :pid"
                params["pid"] = pid
            return len(conn.execute(sa.text(query), params).fetchall())
    finally:
        admin.dispose()


@pytest.mark.postgres
def test_database_connection_dropped_mid_run(postgres_url, tmp_path, monkeypatch):
    """Idle pooled connections killed between photos and between compose steps: pool_pre_ping
    reconnects. The connection of an open transaction killed mid-step: the step fails and its
    retry policy runs it again. The batch completes and nothing is reported twice."""
    from zencourt_pipeline.db.batches import BatchRepository
    from zencourt_pipeline.media import normalize, photos

    database = postgres_url.rsplit("/", 1)[1]
    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_url)
    monkeypatch.setattr(kenburns, "render_ken_burns", canned_render)
    killed: dict[str, int] = {}

    prepare = photos.prepare_photo

    def prepare_then_drop(src, dest, **kwargs):
        info = prepare(src, dest, **kwargs)
        if "between-photos" not in killed:
            killed["between-photos"] = _terminate_backends(database)
        return info

    normalize_many = normalize.normalize_many

    def drop_then_normalize(*args, **kwargs):
        if "between-compose-steps" not in killed:
            killed["between-compose-steps"] = _terminate_backends(database)
        return normalize_many(*args, **kwargs)

    update_job = BatchRepository.update_job

    def update_job_dropped_once(self, job_id, **values):
        handle = self.db  # the repository's Db
        if "in-transaction" not in killed and "photo_key" in values:
            with handle.transaction() as conn:  # the server goes away under an open transaction
                pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
                killed["in-transaction"] = _terminate_backends(database, pid=pid)
                conn.execute(sa.text("SELECT 1"))
        return update_job(self, job_id, **values)

    monkeypatch.setattr(photos, "prepare_photo", prepare_then_drop)
    monkeypatch.setattr(normalize, "normalize_many", drop_then_normalize)
    monkeypatch.setattr(BatchRepository, "update_job", update_job_dropped_once)

    defs = build_definitions(settings)
    db, storage = defs.resources["app_db"].get(), defs.resources["storage"].get()
    db.db.upgrade()  # what start-up does on a fresh database (resources never migrate)
    insert_batch_with_photos(db, storage, tmp_path, "pg-drop", [None, None, b"not a photo"])
    with dg.instance_for_test() as instance:
        assert drive(defs, instance, "pg-drop", timeout=180) == "completed"
        retried = [
            event
            for run in instance.get_runs()
            for event in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)
        ]
    assert killed["between-photos"] >= 1 and killed["between-compose-steps"] >= 1 and killed["in-transaction"] == 1
    assert len(retried) == 1  # the step whose transaction died, run again once
    jobs = {job.id: job for job in db.batches.get_jobs("pg-drop")}
    assert [jobs[f"pg-drop-{i}"].status for i in range(3)] == ["completed", "completed", "failed"]
    events = [row.event for row in db.outbox.rows("pg-drop")]
    assert sorted(events) == sorted(["clip.completed", "clip.completed", "clip.failed", "batch.completed"])
    assert sum(len(db.ledger.tasks_for_job(job_id)) for job_id in jobs) == 2  # no second generation


# ------------------------------------------------------------------- storage 503 on upload


class _Raw:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_kwargs):
        yield self._body

    def read(self, *_args, **_kwargs):
        body, self._body = self._body, b""
        return body


SLOW_DOWN = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"


def _answer_503(request) -> AWSResponse:
    return AWSResponse(request.url, 503, {"content-type": "application/xml"}, _Raw(SLOW_DOWN))


@pytest.fixture(scope="module")
def moto_endpoint():
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _b2_settings(tmp_path: Path, endpoint: str, bucket: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'app.db'}",
        storage_backend="b2",
        b2_endpoint=endpoint,
        b2_key_id="test-key-id",
        b2_application_key="test-application-key",
        b2_bucket_name=bucket,
    )


def test_storage_503_during_upload_is_retried_and_leaves_no_partial_object(moto_endpoint, tmp_path, monkeypatch):
    """Every first PUT of a pipeline object is answered 503 SlowDown: botocore's retries carry
    the batch through. A PUT answered 503 on every attempt fails with STORAGE_UPLOAD_FAILED and
    leaves nothing under its key (the previous version, if any, stays)."""
    from zencourt_pipeline.storage import b2

    bucket = f"zc-{uuid.uuid4().hex[:10]}"
    injected: dict[str, int] = {}
    lock = threading.Lock()

    def first_put_fails(request, **_kwargs):
        key = request.url.split(f"/{bucket}/", 1)[-1].split("?", 1)[0]
        with lock:
            injected[key] = injected.get(key, 0) + 1
            if injected[key] == 1 and key.startswith("batches/"):
                return _answer_503(request)
        return None

    new_client = b2._new_client

    def client_with_faults(**kwargs):
        client = new_client(**kwargs)
        client.meta.events.register("before-send.s3.PutObject", first_put_fails)
        return client

    monkeypatch.setattr(b2, "_new_client", client_with_faults)
    backoffs = _no_botocore_sleep(monkeypatch)
    monkeypatch.setattr(kenburns, "render_ken_burns", canned_render)
    settings = _b2_settings(tmp_path, moto_endpoint, bucket)
    defs = build_definitions(settings)
    storage = defs.resources["storage"].get()
    storage.client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "us-west-002"})
    db = defs.resources["app_db"].get()
    db.db.upgrade()  # what start-up does on a fresh database (resources never migrate)
    insert_batch_with_photos(db, storage, tmp_path, "b2-flaky", [None, None])
    with dg.instance_for_test() as instance:
        assert drive(defs, instance, "b2-flaky", timeout=180) == "completed"
    uploaded = [key for key in injected if key.startswith("batches/")]
    assert len(uploaded) >= 8 and all(injected[key] == 2 for key in uploaded)  # 503, then stored
    batch = db.batches.get_batch("b2-flaky")
    assert batch.video_url.startswith(f"s3://{bucket}/")
    for key in uploaded:  # every object whole
        assert storage.exists(key)

    assert len(backoffs) >= len(uploaded) and all(delay > 0 for delay in backoffs)  # retried with backoff

    # a PUT refused on every attempt: an upload error, nothing under the key, old version kept
    storage.put_bytes("batches/b2-flaky/video/keep.jpg", b"version-1")

    def always_503(request, **_kwargs):
        return _answer_503(request)

    storage.client.meta.events.register("before-send.s3.PutObject", always_503)
    source = tmp_path / "v2.jpg"
    source.write_bytes(b"version-2" * 1000)
    backoffs.clear()
    for key in ("batches/b2-flaky/video/new.mp4", "batches/b2-flaky/video/keep.jpg"):
        with pytest.raises(StorageError) as err:
            storage.put_file(key, source)
        assert err.value.code == "STORAGE_UPLOAD_FAILED" and "SlowDown" in err.value.message
    assert len(backoffs) >= 2 * 4  # botocore standard mode: every attempt retried with backoff
    storage.client.meta.events.unregister("before-send.s3.PutObject", always_503)
    assert not storage.exists("batches/b2-flaky/video/new.mp4")
    assert storage.get_file("batches/b2-flaky/video/keep.jpg", tmp_path / "got.jpg").read_bytes() == b"version-1"
    assert storage.client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def _no_botocore_sleep(monkeypatch) -> list[float]:
    """botocore's retry backoff, recorded instead of slept (the test asserts it happened)."""
    import botocore.endpoint

    delays: list[float] = []

    class NoSleepTime:
        def __getattr__(self, name):
            return getattr(time, name)

        @staticmethod
        def sleep(seconds: float) -> None:
            delays.append(seconds)

    monkeypatch.setattr(botocore.endpoint, "time", NoSleepTime())
    return delays


# ------------------------------------------------------------------- web app answering 500


class _Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_web_app_answering_500_gets_every_webhook_later(photo_matrix: Driven, caplog):
    """The photo matrix's outbox (one report per job + the batch) delivered to a web app that
    answers 500 to the first attempts: each report is retried with backoff, byte for byte and
    signed, until a 2xx; none is lost, none is marked delivered without a 2xx."""

    db = photo_matrix.db
    rows = db.outbox.rows(photo_matrix.batch_id)
    secret = "whsec-outbox-test-7d1c"
    clock = _Clock()
    with RequestRecorder() as web_app:
        web_app.responses = [500] * 10 + [503] * 3
        deliverer = OutboxDeliverer(db, url=web_app.url + "/api/webhooks/video-server", secret=secret, clock=clock)
        try:
            passes = []
            for _ in range(6):
                passes.append(deliverer.deliver_due(limit=100))
                clock.now += 3600  # past any backoff step
                if all(db.outbox.get(row.id).status == "delivered" for row in rows):
                    break
        finally:
            deliverer.close()
        received = list(web_app.received)
    assert passes[0]["failed"] == 13 and passes[0]["delivered"] == len(rows) - 13
    final = {row.id: db.outbox.get(row.id) for row in rows}
    assert all(row.status == "delivered" for row in final.values())
    assert sorted(row.attempts for row in final.values()) == sorted([2] * 13 + [1] * (len(rows) - 13))
    # at least once, byte for byte, signed; the 2xx ones are exactly one per report
    by_id: dict[str, list] = {}
    for request in received:
        by_id.setdefault(request.headers["x-webhook-id"], []).append(request)
        timestamp = request.headers["x-webhook-timestamp"]
        expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256).hexdigest()
        assert request.headers["x-webhook-signature"] == f"sha256={expected}"
    assert set(by_id) == {row.id for row in rows}
    for row in rows:
        assert {request.body for request in by_id[row.id]} == {row.body.encode()}
        assert json.loads(row.body)["id"] == row.id
    assert secret not in caplog.text
