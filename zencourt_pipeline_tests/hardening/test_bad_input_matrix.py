"""The bad-input matrix: every case with its expected error code (or outcome), the rest of its
batch unaffected, and nothing lost (every job terminal, one outbox report per state change,
paid work recorded once).

Photos and provider faults each run as ONE batch through the real sensors and runs (cheap:
2 s clips); each case is a parametrized test over that batch. Batch-level rejections and
webhooks are separate, small and fast.
"""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from PIL import Image

from zencourt_pipeline.config import Settings
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.records import CompletionRecord
from zencourt_pipeline.db.schema import generation_completions
from zencourt_pipeline.media.ffmpeg import probe
from zencourt_pipeline.providers.fal_webhook import FalWebhookVerifier
from zencourt_pipeline.service.app import create_app
from zencourt_pipeline_tests.fakes.fal import FakeFal

from .conftest import (
    CLIP_SECONDS,
    CROSSFADE,
    PHOTO_CASES,
    PROVIDER_CASES,
    Driven,
    drive,
)

# The matrices are module fixtures that each drive a whole batch (about 40 s): one xdist worker runs
# the module, so they are set up once and not once per worker.
pytestmark = pytest.mark.xdist_group("bad_input_matrix")

# ---------------------------------------------------------------------------------- photos


@pytest.mark.parametrize("case", list(PHOTO_CASES))
def test_photo_case(photo_matrix: Driven, case: str):
    spec = PHOTO_CASES[case]
    job = photo_matrix.jobs[case]
    assert (job.status, job.error_code) == (spec.status, spec.code), job.error_message
    events = photo_matrix.outbox_events(job.id)
    tasks = photo_matrix.db.ledger.tasks_for_job(job.id)
    if spec.status == "completed":
        assert job.video_url and job.thumbnail_url
        assert events == ["clip.completed"]
        assert len(tasks) == 1  # generated once
        clip = probe(photo_matrix.storage.path(photo_matrix.storage.key_from_uri(job.video_url)))
        assert (clip.width, clip.height) == (1280, 720)
    else:
        assert job.error_message, "a failed job says why"
        assert events == ["clip.failed"]
        assert tasks == []  # nothing was paid for
        assert job.video_url is None


def test_photo_matrix_batch_completes_with_the_good_photos(photo_matrix: Driven):
    db, storage = photo_matrix.db, photo_matrix.storage
    batch = db.batches.get_batch(photo_matrix.batch_id)
    assert photo_matrix.status == "completed" and batch.video_url
    good = [case for case, spec in PHOTO_CASES.items() if spec.status == "completed"]
    bad = [case for case in PHOTO_CASES if case not in good]
    # every failed job is named in the batch error with its code; nothing else is
    for case in bad:
        job = photo_matrix.jobs[case]
        assert f"{job.id} {job.error_code}" in batch.error
    assert batch.error.startswith(f"{len(bad)} of {len(PHOTO_CASES)} clips failed")
    # nothing lost: every job terminal, one report each, one batch report
    assert all(job.status in ("completed", "failed") for job in photo_matrix.jobs.values())
    events = photo_matrix.outbox_events()
    assert events.count("clip.completed") == len(good) and events.count("clip.failed") == len(bad)
    assert events.count("batch.completed") == 1 and events[-1] == "batch.completed"
    video = probe(storage.path(storage.key_from_uri(batch.video_url)))
    expected = len(good) * CLIP_SECONDS - (len(good) - 1) * CROSSFADE
    assert abs(video.duration - expected) < 0.25


