"""Every paid task carries its cost (issue 11, defect 7): the rate estimate from the moment the
provider accepts it, replaced by the provider's own figure when the finished task reports one."""

from __future__ import annotations

from zencourt_pipeline.pipeline.generation import submit_with_fallback
from zencourt_pipeline.pipeline.reconcile import record_poll_result, task_ref
from zencourt_pipeline.providers.chain import ProviderChain
from zencourt_pipeline.providers.runway import RunwayGenerator
from zencourt_pipeline_tests.conftest import make_batch
from zencourt_pipeline_tests.fakes.fixtures import (  # noqa: F401
    FakeClock,
    MaxJitter,
    fake_runway,
    make_request,
    photo,
    poll_until_done,
)
from zencourt_pipeline_tests.fakes.runway import RunwayScript


def _runway(fake) -> RunwayGenerator:
    clock = FakeClock()  # Runway's 5 s poll spacing passes in fake time
    return RunwayGenerator(fake.api_key, base_url=fake.url, sleep=clock.sleep, clock=clock, rng=MaxJitter())


def _submitted_task(db, fake, photo_path, batch_id, duration=5):  # noqa: F811
    db.batches.insert_batch(*make_batch(batch_id, n_jobs=1))
    db.batches.start_batch(batch_id)
    generator = _runway(fake)
    chain = ProviderChain({"runway": generator}, ["runway"])
    request = make_request(photo_path, job_id=f"{batch_id}-0", batch_id=batch_id, duration_seconds=duration)
    assert submit_with_fallback(db, chain, request, ["runway"]).status == "submitted"
    [task] = db.ledger.tasks_for_batch(batch_id)
    return generator, task


def test_a_submitted_task_carries_the_rate_estimate(app_db, fake_runway, photo):  # noqa: F811
    _gen, task = _submitted_task(app_db, fake_runway, photo, "est", duration=10)
    assert (task.cost_usd, task.cost_source) == (0.5, "rate")  # 5 credits/s x 10 s x $0.01


def test_the_cost_a_finished_task_reports_replaces_the_estimate(app_db, fake_runway, photo):  # noqa: F811
    fake_runway.scripts.next(RunwayScript(statuses=["RUNNING"]))
    fake_runway.report_credits_per_second = 6  # billed differently from the table's 5 credits/s
    generator, task = _submitted_task(app_db, fake_runway, photo, "billed")
    final, _ = poll_until_done(generator, task_ref(task))
    record_poll_result(app_db, task, final)  # what the reconciler does with a terminal poll
    [task] = app_db.ledger.tasks_for_batch("billed")
    assert (task.cost_credits, task.cost_usd, task.cost_source) == (30, 0.3, "provider")
    assert task.status == "succeeded"


def test_a_task_without_a_reported_cost_keeps_its_estimate(app_db, fake_runway, photo):  # noqa: F811
    generator, task = _submitted_task(app_db, fake_runway, photo, "plain")
    final, _ = poll_until_done(generator, task_ref(task))
    record_poll_result(app_db, task, final)
    [task] = app_db.ledger.tasks_for_batch("plain")
    assert (task.cost_usd, task.cost_source) == (0.25, "rate")
