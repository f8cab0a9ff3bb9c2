"""The outputs a batch produced (db/outputs.py, migration 0011) on SQLite and PostgreSQL: written
with the batch's completion, listed in its `batch.completed` webhook, replaced by a re-compose."""

from __future__ import annotations

import json
from dataclasses import replace

import sqlalchemy as sa

from zencourt_pipeline.db.outputs import OutputRow, OutputStatus
from zencourt_pipeline.db.records import BatchEventType, BatchStatus
from zencourt_pipeline.domain import DEFAULT_OUTPUTS, OutputShape, OutputSpec
from zencourt_pipeline_tests.conftest import make_batch


def _rows(template: str = "default") -> list[OutputRow]:
    rows = []
    for i, spec in enumerate(DEFAULT_OUTPUTS):
        uri = f"file:///s/batches/o1/video/listing-{spec.name}-{template}.mp4"
        rows.append(OutputRow(spec, OutputStatus.COMPLETED, primary=i == 0, template=template, video_uri=uri,
                              thumbnail_uri=uri.replace(".mp4", ".jpg"), duration_s=12.5, size_bytes=1000 + i,
                              source_resolution="1280x720"))
    return rows


def test_completion_writes_the_outputs_and_lists_them_in_the_webhook(app_db):
    app_db.batches.insert_batch(*make_batch("o1"))
    rows = _rows()
    assert app_db.batches.finish_batch("o1", BatchStatus.COMPLETED, video_url=rows[0].video_uri, outputs=rows)
    stored = app_db.outputs.get_outputs("o1")
    assert [o.spec for o in stored] == list(DEFAULT_OUTPUTS)
    assert [o.is_primary for o in stored] == [True, False, False, False]
    first = stored[0]
    assert (first.shape, first.status, first.width, first.height, first.branded) == (OutputShape.LANDSCAPE, "completed", 1920, 1080, True)
    assert (first.duration_seconds, first.size_bytes, first.template) == (12.5, 1000, "default")
    body = json.loads(app_db.outbox.rows("o1")[-1].body)
    assert body["event"] == "batch.completed" and body["videoUrl"] == rows[0].video_uri
    assert [(o["shape"], o["width"], o["height"], o["branded"], o["primary"]) for o in body["outputs"]] == [
        ("landscape", 1920, 1080, True, True), ("landscape", 1920, 1080, False, False),
        ("vertical", 1080, 1920, True, False), ("vertical", 1080, 1920, False, False),
    ]  # fmt: skip
    assert body["outputs"][1]["videoUri"] == rows[1].video_uri and body["outputs"][1]["bytes"] == 1001
    # the clips' size each output was made from (migration 0015), stored and in the webhook
    assert [o.source_resolution for o in stored] == ["1280x720"] * 4
    assert [o["sourceResolution"] for o in body["outputs"]] == ["1280x720"] * 4


def test_a_recompose_replaces_the_outputs_without_a_second_webhook(app_db):
    app_db.batches.insert_batch(*make_batch("o1"))
    app_db.batches.finish_batch("o1", BatchStatus.COMPLETED, outputs=_rows())
    square = OutputRow(OutputSpec(shape=OutputShape.SQUARE), OutputStatus.FAILED, error="text does not fit")
    app_db.batches.finish_batch("o1", BatchStatus.COMPLETED, outputs=[*_rows("classic")[:1], square])
    stored = app_db.outputs.get_outputs("o1")
    assert [(o.shape, o.status, o.template) for o in stored] == [
        (OutputShape.LANDSCAPE, OutputStatus.COMPLETED, "classic"), (OutputShape.SQUARE, OutputStatus.FAILED, None),
    ]  # fmt: skip
    assert stored[1].error == "text does not fit" and stored[1].video_url is None
    assert [json.loads(r.body)["event"] for r in app_db.outbox.rows("o1")].count("batch.completed") == 1


def test_a_canceled_batch_gets_no_outputs(app_db):
    app_db.batches.insert_batch(*make_batch("o1"))
    app_db.batches.finish_batch("o1", BatchStatus.CANCELED, error="canceled")
    assert not app_db.batches.finish_batch("o1", BatchStatus.COMPLETED, outputs=_rows())
    assert app_db.outputs.get_outputs("o1") == []


