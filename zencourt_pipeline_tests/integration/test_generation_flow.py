"""Issue 3's acceptance: real providers' contracts (fakes over HTTP), fal webhooks through our
HTTP service, the reconciler and completions sensors, and the runs they request."""

from __future__ import annotations

import dagster as dg

from zencourt_pipeline.media.ffmpeg import probe
from zencourt_pipeline_tests.fakes.fal import FalScript
from zencourt_pipeline_tests.fakes.runway import RunwayScript

INTAKE = ["listing_photos", "clip_tasks"]


def _prompts(stack, batch_id, n):
    jobs = stack.insert_batch(batch_id, n)
    prompts = [f"prompt for {job['id']}" for job in jobs]
    for job, prompt in zip(jobs, prompts, strict=True):
        stack.db.batches.update_job(job["id"], prompt=prompt)
    return jobs, prompts


def test_runway_first_internal_failures_fall_back_to_fal_and_safety_fails_its_job(make_stack):
    stack = make_stack("runway,fal")
    jobs, prompts = _prompts(stack, "flow-6", 6)
    for prompt in prompts[:2]:
        stack.runway.scripts.for_prompt(prompt, RunwayScript(outcome="fail", failure_code="INTERNAL.BAD_OUTPUT.CODE01"))
    stack.runway.scripts.for_prompt(prompts[2], RunwayScript(outcome="fail", failure_code="SAFETY.INPUT.IMAGE", failure="input image flagged"))

    assert stack.drive("flow-6") == "completed"

    final = {job.id: job for job in stack.db.batches.get_jobs("flow-6")}
    assert [final[j["id"]].provider for j in jobs[:2]] == ["fal", "fal"]
    assert all(final[j["id"]].status == "completed" for j in jobs[:2] + jobs[3:])
    assert [final[j["id"]].provider for j in jobs[3:]] == ["runway"] * 3
    safety = final[jobs[2]["id"]]
    assert (safety.status, safety.error_code) == ("failed", "RUNWAY_SAFETY_REJECTED")
    assert "flagged" in safety.error_message
    # paid work: one Runway create per job, one fal submit per fallback, nothing twice
    assert stack.runway.counts["created"] == 6
    assert stack.fal.counts["queued"] == 2
    # fal's answers arrived as signed webhooks through our service
    sources = {c.provider: c.source for c in stack.db.completions.completions_for_batch("flow-6")}
    assert sources == {"runway": "poll", "fal": "webhook"}
    batch = stack.db.batches.get_batch("flow-6")
    storage = stack.defs.resources["storage"].get()
    info = probe(storage.path(storage.key_from_uri(batch.video_url)))
    assert (info.codec, info.width, info.height) == ("h264", 1280, 720)  # the one output it asks for
    assert abs(info.duration - (5 * 2 - 4 * 0.5)) < 0.2  # five 2 s clips, four crossfades
    # A compose run that found a fallback task still generating skipped composition; no run failed.
    runs = stack.instance.get_runs()
    assert runs and {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}
    composed = [r for r in runs if r.job_name == "batch_compose_job"]
    assert len(composed) >= 1


def test_duplicate_webhooks_are_recorded_once(make_stack):
    stack = make_stack("fal")
    stack.fal.scripts.default = FalScript(webhook_copies=3)
    stack.insert_batch("dup", 2)
    assert stack.drive("dup") == "completed"
    completions = stack.db.completions.completions_for_batch("dup")
    assert len(completions) == 2 and {c.source for c in completions} == {"webhook"}
    assert stack.fal.counts["webhook_sent"] >= 6
    events = [row.event for row in stack.db.outbox.rows("dup")]
    assert events.count("batch.completed") == 1 and events.count("clip.completed") == 2


def test_a_lost_webhook_still_completes_its_job(make_stack):
    stack = make_stack("fal", fal_overdue_seconds=0.5)
    stack.fal.scripts.default = FalScript(webhook="lost")
    stack.insert_batch("lost", 2)
    assert stack.drive("lost") == "completed"
    assert {c.source for c in stack.db.completions.completions_for_batch("lost")} == {"poll"}
    assert stack.fal.counts["webhook_sent"] == 0


def test_rematerializing_a_partition_sends_no_new_create(make_stack):
    stack = make_stack("runway,fal")
    stack.insert_batch("again", 3)
    assert stack.run(INTAKE, "again").success
    assert stack.runway.counts["created"] == 3
    for _ in range(2):
        assert stack.run(INTAKE, "again").success
    assert stack.runway.counts["create"] == 3 and stack.fal.counts["submit"] == 0


def test_cancel_mid_generation_cancels_provider_tasks_and_publishes_nothing(make_stack):
    stack = make_stack("runway,fal")
    stack.runway.scripts.default = RunwayScript(hold=True)
    stack.insert_batch("cancel-me", 3)
    assert stack.run(INTAKE, "cancel-me").success
    assert stack.runway.counts["created"] == 3

    answer = stack.post("/video/cancel", {"batchId": "cancel-me"})
    assert answer.status_code == 200 and answer.json()["canceled"] == 3
    assert stack.runway.counts["delete"] == 3  # the in-flight tasks were canceled at the provider
    assert stack.drive("cancel-me", timeout=10) == "canceled"
    batch = stack.db.batches.get_batch("cancel-me")
    assert batch.video_url is None
    storage = stack.defs.resources["storage"].get()
    assert not list((storage.root / "batches" / "cancel-me").glob("video/*"))
    assert stack.runway.counts["create"] == 3
