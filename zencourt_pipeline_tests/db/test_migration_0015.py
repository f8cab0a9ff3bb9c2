"""Migration 0015 (issue 15 point 2): an output's `source_resolution`, the size of the clips it was
made from; down (the column goes, the outputs stay) and up again (rows from before have none)."""

from __future__ import annotations

import sqlalchemy as sa

from zencourt_pipeline.db.migrate import current_revision, downgrade, head_revision
from zencourt_pipeline.db.outputs import OutputRow, OutputStatus
from zencourt_pipeline.db.records import BatchStatus
from zencourt_pipeline.domain import OutputShape, OutputSpec
from zencourt_pipeline_tests.conftest import make_batch


def _columns(db) -> set[str]:
    return {column["name"] for column in sa.inspect(db.db.engine).get_columns("video_gen_outputs")}


def test_migration_0015_downgrades_and_upgrades_again(app_db):
    app_db.batches.insert_batch(*make_batch("m15"))
    rows = [
        OutputRow(OutputSpec(shape=OutputShape.LANDSCAPE), OutputStatus.COMPLETED, primary=True,
                  video_uri="file:///s/m15.mp4", source_resolution="1280x720"),
        OutputRow(OutputSpec(shape=OutputShape.SQUARE), OutputStatus.FAILED, error="text does not fit"),
    ]  # fmt: skip
    assert app_db.batches.finish_batch("m15", BatchStatus.COMPLETED, video_url="file:///s/m15.mp4", outputs=rows)
    assert [o.source_resolution for o in app_db.outputs.get_outputs("m15")] == ["1280x720", None]
    downgrade(app_db.db.engine, "0014")
    assert "source_resolution" not in _columns(app_db) and current_revision(app_db.db.engine) == "0014"
    app_db.db.upgrade()
    assert current_revision(app_db.db.engine) == head_revision() and "source_resolution" in _columns(app_db)
    stored = app_db.outputs.get_outputs("m15")
    assert [(o.shape, o.video_url, o.source_resolution) for o in stored] == [
        (OutputShape.LANDSCAPE, "file:///s/m15.mp4", None), (OutputShape.SQUARE, None, None),
    ]  # fmt: skip