def test_photo_matrix_details(photo_matrix: Driven):
    jobs, hits = photo_matrix.jobs, photo_matrix.extra["hits"]
    # the EXIF-rotated photo was stored upright (portrait), the transient 500 was retried once
    photo = photo_matrix.storage.path(jobs["exif-rotated"].photo_key)
    with Image.open(photo) as img:
        assert img.height > img.width
    assert hits["/http-500-then-200.jpg"] == 2
    # refused addresses are refused before any request; the loop stopped at the bound
    assert "link-local" in jobs["metadata-ip"].error_message
    assert "private" in jobs["private-ip"].error_message
    assert "redirects" in jobs["redirect-loop"].error_message
    assert hits["/redirect-loop.jpg"] == 6  # max_redirects (5) + 1
    assert "timed out" in jobs["slow-server"].error_message
    assert "too large" in jobs["oversized-body"].error_message
    assert "only https" in jobs["file-url"].error_message
    assert "HTML" in jobs["html-as-jpeg"].error_message
    assert "HEIC" in jobs["heic"].error_message
    assert "1000" in jobs["prompt-over-1000"].error_message
    assert hits.get("/prompt-over-1000.jpg", 0) == 0  # validated before any download


# ---------------------------------------------------------------------------------- batches


def _batch_settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'app.db'}")


BATCH_CASES = {
    "zero-jobs": ({}, 0, "batch has no jobs"),
    "unknown-orientation": ({"orientation": "diagonal"}, 2, "unknown orientation"),
    "unknown-template": ({"template": "no-such-template"}, 2, "unknown template"),
}


@pytest.fixture(scope="module")
def rejected_batches(tmp_path_factory):
    """All three rejected batches through the real sensor and intake runs, in one stack."""
    import dagster as dg

    from zencourt_pipeline.definitions import build_definitions
    from zencourt_pipeline_tests.defs.conftest import insert_batch_with_photos

    tmp = tmp_path_factory.mktemp("rejected")
    defs = build_definitions(_batch_settings(tmp))
    db, storage = defs.resources["app_db"].get(), defs.resources["storage"].get()
    db.db.upgrade()  # what start-up does on a fresh database (resources never migrate)
    with dg.instance_for_test() as instance:
        for case, (fields, n, _) in BATCH_CASES.items():
            insert_batch_with_photos(db, storage, tmp, case, [None] * n, **fields)
        # drive them together: the sensor claims all three in one tick
        statuses = {case: drive(defs, instance, case, timeout=60) for case in BATCH_CASES}
        yield db, statuses


@pytest.mark.parametrize("case", list(BATCH_CASES))
def test_batch_rejected_at_intake(rejected_batches, case):
    db, statuses = rejected_batches
    _, n, words = BATCH_CASES[case]
    batch = db.batches.get_batch(case)
    assert statuses[case] == "failed"
    assert batch.error.startswith("INVALID_INPUT") and words in batch.error
    jobs = db.batches.get_jobs(case)
    assert len(jobs) == n and all((j.status, j.error_code) == ("failed", "INVALID_INPUT") for j in jobs)
    assert db.ledger.tasks_for_batch(case) == []  # no download, no paid request
    events = [row.event for row in db.outbox.rows(case)]
    assert events == ["clip.failed"] * n + ["batch.failed"]


# Prompt over 1000 characters: a job-level INVALID_INPUT, in the photo matrix ("prompt-over-1000").

# ---------------------------------------------------------------------------------- webhooks


@pytest.fixture(scope="module")
def webhook_service(tmp_path_factory):
    """Our HTTP service verifying against the fake fal's JWKS, and a batch with one job whose
    fal request id is known."""
    tmp = tmp_path_factory.mktemp("webhooks")
    db = AppDatabase.connect(f"sqlite:///{tmp / 'app.db'}")
    db.db.upgrade()
    settings = Settings(data_dir=tmp / "data", video_server_api_key="k", fal_jwks_url="unused")
    with FakeFal() as fal:
        app = create_app(settings, db=db, verifier=FalWebhookVerifier(fal.jwks_url))
        with TestClient(app, raise_server_exceptions=False) as client:
            db.batches.insert_batch(
                {"id": "wh", "listing_id": "L-wh"},
                [{"id": f"wh-{i}", "batch_id": "wh", "image_url": "https://example.com/p.jpg"} for i in range(2)],
            )
            for i in range(2):
                row = db.ledger.begin_task(f"wh-{i}", "wh", "fal")
                db.ledger.task_submitted(row, f"wh-{i}", "fal", f"req-{i}")
            yield client, fal, db