def test_migration_0011_downgrades_and_upgrades_again(app_db):
    from zencourt_pipeline.db.migrate import current_revision, downgrade, head_revision

    batch, jobs = make_batch("m11", outputs='[{"shape": "square"}]')
    for job in jobs:
        job.update(focus_x=0.25, focus_y=0.5)
    app_db.batches.insert_batch(batch, jobs)
    app_db.batches.finish_batch("m11", BatchStatus.COMPLETED, outputs=_rows())
    assert app_db.batches.get_batch("m11").outputs and app_db.batches.get_jobs("m11")[0].focus_x == 0.25
    downgrade(app_db.db.engine, "0010")
    inspector = sa.inspect(app_db.db.engine)
    assert not inspector.has_table("video_gen_outputs")
    assert "outputs" not in {c["name"] for c in inspector.get_columns("video_gen_batch")}
    assert not {"focus_x", "focus_y"} & {c["name"] for c in inspector.get_columns("video_gen_jobs")}
    app_db.db.upgrade()
    assert current_revision(app_db.db.engine) == head_revision() and app_db.outputs.get_outputs("m11") == []  # the head


def test_an_output_published_ahead_of_the_batch_is_its_video_and_an_event(app_db):
    """publish_output (issue 13 point 7): the primary's row and the batch's video_url in one
    transaction with an `output.completed` event; no webhook until the batch completes."""
    app_db.batches.insert_batch(*make_batch("o5"))
    app_db.batches.start_batch("o5")
    rows = _rows()
    assert app_db.outputs.publish_output("o5", rows[0])
    batch = app_db.batches.get_batch("o5")
    assert (batch.status, batch.video_url, batch.thumbnail_url) == (BatchStatus.PROCESSING, rows[0].video_uri, rows[0].thumbnail_uri)
    assert [(o.spec, o.is_primary, o.video_url) for o in app_db.outputs.get_outputs("o5")] == [(rows[0].spec, True, rows[0].video_uri)]
    [event] = [e for e in app_db.events.batch_events("o5") if e.event == BatchEventType.OUTPUT_COMPLETED]
    assert (event.data["primary"], event.data["videoUri"], event.data["width"], event.data["status"]) == (True, rows[0].video_uri, 1920, "completed")
    assert [r.event for r in app_db.outbox.rows("o5")] == []  # the web app's webhook is batch.completed's
    assert app_db.outputs.publish_output("o5", rows[2])  # another output: its row, the batch's video unchanged
    assert app_db.batches.get_batch("o5").video_url == rows[0].video_uri
    assert app_db.batches.finish_batch("o5", BatchStatus.COMPLETED, video_url=rows[0].video_uri, outputs=rows)
    assert [o.spec for o in app_db.outputs.get_outputs("o5")] == list(DEFAULT_OUTPUTS)  # the batch's rows, once each
    events = [e.event for e in app_db.events.batch_events("o5")]
    assert events[-3:] == [BatchEventType.OUTPUT_COMPLETED, BatchEventType.OUTPUT_COMPLETED, BatchEventType.COMPLETED]


def test_a_batch_that_ends_canceled_or_failed_drops_what_was_published_ahead(app_db):
    rows = _rows()
    for batch_id, end in (("o6", "cancel"), ("o7", "fail")):
        app_db.batches.insert_batch(*make_batch(batch_id))
        app_db.batches.start_batch(batch_id)
        assert app_db.outputs.publish_output(batch_id, rows[0])
        if end == "cancel":
            app_db.cancels.cancel(batch_id=batch_id)
        else:
            app_db.batches.finish_batch(batch_id, BatchStatus.FAILED, error="x", error_code="COMPOSITION_FAILED")
        batch = app_db.batches.get_batch(batch_id)
        assert (batch.video_url, batch.thumbnail_url, app_db.outputs.get_outputs(batch_id)) == (None, None, [])
        assert not app_db.outputs.publish_output(batch_id, rows[0])  # an ended batch takes no output
        assert app_db.outputs.get_outputs(batch_id) == []


def test_a_recompose_publishes_its_new_primary_ahead_over_the_completed_batch(app_db):
    """An operator's re-compose of a completed batch (an orientation override: the vertical output
    becomes the primary): its primary is the batch's video as soon as it is published, the old
    primary row stops being primary, and no second webhook is sent."""
    app_db.batches.insert_batch(*make_batch("o8"))
    rows = _rows()
    assert app_db.batches.finish_batch("o8", BatchStatus.COMPLETED, video_url=rows[0].video_uri, outputs=rows)
    vertical = replace(_rows("classic")[2], primary=True)
    assert app_db.outputs.publish_output("o8", vertical)
    batch = app_db.batches.get_batch("o8")
    assert (batch.status, batch.video_url) == (BatchStatus.COMPLETED, vertical.video_uri)
    stored = app_db.outputs.get_outputs("o8")
    assert [(o.spec, o.template) for o in stored if o.is_primary] == [(vertical.spec, "classic")] and len(stored) == 4
    assert [json.loads(r.body)["event"] for r in app_db.outbox.rows("o8")].count("batch.completed") == 1
