"""Each output published as soon as it is rendered and checked (pipeline/publishing.py, issue 13
point 7): the primary output is the batch's video, stored and announced (`output.completed`), before
the other outputs are rendered; `batch.completed` stays last, with every output. An output that
fails a platform profile is not advertised ahead of the batch; a batch canceled meanwhile keeps
nothing published."""

from __future__ import annotations

import json

import pytest

from zencourt_pipeline.db.records import BatchEventType, BatchStatus
from zencourt_pipeline.domain import OutputShape, OutputSpec, outputs_json
from zencourt_pipeline.media.validate import Problem, Rule
from zencourt_pipeline.pipeline.composition import compose_batch
from zencourt_pipeline.pipeline.normalize import normalize_outputs
from zencourt_pipeline.storage.local import LocalStorage
from zencourt_pipeline_tests.conftest import make_batch
from zencourt_pipeline_tests.fakes.server import sample_mp4

LANDSCAPE = OutputSpec(shape=OutputShape.LANDSCAPE, width=1280, height=720)
VERTICAL = OutputSpec(shape=OutputShape.VERTICAL, width=720, height=1280)


@pytest.fixture
def batch(sqlite_db, tmp_path):
    """A batch of one normalized clip asking for a 720p landscape (the primary) and a vertical output."""
    storage = LocalStorage(tmp_path / "storage")
    sqlite_db.batches.insert_batch(*make_batch("pub", n_jobs=1, outputs=outputs_json([LANDSCAPE, VERTICAL])))
    sqlite_db.batches.start_batch("pub")
    storage.put_file("batches/pub/generated/pub-0.mp4", sample_mp4(1280, 720), "video/mp4")
    sqlite_db.batches.update_job("pub-0", raw_clip_key="batches/pub/generated/pub-0.mp4")
    work = tmp_path / "work"
    work.mkdir()
    normalize_outputs(sqlite_db, storage, sqlite_db.batches.get_batch("pub"), sqlite_db.batches.get_jobs("pub"), work)
    return storage, work


def _compose(db, storage, work):
    return compose_batch(db, storage, db.batches.get_batch("pub"), db.batches.get_jobs("pub"), work)


def _spy_renders(monkeypatch, db, storage, *, before=None):
    """Record, as each output's render starts, what the batch advertises then."""
    from zencourt_pipeline.media import compose

    seen = []
    real = compose.render_timeline

    def render(timeline, *args, **kwargs):
        batch = db.batches.get_batch("pub")
        events = [e for e in db.events.batch_events("pub") if e.event == BatchEventType.OUTPUT_COMPLETED]
        rows = db.outputs.get_outputs("pub")
        stored = [storage.exists(storage.key_from_uri(r.video_url)) for r in rows]
        seen.append(((timeline.width, timeline.height), batch.status, batch.video_url, [e.data for e in events], rows, stored))
        if before is not None:
            before(len(seen))
        return real(timeline, *args, **kwargs)

    monkeypatch.setattr(compose, "render_timeline", render)
    return seen


