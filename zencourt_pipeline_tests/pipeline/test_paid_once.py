# ruff: noqa: F811 - the fake-server fixtures are imported by name
"""A clip is never paid twice because of a lost answer, a crash or a failed download (issue 11,
defect 4), and every possibly paid task is on the ledger. Real sockets against the fake Runway
and fal servers, a real database, local storage; no mocks.

- an ambiguous create (the task is created, the answer is lost) is never re-sent nor fallen back:
  its task row is kept as possibly orphaned with its estimated cost, its quota clip stays
  reserved, and the job fails PROVIDER_ANSWER_LOST;
- a finished task's output that does not download is downloaded again (fresh URL) on the next
  collect, never generated again; past the bound the job fails OUTPUT_DOWNLOAD_FAILED;
- only an output that arrives complete and is not a valid MP4 twice falls back (a counted
  second payment).
"""

from __future__ import annotations

import pytest

from zencourt_pipeline.pipeline.collect import collect_outputs
from zencourt_pipeline.pipeline.generation import submit_jobs
from zencourt_pipeline.pipeline.quota import QuotaLimits, month_start
from zencourt_pipeline.pipeline.reconcile import record_poll_result, task_ref
from zencourt_pipeline.providers.chain import ProviderChain
from zencourt_pipeline.providers.fal import FalGenerator
from zencourt_pipeline.providers.runway import RunwayGenerator
from zencourt_pipeline_tests.conftest import make_batch
from zencourt_pipeline_tests.fakes.fal import FalScript
from zencourt_pipeline_tests.fakes.fixtures import (  # noqa: F401
    FakeClock,
    MaxJitter,
    fake_fal,
    fake_runway,
    photo,
)
from zencourt_pipeline_tests.fakes.runway import RunwayScript


class Stack:
    """One batch of one job with a prepared photo, and a provider chain over the fakes."""

    def __init__(self, db, storage, tmp_path, photo_path, runway, fal, order, batch_id="paid"):  # noqa: F811
        self.db, self.storage, self.work = db, storage, tmp_path / "work"
        self.work.mkdir(exist_ok=True)
        self.batch_id, self.job_id = batch_id, f"{batch_id}-0"
        db.batches.insert_batch(*make_batch(batch_id, n_jobs=1))
        db.batches.start_batch(batch_id)
        key = f"uploads/{batch_id}/0.jpg"
        storage.put_file(key, photo_path)
        db.batches.update_job(self.job_id, photo_key=key, duration_seconds=5)
        clock = FakeClock()  # Runway's 5 s poll spacing and download backoff pass in fake time
        common = dict(sleep=clock.sleep, clock=clock, rng=MaxJitter())
        self.runway = RunwayGenerator(runway.api_key, base_url=runway.url, **common)
        self.fal = FalGenerator(fal.key, queue_url=fal.url, **common)
        self.chain = ProviderChain({"runway": self.runway, "fal": self.fal}, order)
        self.quota = QuotaLimits(listing_quota=10)

    def batch(self):
        return self.db.batches.get_batch(self.batch_id)

    def jobs(self):
        return self.db.batches.get_jobs(self.batch_id)

    def job(self):
        return self.db.batches.get_job(self.job_id)

    def tasks(self):
        return self.db.ledger.tasks_for_job(self.job_id)

    def submit(self, **kwargs):
        [outcome] = submit_jobs(self.db, self.storage, self.chain, self.batch(), self.jobs(), self.work, quota=self.quota, **kwargs)
        return outcome

    def collect(self, **kwargs):
        [outcome] = collect_outputs(self.db, self.storage, self.chain, self.batch(), self.jobs(), self.work, quota=self.quota, **kwargs)
        return outcome

    def finish(self):
        """Poll the accepted task to its end and record it, as the reconciler does."""
        [task] = [t for t in self.tasks() if t.task_id]
        status = self.chain.get(task.provider).poll(task_ref(task))
        assert status.state.terminal, status
        record_poll_result(self.db, task, status)
        return status

    def clips_reserved(self) -> int:
        month = month_start().strftime("%Y-%m")
        scope = ("listing", f"listing-{self.batch_id}")
        return self.db.quota.clip_usage([scope], month)[scope]


@pytest.fixture
def stack(app_db, storage, tmp_path, photo, fake_runway, fake_fal):  # noqa: F811
    built = []

    def make(order=("runway", "fal")):
        made = Stack(app_db, storage, tmp_path, photo, fake_runway, fake_fal, list(order))
        built.append(made)
        return made

    yield make
    for made in built:
        made.chain.close()


