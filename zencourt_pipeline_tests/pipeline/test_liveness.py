"""Issue 11, defects 2, 3 and 6: fair sensor pages, no batch left `processing`, one compose per state."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from zencourt_pipeline.db.clock import utcnow
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.pipeline.generation import generation_state
from zencourt_pipeline.pipeline.liveness import (
    RUN_ACTIVE,
    RUN_ENDED,
    Deadlines,
    RunEnd,
    compose_run_key,
    on_intake_failed,
    watch_processing,
)
from zencourt_pipeline.providers.chain import ProviderChain
from zencourt_pipeline_tests.conftest import make_batch
from zencourt_pipeline_tests.fakes.fixtures import fake_runway, photo  # noqa: F401


def _generating(db, batch_id, n_jobs=2, complete=True):
    db.batches.insert_batch(*make_batch(batch_id, n_jobs=n_jobs))
    db.batches.start_batch(batch_id)
    for i in range(n_jobs):
        job_id = f"{batch_id}-{i}"
        row = db.ledger.begin_task(job_id, batch_id, "fal")
        db.ledger.task_submitted(row, job_id, "fal", f"{batch_id}-r{i}")
        if complete:
            db.completions.record_completion(provider="fal", task_id=f"{batch_id}-r{i}", status="succeeded", source="webhook")


def test_the_compose_run_marking_jobs_completed_does_not_change_the_state_digest(app_db):
    # defect 6: the digest covered job statuses, which the compose run itself changes
    _generating(app_db, "d6")
    ready, before = generation_state(app_db.liveness, "d6")
    assert ready
    app_db.batches.update_job("d6-0", raw_clip_key="batches/d6/generated/d6-0.mp4")
    app_db.batches.complete_job("d6-0", "file:///d6-0.mp4", None)
    app_db.batches.complete_job("d6-1", "file:///d6-1.mp4", None)
    assert generation_state(app_db.liveness, "d6") == (True, before)
    _generating(app_db, "d6c", n_jobs=3)
    _ready, open_state = generation_state(app_db.liveness, "d6c")
    app_db.cancels.cancel(job_ids=["d6c-1"])  # a cancel is a new state
    assert generation_state(app_db.liveness, "d6c")[1] != open_state


def test_one_compose_request_per_state_and_a_finished_batch_tells_the_web_app_once(app_db):
    _generating(app_db, "once")
    runs: dict[str, str] = {}
    first = watch_processing(app_db, app_db.liveness.rotate_batches("processing", 10), runs.get, Deadlines())
    assert [r.run_key for r in first.requests] == [compose_run_key("once", first.requests[0].digest, 1)]
    runs[first.requests[0].run_key] = RUN_ACTIVE
    app_db.batches.complete_job("once-0", "file:///0.mp4", None)  # what the running compose run writes
    again = watch_processing(app_db, app_db.liveness.rotate_batches("processing", 10), runs.get, Deadlines())
    assert again.requests == [] and again.waiting == 1
    assert app_db.batches.finish_batch("once", "completed", video_url="file:///v.mp4")
    assert app_db.batches.finish_batch("once", "completed", video_url="file:///v2.mp4")  # a re-compose
    assert [e.event for e in app_db.outbox.rows("once")].count("batch.completed") == 1


def test_a_ready_batch_is_examined_whatever_the_other_open_batches_do(app_db):
    # defect 2: 25 slots taken every tick by batches whose run key was already used
    for i in range(30):
        _generating(app_db, f"stuck-{i:02d}")
    page_1 = app_db.liveness.rotate_batches("processing", 25)
    _generating(app_db, "fresh")
    page_2 = {b.id for b in app_db.liveness.rotate_batches("processing", 25)}
    assert "fresh" in page_2  # never looked at: first in line, ahead of the 5 stuck ones left
    assert {b.id for b in page_1} | page_2 == {f"stuck-{i:02d}" for i in range(30)} | {"fresh"}


def test_a_compose_run_that_ended_without_finishing_the_batch_gets_bounded_new_attempts(app_db):
    # defect 3: a storage error or a failed compose run left the batch `processing` for ever
    _generating(app_db, "retry")
    deadlines = Deadlines(max_attempts=3)
    keys = []
    ended = lambda key: RUN_ENDED if key in keys else None  # noqa: E731 - every requested run ends unfinished
    for _ in range(3):
        report = watch_processing(app_db, [app_db.batches.get_batch("retry")], ended, deadlines)
        keys += [r.run_key for r in report.requests]
    assert len(keys) == len(set(keys)) == 3 and keys[1].endswith("-a2") and keys[2].endswith("-a3")
    report = watch_processing(app_db, [app_db.batches.get_batch("retry")], ended, deadlines)
    assert report.failed == [("retry", ErrorCode.COMPOSITION_FAILED)]
    batch = app_db.batches.get_batch("retry")
    assert (batch.status, batch.error_code) == ("failed", ErrorCode.COMPOSITION_FAILED)
    assert [e.event for e in app_db.outbox.rows("retry")].count("batch.failed") == 1


def test_clips_past_the_generation_deadline_time_out_and_the_batch_goes_on(app_db):
    _generating(app_db, "late", complete=False)
    app_db.completions.record_completion(provider="fal", task_id="late-r0", status="succeeded", source="webhook")
    later = utcnow() + timedelta(hours=3)
    report = watch_processing(app_db, [app_db.batches.get_batch("late")], lambda key: None, Deadlines(), now=later)
    assert report.timed_out_jobs == 1
    assert app_db.batches.get_job("late-1").error_code == ErrorCode.GENERATION_TIMEOUT
    # its provider task is what the reconciler still has to cancel (stops the spend)
    assert [t.task_id for t in app_db.liveness.live_tasks_of_ended_jobs()] == ["late-r1"]
    assert generation_state(app_db.liveness, "late")[0]  # ready: composed from the clip it has


def test_a_blocked_batch_waits_for_an_operator_then_fails_at_its_deadline(app_db):
    _generating(app_db, "blk")
    watch_processing(app_db, [app_db.batches.get_batch("blk")], lambda key: None, Deadlines())
    app_db.liveness.block_batch("blk", "CLIP_CHECK_FAILED")
    waiting = watch_processing(app_db, [app_db.batches.get_batch("blk")], lambda key: RUN_ENDED, Deadlines())
    assert waiting.requests == [] and app_db.batches.get_batch("blk").status == "processing"
    later = utcnow() + timedelta(hours=3)
    failed = watch_processing(app_db, [app_db.batches.get_batch("blk")], lambda key: RUN_ENDED, Deadlines(), now=later)
    assert failed.failed == [("blk", "CLIP_CHECK_FAILED")]


def test_run_requests_per_tick_are_capped_and_the_rest_go_first_next_tick(app_db):
    for i in range(30):
        _generating(app_db, f"cap-{i:02d}")
    first = watch_processing(app_db, app_db.liveness.rotate_batches("processing", 200), lambda key: None, Deadlines(), max_requests=25)
    assert len(first.requests) == 25 and first.waiting == 5
    requested = {r.batch_id for r in first.requests}
    _generating(app_db, "newer")
    page = [b.id for b in app_db.liveness.rotate_batches("processing", 6)]
    assert set(page[:5]) == {f"cap-{i:02d}" for i in range(30)} - requested  # the deferred ones lead


def test_the_reconciler_cancels_the_live_task_of_a_timed_out_clip(app_db, fake_runway, photo):  # noqa: F811
    # a clip that timed out (or a cancel that failed) keeps costing until its provider task is stopped
    from zencourt_pipeline.pipeline.reconcile import reconcile_tasks
    from zencourt_pipeline_tests.fakes.runway import RunwayScript
    from zencourt_pipeline_tests.pipeline.test_task_cost import _submitted_task

    fake_runway.scripts.next(RunwayScript(hold=True))
    generator, task = _submitted_task(app_db, fake_runway, photo, "to")
    app_db.batches.fail_job("to-0", ErrorCode.GENERATION_TIMEOUT, "late")
    chain = ProviderChain({"runway": generator}, ["runway"])
    report = reconcile_tasks(app_db, chain, webhook_overdue_after={})
    assert report.canceled == 1 and fake_runway.counts["delete"] == 1
    assert fake_runway.status_of(task.task_id) == "CANCELLED"
    assert app_db.liveness.live_tasks_of_ended_jobs() == []  # confirmed: not asked again next tick
    reconcile_tasks(app_db, chain, webhook_overdue_after={})
    assert fake_runway.counts["delete"] == 1


def test_a_batch_failed_at_its_composition_deadline_leaves_no_job_processing(app_db):
    """The strict soak caught it: a clip whose paid output was still being downloaded again kept
    its job `processing` in a batch the watchdog had failed COMPOSITION_TIMEOUT."""
    _generating(app_db, "ct")  # every clip has its completion: the batch is ready to compose
    app_db.batches.complete_job("ct-0", "file:///ct-0.mp4", None)  # ct-1's output is still to be downloaded
    watch_processing(app_db, [app_db.batches.get_batch("ct")], lambda key: None, Deadlines())
    later = utcnow() + timedelta(hours=3)
    report = watch_processing(app_db, [app_db.batches.get_batch("ct")], lambda key: RUN_ENDED, Deadlines(), now=later)
    assert report.failed == [("ct", ErrorCode.COMPOSITION_TIMEOUT)]
    assert app_db.batches.get_batch("ct").status == "failed"
    assert [(j.status, j.error_code) for j in app_db.batches.get_jobs("ct")] == [
        ("completed", None), ("failed", ErrorCode.COMPOSITION_TIMEOUT)]
    events = [e.event for e in app_db.outbox.rows("ct")]
    assert events.index("clip.failed") < events.index("batch.failed") and events.count("batch.failed") == 1


def test_intake_runs_the_infrastructure_interrupted_spend_a_larger_budget(app_db):
    """The 100-batch soak caught it: worker kills and restarts used up a batch's three intake
    attempts, and it failed INTAKE_FAILED though its own code never failed."""
    app_db.batches.insert_batch(*make_batch("ia"))
    interrupted = Counter({RunEnd.INTERRUPTED: 3, RunEnd.FAILED: 2})
    assert on_intake_failed(app_db, "ia", 3, interrupted) == "intake-ia-a2"
    assert app_db.batches.get_batch("ia").status == "pending"
    assert on_intake_failed(app_db, "ia", 3, Counter({RunEnd.INTERRUPTED: 11})) == "intake-ia-a3"
    assert on_intake_failed(app_db, "ia", 3, Counter({RunEnd.INTERRUPTED: 12})) is None  # bounded all the same
    batch = app_db.batches.get_batch("ia")
    assert (batch.status, batch.error_code) == ("failed", ErrorCode.INTAKE_FAILED)
    assert "12 interrupted" in batch.error


def test_intake_runs_that_failed_on_their_own_get_max_attempts(app_db):
    app_db.batches.insert_batch(*make_batch("if"))
    assert on_intake_failed(app_db, "if", 3, Counter({RunEnd.FAILED: 2, RunEnd.INTERRUPTED: 5})) == "intake-if-a2"
    assert on_intake_failed(app_db, "if", 3, Counter({RunEnd.FAILED: 3})) is None
    assert app_db.batches.get_batch("if").error_code == ErrorCode.INTAKE_FAILED
    assert [e.event for e in app_db.outbox.rows("if")].count("batch.failed") == 1


def test_an_unanswered_create_of_an_ended_job_is_kept_as_possibly_paid(app_db, fake_runway):  # noqa: F811
    """The soak caught it: a cancel terminated an intake run between the ledger row and Runway's
    answer; the canceled job's run never came back, so its create stayed `submitting`, uncounted."""
    from datetime import timedelta

    from zencourt_pipeline.pipeline.reconcile import give_up_intents_of_ended_jobs
    from zencourt_pipeline.providers.runway import RunwayGenerator

    app_db.batches.insert_batch(*make_batch("ui"))
    app_db.batches.start_batch("ui")
    app_db.batches.update_job("ui-0", duration_seconds=5)
    intent = app_db.ledger.begin_task("ui-0", "ui", "runway")
    open_intent = app_db.ledger.begin_task("ui-1", "ui", "runway")  # its job is open: its own run decides
    chain = ProviderChain({"runway": RunwayGenerator(fake_runway.api_key, base_url=fake_runway.url)}, ["runway"])
    try:
        assert give_up_intents_of_ended_jobs(app_db, chain, older_than=timedelta(0)) == 0  # job still open
        app_db.cancels.cancel(job_ids=["ui-0"])
        assert give_up_intents_of_ended_jobs(app_db, chain) == 0  # too recent: its answer may still come
        assert give_up_intents_of_ended_jobs(app_db, chain, older_than=timedelta(0)) == 1
    finally:
        chain.close()
    tasks = {t.id: t for t in app_db.ledger.tasks_for_batch("ui")}
    given_up = tasks[intent]
    assert (given_up.possibly_orphaned, given_up.error_code, given_up.cost_usd) == (True, "PROVIDER_ANSWER_LOST", 0.25)
    assert tasks[open_intent].status == "submitting" and not tasks[open_intent].possibly_orphaned
    assert give_up_intents_of_ended_jobs(app_db, chain, older_than=timedelta(0)) == 0  # once


