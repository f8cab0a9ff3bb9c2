"""Stage results become metadata tables: every field a column but the stage's local files and nested inspections."""

from __future__ import annotations

from pathlib import Path

from zencourt_pipeline.defs.assets.common import table
from zencourt_pipeline.pipeline.clip_checks import PhotoInspection
from zencourt_pipeline.pipeline.intake import PhotoResult
from zencourt_pipeline.pipeline.normalize import ClipResult


def test_local_files_and_inspections_are_not_columns():
    clip = ClipResult("j-0", "Kitchen", "completed", 5.0, 1234, "batches/b/clips/j-0.mp4",
                      clip_path=Path("/tmp/j-0.clip.mp4"), thumbnail_path=Path("/tmp/j-0.thumb.jpg"))
    columns = [c.name for c in table([clip]).schema.columns]
    assert columns == ["job_id", "room_name", "status", "duration_s", "size_bytes", "clip_key", "error_code", "error_message"]
    photo = PhotoResult("j-0", "Kitchen", "ready", "batches/b/photos/j-0.jpg", photo_path=Path("/tmp/j-0.jpg"),
                        inspection=PhotoInspection(width=1920, height=1080))
    record = table([photo]).records[0].data
    assert "photo_path" not in record and "inspection" not in record and record["photo_key"] == "batches/b/photos/j-0.jpg"
