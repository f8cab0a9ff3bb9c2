"""One live task per job and provider: two runs racing over one job (an intake requested twice, a
fallback collected twice) send one create and pay once. Each thread has its own AppDatabase (its
own engine and connection), as separate Dagster runs do; the provider answers after a round trip,
so both runs are inside `submit_with_fallback` at once.

The soak found the race: an intake retry and a re-requested intake both submitted job
soak-0009-0 to Runway, and it was paid twice.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.generation import IntentOpen
from zencourt_pipeline.db.records import GenerationTaskStatus
from zencourt_pipeline.pipeline.generation import SubmissionOutcome, submit_with_fallback
from zencourt_pipeline.pipeline.quota import QuotaLimits, month_start
from zencourt_pipeline.providers.base import GenerationRequest, SubmittedTask, TaskRef
from zencourt_pipeline.providers.chain import ProviderChain
from zencourt_pipeline_tests.conftest import make_batch

RUNS = 4


class SlowProvider:
    """Accepts every create after `delay` s, each with a task of its own (each one paid)."""

    def __init__(self, name: str, delay: float = 0.3):
        self.name, self.delay, self.calls, self.lock = name, delay, [], threading.Lock()

    def submit(self, request: GenerationRequest) -> SubmittedTask:
        with self.lock:
            self.calls.append(request.job_id)
            n = len(self.calls)
        time.sleep(self.delay)
        return SubmittedTask(TaskRef(self.name, f"{self.name}-{request.job_id}-{n}"), cost_credits=5.0)

    def close(self) -> None:
        pass


def _race(url: str, job_id: str, batch_id: str, chain: ProviderChain, limits: QuotaLimits | None) -> list:
    start, results, lock = threading.Barrier(RUNS), [], threading.Lock()

    def run() -> None:
        db = AppDatabase.connect(url)
        try:
            batch = db.batches.get_batch(batch_id)
            request = GenerationRequest(job_id, batch_id, Path("unused.jpg"), "a room", 5, "landscape", 1, "Room")
            start.wait()
            outcome = submit_with_fallback(db, chain, request, ["runway"], quota=limits and limits.for_batch(batch))
            with lock:
                results.append(outcome)
        finally:
            db.db.dispose()

    threads = [threading.Thread(target=run) for _ in range(RUNS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == RUNS
    return results


def test_runs_racing_over_one_job_send_one_create(app_db):
    app_db.batches.insert_batch(*make_batch("ir", n_jobs=1, listing_id="L"))
    runway = SlowProvider("runway")
    chain = ProviderChain({"runway": runway}, ["runway"])

    results = _race(app_db.db.url, "ir-0", "ir", chain, QuotaLimits(listing_quota=10))

    assert runway.calls == ["ir-0"]  # one create: paid once
    assert sorted(r.status for r in results) == [SubmissionOutcome.EXISTING] * (RUNS - 1) + [SubmissionOutcome.SUBMITTED]
    tasks = app_db.ledger.tasks_for_job("ir-0")
    assert [(t.provider, t.status) for t in tasks] == [("runway", GenerationTaskStatus.SUBMITTED)]
    assert app_db.batches.get_jobs("ir")[0].status == "processing"  # the losers failed nothing
    assert app_db.quota.clips_used(since=month_start(), listing_id="L") == 1  # their clips went back


def test_a_second_intent_is_refused_until_the_first_is_settled(app_db):
    app_db.batches.insert_batch(*make_batch("is", n_jobs=1))
    row = app_db.ledger.begin_task("is-0", "is", "runway")
    with pytest.raises(IntentOpen) as err:
        app_db.ledger.begin_task("is-0", "is", "runway")
    assert err.value.row_id == row and "not sent again" in str(err.value)
    app_db.ledger.begin_task("is-0", "is", "fal")  # another provider: the fallback's own intent
    app_db.ledger.task_rejected(row, "RUNWAY_BAD_REQUEST", "refused: nothing paid")
    app_db.ledger.begin_task("is-0", "is", "runway")  # a refused create is settled: it may be sent again