def _delivery(fal: FakeFal, request_id: str, *, timestamp: int | None = None, **fields) -> tuple[bytes, dict]:
    body = {"request_id": request_id, "gateway_request_id": request_id, "status": "OK",
            "payload": {"video": {"url": f"https://v3.fal.media/files/{request_id}.mp4"}}, **fields}  # fmt: skip
    raw = json.dumps(body).encode()
    return raw, {"content-type": "application/json", **fal.sign_headers(raw, request_id, timestamp=timestamp)}


def _completions(db, task_id: str) -> list[CompletionRecord]:
    with db.db.engine.connect() as conn:
        rows = conn.execute(sa.select(generation_completions).where(generation_completions.c.task_id == task_id))
        return [CompletionRecord.from_row(r) for r in rows]


def _case_bad_signature(fal, db):
    raw, headers = _delivery(fal, "req-0")
    return raw.replace(b"req-0.mp4", b"evil.mp4"), headers


def _case_stale_timestamp(fal, db):
    return _delivery(fal, "req-0", timestamp=int(time.time()) - 600)


def _case_malformed_json(fal, db):
    raw = b'{"request_id": "req-0", "status": "OK", '
    return raw, {"content-type": "application/json", **fal.sign_headers(raw, "req-0")}


def _case_over_1mb(fal, db):
    return _delivery(fal, "req-0", pad="x" * (1024 * 1024))


WEBHOOK_REFUSALS = {
    "bad-signature": (_case_bad_signature, 401, "UNAUTHORIZED"),
    "stale-timestamp": (_case_stale_timestamp, 401, "UNAUTHORIZED"),
    "malformed-json": (_case_malformed_json, 400, "INVALID_INPUT"),
    "body-over-1mb": (_case_over_1mb, 413, "PAYLOAD_TOO_LARGE"),
}


@pytest.mark.parametrize("case", list(WEBHOOK_REFUSALS))
def test_webhook_refused(webhook_service, case):
    client, fal, db = webhook_service
    make, status, code = WEBHOOK_REFUSALS[case]
    raw, headers = make(fal, db)
    response = client.post("/webhooks/fal", content=raw, headers=headers)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert _completions(db, "req-0") == []  # nothing recorded; fal retries a good delivery later


def test_webhook_replay_changes_nothing(webhook_service):
    client, fal, db = webhook_service
    raw, headers = _delivery(fal, "req-1")
    first = client.post("/webhooks/fal", content=raw, headers=headers)
    assert first.status_code == 200 and first.json()["duplicate"] is False
    # the same signed delivery replayed (fal retries, or an attacker who captured it)
    for _ in range(3):
        again = client.post("/webhooks/fal", content=raw, headers=headers)
        assert again.status_code == 200 and again.json()["duplicate"] is True
    # a later, differently-signed "result" for the same request changes nothing either
    raw2, headers2 = _delivery(fal, "req-1", status="ERROR", payload={"detail": "late"})
    assert client.post("/webhooks/fal", content=raw2, headers=headers2).json()["duplicate"] is True
    [row] = _completions(db, "req-1")
    assert (row.status, row.job_id) == ("succeeded", "wh-1")
    # a replay outside the freshness window is refused outright
    old_raw, old_headers = _delivery(fal, "req-1", timestamp=int(time.time()) - 3600)
    assert client.post("/webhooks/fal", content=old_raw, headers=old_headers).status_code == 401


def test_webhook_null_payload_with_payload_error(webhook_service):
    client, fal, db = webhook_service
    raw, headers = _delivery(fal, "req-0", payload=None, payload_error="Response payload is not JSON serializable.")
    response = client.post("/webhooks/fal", content=raw, headers=headers)
    assert response.status_code == 200
    [row] = _completions(db, "req-0")
    # recorded as succeeded without a URL: generated_clips fetches the result from fal's queue
    # (end to end: provider case "fal-null-payload")
    assert (row.status, row.output_url, row.job_id) == ("succeeded", None, "wh-0")