def test_an_unanswered_create_of_an_ended_job_is_given_up_as_soon_as_its_run_finished(app_db, fake_runway):  # noqa: F811
    from zencourt_pipeline.pipeline.reconcile import give_up_intents_of_ended_jobs
    from zencourt_pipeline.providers.runway import RunwayGenerator

    app_db.batches.insert_batch(*make_batch("ur"))
    app_db.batches.start_batch("ur")
    intent = app_db.ledger.begin_task("ur-0", "ur", "runway", run_id="run-1")
    app_db.cancels.cancel(job_ids=["ur-0"])
    chain = ProviderChain({"runway": RunwayGenerator(fake_runway.api_key, base_url=fake_runway.url)}, ["runway"])
    try:
        assert give_up_intents_of_ended_jobs(app_db, chain, is_run_active=lambda run: True) == 0  # its run may still answer
        assert give_up_intents_of_ended_jobs(app_db, chain, is_run_active=lambda run: run != "run-1") == 1
    finally:
        chain.close()
    [task] = app_db.ledger.tasks_for_batch("ur")
    assert task.id == intent and task.possibly_orphaned


def test_clips_that_arrived_while_others_generate_get_one_clips_run_at_a_time(app_db):
    # clip-first (issue 15 point 6): the arrived clip is normalized and published before the last one
    _generating(app_db, "cf", n_jobs=3, complete=False)
    app_db.completions.record_completion(provider="fal", task_id="cf-r0", status="succeeded", source="webhook")
    runs: dict[str, str] = {}
    running: set[str] = set()
    deadlines = Deadlines(clip_first_grace=timedelta(seconds=10))

    def tick(now):
        return watch_processing(app_db, [app_db.batches.get_batch("cf")], runs.get, deadlines, now=now,
                                clips_running=lambda batch_id: batch_id in running)

    assert tick(utcnow()).clip_requests == []  # within the grace: its siblings may come with it
    later = utcnow() + timedelta(seconds=11)
    [first] = tick(later).clip_requests
    assert first.run_key.startswith("clips-cf-") and tick(later).requests == []  # no compose: not ready
    runs[first.run_key] = RUN_ACTIVE
    running.add("cf")
    assert tick(later).clip_requests == []  # the same state: its run is on its way
    app_db.completions.record_completion(provider="fal", task_id="cf-r1", status="succeeded", source="webhook")
    assert tick(later + timedelta(seconds=11)).clip_requests == []  # a new state, but one run at a time
    running.clear()
    [second] = tick(later + timedelta(seconds=11)).clip_requests
    assert second.run_key != first.run_key
    app_db.batches.complete_job("cf-0", "file:///cf-0.mp4", None)  # what the clips runs wrote
    app_db.batches.complete_job("cf-1", "file:///cf-1.mp4", None)
    assert tick(later + timedelta(seconds=30)).clip_requests == []  # nothing left to normalize
    app_db.completions.record_completion(provider="fal", task_id="cf-r2", status="succeeded", source="webhook")
    report = tick(later + timedelta(seconds=60))
    assert report.clip_requests == [] and len(report.requests) == 1  # all here: the compose run


def test_without_clip_first_the_watchdog_requests_no_clips_run(app_db):
    _generating(app_db, "nocf", n_jobs=2, complete=False)
    app_db.completions.record_completion(provider="fal", task_id="nocf-r0", status="succeeded", source="webhook")
    report = watch_processing(app_db, [app_db.batches.get_batch("nocf")], lambda key: None, Deadlines(),
                              now=utcnow() + timedelta(minutes=1))
    assert report.clip_requests == [] and report.requests == [] and report.waiting == 1