def _assert_possibly_orphaned(task, provider, cost_usd):
    assert task.provider == provider and task.task_id is None
    assert task.possibly_orphaned is True and task.error_code == "PROVIDER_ANSWER_LOST"
    assert (task.cost_usd, task.cost_source) == (cost_usd, "rate")
    assert task.status != "submitting"


# ------------------------------------------------------------------------------ lost answers


def test_a_runway_create_whose_answer_is_dropped_is_paid_once_and_counted(stack, fake_runway, fake_fal):
    s = stack()
    fake_runway.drop_answer_next_creates(1)
    outcome = s.submit()
    assert (outcome.status, outcome.error_code) == ("failed", "PROVIDER_ANSWER_LOST")
    # the task exists at Runway: one create, no second one, no fal submit (it used to fall back)
    assert fake_runway.counts["create"] == 1 and fake_runway.counts["created"] == 1
    assert fake_fal.counts["submit"] == 0
    [task] = s.tasks()
    _assert_possibly_orphaned(task, "runway", 0.25)  # 5 s x 5 credits/s x $0.01: the rate table
    job = s.job()
    assert (job.status, job.error_code, job.provider) == ("failed", "PROVIDER_ANSWER_LOST", "runway")
    assert s.clips_reserved() == 1  # it may have been paid: the clip is not given back
    # a later run, a later collect: nothing more is sent anywhere
    assert s.submit().status == "skipped" and s.collect().status == "skipped"
    assert fake_runway.counts["create"] == 1 and fake_fal.counts["submit"] == 0


def test_a_create_answered_with_another_jobs_task_id_is_an_answer_lost(
    app_db, storage, tmp_path, photo, fake_runway, fake_fal
):
    """A duplicate create answer (the id an earlier create got): this create's own task is
    unknown, so it is counted as possibly paid and never re-sent; the first job keeps its task."""
    first = Stack(app_db, storage, tmp_path, photo, fake_runway, fake_fal, ["runway", "fal"], batch_id="first")
    second = Stack(app_db, storage, tmp_path, photo, fake_runway, fake_fal, ["runway", "fal"], batch_id="second")
    try:
        assert first.submit().status == "submitted"
        fake_runway.replay_answer_next_creates(1)
        outcome = second.submit()
        assert (outcome.status, outcome.error_code) == ("failed", "PROVIDER_ANSWER_LOST")
        assert fake_runway.fault_log.count("create_answer_replayed") == 1  # the fault hit
        assert fake_runway.counts["created"] == 2 and fake_fal.counts["submit"] == 0  # no re-send, no fallback
        [task] = second.tasks()
        _assert_possibly_orphaned(task, "runway", 0.25)
        [owner] = first.tasks()
        assert (owner.job_id, owner.status, owner.possibly_orphaned) == ("first-0", "submitted", False)
        assert first.job().provider_task_id == owner.task_id and first.job().status == "processing"
        assert second.submit().status == "skipped" and fake_runway.counts["create"] == 2
    finally:
        first.chain.close()
        second.chain.close()


def test_a_runway_create_answered_503_is_an_answer_lost_not_a_fallback(stack, fake_runway, fake_fal):
    s = stack()
    fake_runway.create_fault_creates_task = True  # the 503 hides a created task
    fake_runway.fail_next_creates(1, status=503)
    assert s.submit().error_code == "PROVIDER_ANSWER_LOST"
    assert fake_runway.counts["created"] == 1 and fake_fal.counts["submit"] == 0
    _assert_possibly_orphaned(s.tasks()[0], "runway", 0.25)


def test_a_runway_create_answered_past_the_read_timeout_is_an_answer_lost(stack, fake_runway, fake_fal):
    import httpx

    s = stack()
    s.runway.timeout = httpx.Timeout(0.3, connect=2.0)
    fake_runway.answer_late_next_creates(1, 1.0)
    assert s.submit().error_code == "PROVIDER_ANSWER_LOST"
    assert fake_runway.counts["created"] == 1 and fake_fal.counts["submit"] == 0
    _assert_possibly_orphaned(s.tasks()[0], "runway", 0.25)


def test_a_fal_submit_whose_answer_is_dropped_is_paid_once_and_counted(stack, fake_runway, fake_fal):
    s = stack(order=("fal", "runway"))
    fake_fal.drop_answer_next_submits(1)
    outcome = s.submit()
    assert (outcome.status, outcome.error_code) == ("failed", "PROVIDER_ANSWER_LOST")
    assert fake_fal.counts["submit"] == 1 and fake_fal.counts["queued"] == 1
    assert fake_runway.counts["create"] == 0
    [task] = s.tasks()
    _assert_possibly_orphaned(task, "fal", 0.25)  # Kling standard: $0.25 for 5 s
    assert s.clips_reserved() == 1