def test_the_primary_output_is_published_before_the_others_are_rendered(sqlite_db, batch, monkeypatch):
    storage, work = batch
    seen = _spy_renders(monkeypatch, sqlite_db, storage)
    report = _compose(sqlite_db, storage, work)
    assert report.status == "completed", report.error
    assert [s[0] for s in seen] == [(1280, 720), (720, 1280)]
    assert seen[0][2] is None  # nothing advertised before the primary is rendered
    size, status, video_url, events, rows, stored = seen[1]  # as the vertical output's render starts
    assert status == BatchStatus.PROCESSING and video_url == report.video_uri
    assert [(r.spec, r.is_primary, r.video_url, r.status) for r in rows] == [(LANDSCAPE, True, report.video_uri, "completed")]
    assert stored == [True]  # the object before the row
    [event] = events
    assert (event["primary"], event["videoUri"], event["thumbnailUri"]) == (True, report.video_uri, report.thumbnail_uri)
    assert (event["shape"], event["width"], event["height"], event["branded"]) == ("landscape", 1280, 720, True)
    # then the vertical output, and batch.completed last, with every output, told once
    events = sqlite_db.events.batch_events("pub")
    kinds = [e.event for e in events]
    assert kinds[-3:] == [BatchEventType.OUTPUT_COMPLETED, BatchEventType.OUTPUT_COMPLETED, BatchEventType.COMPLETED]
    first = kinds.index(BatchEventType.OUTPUT_COMPLETED)
    assert (kinds[first - 1], events[first - 1].data["stage"]) == (BatchEventType.STAGE, "uploading")
    assert [e.data["width"] for e in events if e.event == BatchEventType.OUTPUT_COMPLETED] == [1280, 720]
    assert [o["width"] for o in events[-1].data["outputs"]] == [1280, 720]
    webhooks = [json.loads(r.body)["event"] for r in sqlite_db.outbox.rows("pub")]
    assert webhooks.count("batch.completed") == 1 and "output.completed" not in webhooks
    rows = sqlite_db.outputs.get_outputs("pub")
    assert [(r.spec, r.is_primary) for r in rows] == [(LANDSCAPE, True), (VERTICAL, False)]
    assert all(not any(r.platforms.values()) for r in report.outputs)  # platform_ready passes


def test_an_output_failing_its_platforms_is_not_advertised_ahead_of_the_batch(sqlite_db, batch, monkeypatch):
    """The primary fails a profile: it is not published while the vertical output renders; it is
    published with the batch at its end (as before early publishing), and the blocking
    platform_ready check fails on it. The vertical one, passing, is published as it is rendered."""
    import dagster as dg

    from zencourt_pipeline.defs.assets.composition import _platform_check
    from zencourt_pipeline.pipeline import renditions

    storage, work = batch
    real = renditions.validate_targets

    def validate(path, destinations):
        found = real(path, destinations)
        return {**found, "house": [Problem(Rule.LOUDNESS, "-20.5 LUFS")]} if "1280x720" in str(path.parent) else found

    monkeypatch.setattr(renditions, "validate_targets", validate)
    seen = _spy_renders(monkeypatch, sqlite_db, storage)
    report = _compose(sqlite_db, storage, work)
    assert report.status == "completed", report.error
    _, status, video_url, events, rows, _ = seen[1]
    assert (status, video_url, events, rows) == (BatchStatus.PROCESSING, None, [], [])  # not advertised
    published = [e.data for e in sqlite_db.events.batch_events("pub") if e.event == BatchEventType.OUTPUT_COMPLETED]
    assert [(e["width"], e["primary"]) for e in published] == [(720, False)]
    assert sqlite_db.batches.get_batch("pub").video_url == report.video_uri  # with batch.completed
    check = _platform_check(sqlite_db.batches.get_batch("pub"), report)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "landscape-1280x720-branded house: loudness: -20.5 LUFS" in check.description


def test_a_batch_canceled_after_its_primary_was_published_keeps_nothing_published(sqlite_db, batch, monkeypatch):
    storage, work = batch

    def cancel(renders: int) -> None:
        if renders == 2:  # the primary is published, the vertical output about to render
            sqlite_db.cancels.cancel(batch_id="pub")

    seen = _spy_renders(monkeypatch, sqlite_db, storage, before=cancel)
    report = _compose(sqlite_db, storage, work)
    assert report.status == "canceled"
    primary_uri = seen[1][2]
    assert primary_uri is not None and not storage.exists(storage.key_from_uri(primary_uri))  # taken back down
    batch = sqlite_db.batches.get_batch("pub")
    assert (batch.status, batch.video_url, sqlite_db.outputs.get_outputs("pub")) == (BatchStatus.CANCELED, None, [])
    assert storage.list_keys("batches/pub/video/") == []
    kinds = [e.event for e in sqlite_db.events.batch_events("pub")]
    assert kinds.count(BatchEventType.OUTPUT_COMPLETED) == 1 and BatchEventType.COMPLETED not in kinds
    assert kinds[-1] == BatchEventType.CANCELED
