"""Quotas under concurrency: every provider submission reserves its clip under a row lock, so
concurrent intakes, fallbacks and workspaces can never together pass the monthly quota.

Each thread uses its own AppDatabase (its own engine and connection), as separate Dagster runs do.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.schema import clip_quota_usage
from zencourt_pipeline.pipeline.collect import collect_outputs
from zencourt_pipeline.pipeline.generation import submit_with_fallback
from zencourt_pipeline.pipeline.intake import BatchRejected
from zencourt_pipeline.pipeline.quota import QuotaLimits, enforce_quota, month_start, reserve_submission
from zencourt_pipeline.providers.base import GenerationError, GenerationRequest, SubmittedTask, TaskRef
from zencourt_pipeline.providers.chain import ProviderChain
from zencourt_pipeline_tests.conftest import make_batch

THREADS = 8


class CountingGenerator:
    """Accepts every submission after a short delay (a provider's HTTP round trip), or refuses them."""

    def __init__(self, name: str, delay: float = 0.1, refuse: GenerationError | None = None):
        self.name, self.delay, self.refuse = name, delay, refuse
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def submit(self, request: GenerationRequest) -> SubmittedTask:
        with self.lock:
            self.calls.append(request.job_id)
        time.sleep(self.delay)
        if self.refuse is not None:
            raise self.refuse
        return SubmittedTask(TaskRef(self.name, f"{self.name}-{request.job_id}"), cost_credits=5.0)

    def fetch_result(self, ref, dest, output_url=None):
        raise AssertionError("not used")

    def close(self) -> None:
        pass


def _request(job_id: str, batch_id: str, photo: Path = Path("unused.jpg")) -> GenerationRequest:
    return GenerationRequest(job_id, batch_id, photo, "a room", 5, "landscape", 1, "Room")


def _submit_one(url: str, batch_id: str, job_id: str, chain: ProviderChain, limits: QuotaLimits, start) -> str:
    """One intake's worth of work for a one-job batch: the early check, then the submission."""
    db = AppDatabase.connect(url)
    try:
        batch = db.batches.get_batch(batch_id)
        start.wait()
        try:
            enforce_quota(db.quota, batch, 1, listing_quota=limits.listing_quota, workspace_quota=limits.workspace_quota)
        except BatchRejected as exc:
            return exc.code
        outcome = submit_with_fallback(db, chain, _request(job_id, batch_id), ["runway"], quota=limits.for_batch(batch))
        return outcome.error_code or outcome.status
    finally:
        db.db.dispose()


def _race(db: AppDatabase, batches: list[str], chain: ProviderChain, limits: QuotaLimits) -> list[str]:
    start = threading.Barrier(len(batches))
    results: dict[str, str] = {}

    def run(batch_id: str) -> None:
        results[batch_id] = _submit_one(db.db.url, batch_id, f"{batch_id}-0", chain, limits, start)

    threads = [threading.Thread(target=run, args=(batch_id,)) for batch_id in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == len(batches)
    return [results[batch_id] for batch_id in batches]


def _usage(db: AppDatabase) -> dict[tuple[str, str], int]:
    with db.db.engine.connect() as conn:
        rows = conn.execute(sa.select(clip_quota_usage)).all()
    return {(row.scope, row.scope_id): row.used for row in rows}


def test_concurrent_submissions_for_one_listing_stop_exactly_at_the_quota(app_db):
    batches = [f"race-{i}" for i in range(THREADS)]
    for batch_id in batches:
        app_db.batches.insert_batch(*make_batch(batch_id, n_jobs=1, listing_id="L"))
    runway = CountingGenerator("runway")
    chain = ProviderChain({"runway": runway}, ["runway"])

    results = _race(app_db, batches, chain, QuotaLimits(listing_quota=5))

    assert sorted(results) == ["QUOTA_EXCEEDED"] * 3 + ["submitted"] * 5
    assert len(runway.calls) == 5  # nothing paid over quota
    assert app_db.quota.clips_used(since=month_start(), listing_id="L") == 5
    assert _usage(app_db) == {("listing", "L"): 5}
    refused = [job for b in batches for job in app_db.batches.get_jobs(b) if job.error_code == "QUOTA_EXCEEDED"]
    assert len(refused) == 3 and all(job.status == "failed" for job in refused)
    assert refused[0].error_message.startswith(
        "monthly clip quota exceeded: listing L has used 5 of its 5 clips for "
    )


def test_a_workspace_quota_holds_across_listings_under_concurrency(app_db):
    batches = [f"ws-{i}" for i in range(THREADS)]
    for i, batch_id in enumerate(batches):
        app_db.batches.insert_batch(*make_batch(batch_id, n_jobs=1, listing_id=f"L{i % 2}", workspace_id="W"))
    runway = CountingGenerator("runway")
    chain = ProviderChain({"runway": runway}, ["runway"])

    results = _race(app_db, batches, chain, QuotaLimits(listing_quota=4, workspace_quota=5))

    assert results.count("submitted") == 5 and len(runway.calls) == 5
    usage = _usage(app_db)
    assert usage[("workspace", "W")] == 5
    assert usage[("listing", "L0")] + usage[("listing", "L1")] == 5
    assert max(usage[("listing", "L0")], usage[("listing", "L1")]) <= 4


def test_a_fallback_submission_is_a_clip_and_a_refused_one_is_not(app_db, storage, tmp_path):
    app_db.batches.insert_batch(*make_batch("fb", n_jobs=2, listing_id="L"))
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"jpeg")
    for job_id in ("fb-0", "fb-1"):
        storage.put_file(f"photos/{job_id}.jpg", photo, "image/jpeg")
        app_db.batches.update_job(job_id, photo_key=f"photos/{job_id}.jpg")
    runway, fal = CountingGenerator("runway", delay=0), CountingGenerator("fal", delay=0)
    chain = ProviderChain({"runway": runway, "fal": fal}, ["runway", "fal"])
    limits = QuotaLimits(listing_quota=3)
    batch = app_db.batches.get_batch("fb")
    for job_id in ("fb-0", "fb-1"):
        outcome = submit_with_fallback(app_db, chain, _request(job_id, "fb"), ["runway"], quota=limits.for_batch(batch))
        assert outcome.status == "submitted"
    assert _usage(app_db) == {("listing", "L"): 2}

    # both Runway tasks fail: each job falls back to fal, a paid clip; only one fits the quota of 3
    for job_id in ("fb-0", "fb-1"):
        app_db.completions.record_completion(
            provider="runway", task_id=f"runway-{job_id}", status="failed", source="poll", error_code="RUNWAY_FAILED"
        )
    outcomes = collect_outputs(app_db, storage, chain, batch, app_db.batches.get_jobs("fb"), tmp_path, quota=limits)
    assert [(o.job_id, o.status, o.error_code) for o in outcomes] == [
        ("fb-0", "submitted", None),
        ("fb-1", "failed", "QUOTA_EXCEEDED"),
    ]
    assert fal.calls == ["fb-0"]
    assert _usage(app_db) == {("listing", "L"): 3}
    assert app_db.batches.get_job("fb-1").status == "failed"

    # a submission the provider refuses pays nothing: its clip goes back before the fallback
    app_db.batches.insert_batch(*make_batch("rf", n_jobs=1, listing_id="M"))
    refusing = CountingGenerator("runway", delay=0, refuse=GenerationError("RUNWAY_RATE_LIMITED", "429", fallback=True))
    chain = ProviderChain({"runway": refusing, "fal": fal}, ["runway", "fal"])
    outcome = submit_with_fallback(
        app_db, chain, _request("rf-0", "rf"), ["runway", "fal"], quota=limits.for_batch(app_db.batches.get_batch("rf"))
    )
    assert (outcome.status, outcome.provider) == ("submitted", "fal")
    assert _usage(app_db)[("listing", "M")] == 1


def test_a_month_row_starts_from_the_tasks_accepted_before_it_existed(app_db):
    now = datetime.now(UTC)
    app_db.batches.insert_batch(*make_batch("old", n_jobs=3, listing_id="L", workspace_id="W"))
    for i in range(3):  # paid before reservations existed (or before the quota was set)
        row = app_db.ledger.begin_task(f"old-{i}", "old", "runway")
        app_db.ledger.task_submitted(row, f"old-{i}", "runway", f"t-{i}")
    batch = app_db.batches.get_batch("old")
    assert [u.used for u in enforce_quota(app_db.quota, batch, 2, listing_quota=5, workspace_quota=0)] == [3]
    with pytest.raises(BatchRejected):
        enforce_quota(app_db.quota, batch, 3, listing_quota=5, workspace_quota=0)
    reserve_submission(app_db.quota, batch, listing_quota=5, workspace_quota=0, now=now)
    reservation = reserve_submission(app_db.quota, batch, listing_quota=5, workspace_quota=0, now=now)
    with pytest.raises(GenerationError) as refused:
        reserve_submission(app_db.quota, batch, listing_quota=5, workspace_quota=0, now=now)
    assert refused.value.code == "QUOTA_EXCEEDED" and not refused.value.fallback
    # unlimited scopes are still counted, so that a quota set later starts from the true usage
    assert _usage(app_db) == {("listing", "L"): 5, ("workspace", "W"): 5}
    app_db.quota.release_clips(reservation.scopes, reservation.month, 1)
    app_db.quota.release_clips(reservation.scopes, "1999-01", 1)  # no such row: nothing happens
    assert _usage(app_db) == {("listing", "L"): 4, ("workspace", "W"): 4}
    app_db.quota.release_clips(reservation.scopes, reservation.month, 10)
    assert _usage(app_db) == {("listing", "L"): 0, ("workspace", "W"): 0}  # never below 0