def test_a_refused_create_still_falls_back_and_costs_nothing(stack, fake_runway, fake_fal):
    s = stack()
    fake_runway.fail_next_creates(5, status=429)  # the daily limit: provably nothing created
    assert s.submit().status == "submitted"
    refused, accepted = s.tasks()
    assert refused.possibly_orphaned is False and refused.cost_usd is None and refused.task_id is None
    assert accepted.provider == "fal" and accepted.task_id
    assert fake_runway.counts["created"] == 0 and fake_fal.counts["queued"] == 1
    assert s.clips_reserved() == 1  # the refused one went back, the fal one is reserved


def test_the_intent_of_a_dead_run_is_never_resent(stack, fake_runway, fake_fal):
    """A run that died between the intent and the answer (the fake created the task): the next
    run does not create it again, nor falls back; the intent is counted as possibly paid."""
    s = stack()
    s.db.ledger.begin_task(s.job_id, s.batch_id, "runway", run_id="dead-run")
    fake_runway.tasks.clear()  # (what the dead run's create may have left at Runway is unknown)
    outcome = s.submit(run_id="next-run", is_run_active=lambda run_id: False)
    assert (outcome.status, outcome.error_code) == ("failed", "PROVIDER_ANSWER_LOST")
    assert fake_runway.counts["create"] == 0 and fake_fal.counts["submit"] == 0
    _assert_possibly_orphaned(s.tasks()[0], "runway", 0.25)


# -------------------------------------------------------------------------- failed downloads


def _succeeded_on_runway(s, fake_runway, script=None):
    fake_runway.scripts.next(script or RunwayScript(statuses=[]))
    assert s.submit().status == "submitted"
    assert s.finish().output_url


def test_an_expired_output_url_is_fetched_fresh_and_stored(stack, fake_runway, fake_fal):
    s = stack()
    _succeeded_on_runway(s, fake_runway)
    fake_runway.expire_outputs()  # the recorded URL is dead (e.g. collected a day later)
    outcome = s.collect()
    assert outcome.status == "stored" and s.storage.exists(s.job().raw_clip_key)
    assert fake_runway.counts["download_expired"] == 1 and fake_runway.counts["created"] == 1
    assert fake_fal.counts["submit"] == 0


def test_an_expired_url_whose_fresh_url_fails_too_is_downloaded_later_not_regenerated(stack, fake_runway, fake_fal):
    s = stack()
    _succeeded_on_runway(s, fake_runway)
    fake_runway.expire_outputs()
    fake_runway.fail_next_downloads(1, status=403)  # the first URL: expired
    fake_runway.fail_next_downloads(3, status=503)  # the fresh one: an outage (three tries)
    outcome = s.collect()
    assert (outcome.status, outcome.error_code) == ("in_flight", "OUTPUT_DOWNLOAD_FAILED")
    assert fake_fal.counts["submit"] == 0  # it used to fall back to fal: a second payment
    assert s.collect().status == "stored"
    assert fake_runway.counts["created"] == 1 and fake_fal.counts["submit"] == 0


def test_downloads_failing_across_collect_attempts_still_pay_once_and_store(stack, fake_runway, fake_fal):
    s = stack()
    _succeeded_on_runway(s, fake_runway)
    [task] = s.tasks()
    fake_runway.fail_next_downloads(8, status=503)  # 3 tries per URL, two URLs per collect
    first = s.collect()
    assert (first.status, first.error_code) == ("in_flight", "OUTPUT_DOWNLOAD_FAILED")
    assert s.job().status == "processing" and not s.job().raw_clip_key
    [task] = s.tasks()
    assert task.download_attempts == 2 and "503" in task.download_error
    polls = fake_runway.polls_by_task[task.task_id]
    second = s.collect()
    assert second.status == "stored" and s.storage.exists(s.job().raw_clip_key)
    assert fake_runway.polls_by_task[task.task_id] == polls + 1  # re-polled for a fresh URL
    assert fake_runway.counts["created"] == 1 and fake_fal.counts["submit"] == 0
    assert [t.provider for t in s.tasks()] == ["runway"]