def test_webhook_unknown_request_id_is_recorded_for_later(webhook_service):
    client, fal, db = webhook_service
    raw, headers = _delivery(fal, "req-from-nowhere")
    response = client.post("/webhooks/fal", content=raw, headers=headers)
    assert response.status_code == 200 and response.json()["duplicate"] is False
    [row] = _completions(db, "req-from-nowhere")
    assert row.job_id is None and row.batch_id is None  # linked if its task is ever persisted
    assert {job.status for job in db.batches.get_jobs("wh")} == {"processing"}  # no job touched


# -------------------------------------------------------------------------------- providers


@pytest.mark.parametrize("case", list(PROVIDER_CASES))
def test_provider_case(provider_matrix: Driven, case: str):
    spec = PROVIDER_CASES[case]
    job = provider_matrix.jobs[case]
    assert (job.status, job.error_code) == (spec.status, spec.code), job.error_message
    assert job.provider == spec.provider
    runway, fal = provider_matrix.extra["runway"], provider_matrix.extra["fal"]
    prompt = job.prompt
    # paid work: at most one task per provider per job, never a second create for one job
    tasks = provider_matrix.db.ledger.tasks_for_job(job.id)
    accepted = [t for t in tasks if t.task_id]
    assert len({t.provider for t in accepted}) == len(accepted)
    assert fal.submits_by_prompt[prompt] == (1 if spec.provider == "fal" else 0)
    events = provider_matrix.outbox_events(job.id)
    assert events == (["clip.completed"] if spec.status == "completed" else ["clip.failed"])
    if spec.status == "completed":
        clip = probe(provider_matrix.storage.path(provider_matrix.storage.key_from_uri(job.video_url)))
        assert (clip.width, clip.height, clip.codec) == (1280, 720, "h264")
    details = {
        # never re-sent, never fallen back; on the ledger as possibly paid, with its estimated cost
        "503-past-retry-budget": lambda: runway.creates_by_prompt[prompt] == 1
        and [(t.possibly_orphaned, t.cost_source) for t in tasks] == [(True, "rate")],
        "429-storm-then-success": lambda: runway.creates_by_prompt[prompt] == 3,
        "failed-safety": lambda: "flagged" in job.error_message and fal.submits_by_prompt[prompt] == 0,
        "expired-output-url": lambda: runway.counts["download_expired"] >= 1,
        # Runway's task succeeded but its MP4 was cut short: refused, the job went to fal
        "truncated-mp4-output": lambda: [t.provider for t in accepted] == ["runway", "fal"],
        "failed-internal": lambda: [t.provider for t in accepted] == ["runway", "fal"],
    }
    if case in details:
        assert details[case](), case


def test_provider_matrix_batch_and_spend(provider_matrix: Driven):
    runway, fal = provider_matrix.extra["runway"], provider_matrix.extra["fal"]
    assert provider_matrix.status == "completed"
    batch = provider_matrix.db.batches.get_batch(provider_matrix.batch_id)
    assert batch.video_url and batch.error == (
        "2 of 8 clips failed: pv-00 PROVIDER_ANSWER_LOST, pv-02 RUNWAY_SAFETY_REJECTED"
    )
    # Runway: one create POST per job, plus the two 429s that created nothing
    assert runway.counts["create"] == len(PROVIDER_CASES) + 2
    assert runway.counts["created"] == len(PROVIDER_CASES) - 1  # the 503 created nothing
    # fal: exactly the fallbacks (not the answer lost), each queued once
    assert fal.counts["queued"] == sum(spec.provider == "fal" for spec in PROVIDER_CASES.values())
    events = provider_matrix.outbox_events()
    assert events.count("batch.completed") == 1 and len(events) == len(PROVIDER_CASES) + 1
