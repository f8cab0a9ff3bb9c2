"""Live progress from the pipeline's side: the reconciler stores Runway's progress of a running task
and writes a `job.progress` event only when it changes; the stages write `batch.stage`."""

from __future__ import annotations

import time

from zencourt_pipeline.db.records import BatchEventType
from zencourt_pipeline.pipeline.reconcile import reconcile_tasks
from zencourt_pipeline.providers.chain import ProviderChain
from zencourt_pipeline_tests.fakes.fixtures import fake_runway, photo  # noqa: F401
from zencourt_pipeline_tests.fakes.runway import RunwayScript
from zencourt_pipeline_tests.pipeline.test_task_cost import _submitted_task


def _reconcile(db, chain, times: int) -> None:
    for _ in range(times):
        reconcile_tasks(db, chain, webhook_overdue_after={})
        time.sleep(0.01)  # past the (shortened) poll spacing of the task


def test_the_reconciler_reports_each_progress_change_once(app_db, fake_runway, photo):  # noqa: F811
    fake_runway.scripts.next(RunwayScript(hold=True))  # RUNNING at 0.5 until released
    generator, task = _submitted_task(app_db, fake_runway, photo, "pr")
    generator.poll_interval_seconds = 0.001
    chain = ProviderChain({"runway": generator}, ["runway"])
    _reconcile(app_db, chain, 3)
    progress = [e.data for e in app_db.events.batch_events("pr") if e.event == BatchEventType.JOB_PROGRESS]
    assert [(p["jobId"], p["provider"], p["progress"]) for p in progress] == [("pr-0", "runway", 0.5)]
    assert app_db.ledger.tasks_for_job("pr-0")[0].progress == 0.5
    fake_runway.release(task.task_id)
    _reconcile(app_db, chain, 1)
    [completion] = app_db.completions.completions_for_batch("pr")
    assert completion.status == "succeeded"
    assert not app_db.events.record_task_progress(task.id, 0.9)  # finished: no more progress


def test_the_reconciler_follows_a_moving_progress(app_db, fake_runway, photo):  # noqa: F811
    fake_runway.scripts.next(RunwayScript(statuses=["RUNNING", "RUNNING", "RUNNING"]))
    generator, _task = _submitted_task(app_db, fake_runway, photo, "mv")
    generator.poll_interval_seconds = 0.001
    _reconcile(app_db, ProviderChain({"runway": generator}, ["runway"]), 4)
    events = app_db.events.batch_events("mv")
    assert [e.data["progress"] for e in events if e.event == BatchEventType.JOB_PROGRESS] == [0.25, 0.5, 0.75]
    assert [e.event for e in events][:3] == [BatchEventType.CREATED, BatchEventType.PROCESSING, BatchEventType.JOB_PROCESSING]


def test_normalizing_composing_and_uploading_write_their_stage(sqlite_db, tmp_path):
    from zencourt_pipeline.pipeline.composition import compose_batch
    from zencourt_pipeline.pipeline.normalize import normalize_outputs
    from zencourt_pipeline.storage.local import LocalStorage
    from zencourt_pipeline_tests.conftest import make_batch
    from zencourt_pipeline_tests.fakes.server import sample_mp4

    storage = LocalStorage(tmp_path / "storage")
    sqlite_db.batches.insert_batch(*make_batch("st", n_jobs=1))
    sqlite_db.batches.start_batch("st")
    storage.put_file("batches/st/generated/st-0.mp4", sample_mp4(1280, 720), "video/mp4")
    sqlite_db.batches.update_job("st-0", raw_clip_key="batches/st/generated/st-0.mp4")
    work = tmp_path / "work"
    work.mkdir()
    normalize_outputs(sqlite_db, storage, sqlite_db.batches.get_batch("st"), sqlite_db.batches.get_jobs("st"), work)
    report = compose_batch(sqlite_db, storage, sqlite_db.batches.get_batch("st"), sqlite_db.batches.get_jobs("st"), work)
    assert report.status == "completed"
    events = sqlite_db.events.batch_events("st")
    assert [(e.data["stage"], e.data.get("clips")) for e in events if e.event == BatchEventType.STAGE] == [
        ("normalizing", 1), ("composing", 1), ("uploading", None),
    ]  # fmt: skip
    # each output is published as soon as it is rendered (the default four, the primary first), then the batch
    kinds = [e.event for e in events]
    assert kinds[-7:] == [BatchEventType.STAGE, BatchEventType.STAGE, *[BatchEventType.OUTPUT_COMPLETED] * 4, BatchEventType.COMPLETED]
    assert events[-1].data["videoUri"] == report.video_uri
    # The timeline it was rendered from is stored next to it, naming the stored normalized clip.
    from zencourt_pipeline.media.timeline.model import Timeline

    timeline_key = report.video_key.removesuffix(".mp4") + ".timeline.json"
    timeline = Timeline.from_json(storage.get_file(timeline_key, tmp_path / "t.json").read_text(encoding="utf-8"))
    assert [c.source for c in timeline.clips] == [sqlite_db.batches.get_job("st-0").video_url]
    assert abs(timeline.duration_s - report.planned_duration_s) < 1e-6
    # ... with its SRT and WebVTT sidecars, one cue per timed text of the timeline
    import srt
    import webvtt

    stem = report.video_key.removesuffix(".mp4")
    subs = list(srt.parse(storage.get_file(stem + ".srt", tmp_path / "t.srt").read_text(encoding="utf-8")))
    vtt = webvtt.read(str(storage.get_file(stem + ".vtt", tmp_path / "t.vtt")))
    assert [s.content for s in subs] == [c.text for c in vtt.captions] == [t.text for t in timeline.texts] == ["Room 0"]