def test_downloads_failing_forever_fail_the_job_without_fallback(stack, fake_runway, fake_fal):
    s = stack()
    _succeeded_on_runway(s, fake_runway)
    fake_runway.fail_next_downloads(10_000, status=503)
    assert s.collect(max_download_attempts=4).status == "in_flight"
    outcome = s.collect(max_download_attempts=4)
    assert (outcome.status, outcome.error_code) == ("failed", "OUTPUT_DOWNLOAD_FAILED")
    job = s.job()
    assert (job.status, job.error_code) == ("failed", "OUTPUT_DOWNLOAD_FAILED")
    assert "after 4 attempts" in job.error_message
    [task] = s.tasks()
    assert task.download_attempts == 4 and task.status == "succeeded" and task.cost_usd == 0.25
    assert fake_runway.counts["created"] == 1 and fake_fal.counts["submit"] == 0
    assert s.collect().status == "skipped" and fake_fal.counts["submit"] == 0


def test_the_download_bound_comes_from_the_environment(tmp_path, monkeypatch):
    """ZENCOURT_MAX_DOWNLOAD_ATTEMPTS reaches the collect step through the pipeline settings resource."""
    from zencourt_pipeline.config import Settings
    from zencourt_pipeline.defs.resources import build_resources

    monkeypatch.setenv("ZENCOURT_DATA_DIR", str(tmp_path))
    assert build_resources(Settings.from_env())["pipeline_settings"].max_download_attempts == 5
    monkeypatch.setenv("ZENCOURT_MAX_DOWNLOAD_ATTEMPTS", "2")
    assert build_resources(Settings.from_env())["pipeline_settings"].max_download_attempts == 2


def test_a_transfer_cut_short_is_downloaded_again_not_regenerated(stack, fake_runway, fake_fal):
    s = stack()
    _succeeded_on_runway(s, fake_runway)
    fake_runway.fail_next_downloads(6, status="short_body")
    assert s.collect().error_code == "OUTPUT_DOWNLOAD_FAILED"
    assert s.collect().status == "stored"
    assert fake_runway.counts["created"] == 1 and fake_fal.counts["submit"] == 0


def test_a_fal_output_that_fails_to_download_is_fetched_again_from_the_response_url(stack, fake_runway, fake_fal):
    s = stack(order=("fal", "runway"))
    fake_fal.scripts.next(FalScript(statuses=[]))
    assert s.submit().status == "submitted"
    s.finish()
    fake_fal.expire_outputs()
    fake_fal.fail_next_downloads(1, status=403)
    fake_fal.fail_next_downloads(3, status=503)
    assert s.collect().error_code == "OUTPUT_DOWNLOAD_FAILED"
    results = fake_fal.counts["result"]
    assert s.collect().status == "stored"
    assert fake_fal.counts["result"] > results  # a fresh GET of the response URL
    assert fake_fal.counts["queued"] == 1 and fake_runway.counts["create"] == 0


def test_an_output_invalid_twice_falls_back_and_both_tasks_are_counted(stack, fake_runway, fake_fal):
    """The provider's bad output (complete, not an MP4, from the recorded and a fresh URL) is the
    one download failure that may pay again: the Runway task stays on the ledger as paid."""
    s = stack()
    _succeeded_on_runway(s, fake_runway, RunwayScript(statuses=[], output="not_mp4"))
    outcome = s.collect()
    assert outcome.status == "submitted" and outcome.provider == "fal"
    assert fake_runway.counts["download"] == 2 and fake_fal.counts["queued"] == 1
    runway_task, fal_task = s.tasks()
    assert (runway_task.status, runway_task.cost_usd, runway_task.error_code) == ("succeeded", 0.25, "INVALID_OUTPUT")
    assert fal_task.provider == "fal" and fal_task.task_id and fal_task.cost_usd == 0.25


def test_a_fallback_create_cut_off_by_a_dead_run_fails_the_job_answer_lost_not_the_first_providers_code(
    stack, fake_runway, fake_fal
):
    """The 100-batch soak caught it: a kill cut off the fallback's create to fal (its row stayed
    `submitting`); the next collect saw the failed Runway task again, found fal tried and failed
    the job RUNWAY_GENERATION_FAILED. The create may be paid: PROVIDER_ANSWER_LOST, counted."""
    s = stack()
    fake_runway.scripts.next(RunwayScript(statuses=[], outcome="fail", failure_code="INTERNAL.BAD_OUTPUT.CODE01"))
    assert s.submit().status == "submitted"
    s.finish()
    intent = s.db.ledger.begin_task(s.job_id, s.batch_id, "fal", run_id="a-dead-compose-run")
    outcome = s.collect()
    assert (outcome.status, outcome.error_code) == ("failed", "PROVIDER_ANSWER_LOST")
    assert fake_fal.counts["submit"] == 0  # never re-sent
    [fal_row] = [t for t in s.tasks() if t.id == intent]
    _assert_possibly_orphaned(fal_row, "fal", fal_row.cost_usd)
    assert fal_row.cost_usd and fal_row.cost_usd > 0
