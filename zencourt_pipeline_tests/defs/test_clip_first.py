"""Clip-first (issue 15 point 6): a clips run normalizes and publishes the clips that arrived
while another is still generating; the compose run at the end composes them all."""

from __future__ import annotations

import json

import dagster as dg
import sqlalchemy as sa

from zencourt_pipeline.defs.assets import pipeline_assets
from zencourt_pipeline.pipeline.actions import STAGE_TAG
from zencourt_pipeline.pipeline.liveness import CLIPS_STAGE
from zencourt_pipeline_tests.defs.conftest import insert_batch_with_photos

CLIPS = ["generated_clips", "normalized_clips"]
COMPOSE = [*CLIPS, "composed_video"]


def _run(selection, instance, resources, **tags):
    return dg.materialize(pipeline_assets, selection=selection, partition_key="cf", instance=instance,
                          resources=resources, tags=tags or None)


def _still_generating(db, job_id: str) -> list:
    """Job `job_id` back to before its clip arrived (no task answer, no clip), as the ledger had it."""
    with db.db.engine.begin() as conn:
        rows = conn.execute(sa.text("SELECT * FROM generation_tasks WHERE job_id = :j"), {"j": job_id}).mappings().all()
        conn.execute(sa.text("DELETE FROM generation_completions WHERE job_id = :j"), {"j": job_id})
        conn.execute(sa.text("DELETE FROM generation_tasks WHERE job_id = :j"), {"j": job_id})
        conn.execute(sa.text("UPDATE video_gen_jobs SET raw_clip_key = NULL WHERE id = :j"), {"j": job_id})
    return [dict(row) for row in rows]


def _arrives(db, rows: list) -> None:
    with db.db.engine.begin() as conn:
        for row in rows:
            conn.execute(sa.insert(sa.table("generation_tasks", *[sa.column(k) for k in row])).values(**row))


def test_a_clips_run_publishes_the_arrived_clip_and_the_compose_run_the_video(instance, resources, tmp_path):
    db, storage = resources["app_db"].get(), resources["storage"].get()
    insert_batch_with_photos(db, storage, tmp_path, "cf", [None, None])
    instance.add_dynamic_partitions("batches", ["cf"])
    assert _run(["listing_photos", "clip_tasks"], instance, resources).success
    raw_key = db.batches.get_job("cf-1").raw_clip_key
    task_rows = _still_generating(db, "cf-1")

    compose = _run(COMPOSE, instance, resources)  # a compose run never composes with a clip missing
    assert compose.success and not compose.get_asset_materialization_events()
    assert db.batches.get_job("cf-0").status == "processing"

    clips = _run(CLIPS, instance, resources, **{STAGE_TAG: CLIPS_STAGE})
    assert clips.success
    [collected] = [e.materialization for e in clips.get_asset_materialization_events()
                   if e.asset_key.path == ["generated_clips"]]
    assert collected.metadata["clips_in_flight"].value == 1
    first, second = db.batches.get_job("cf-0"), db.batches.get_job("cf-1")
    assert first.status == "completed" and storage.exists(storage.key_from_uri(first.video_url))
    assert second.status == "processing" and second.video_url is None
    events = [json.loads(row.body) for row in db.outbox.rows("cf")]
    assert [(e["event"], e.get("jobId")) for e in events] == [("clip.completed", "cf-0")]  # published first
    assert db.batches.get_batch("cf").status == "processing"

    _arrives(db, task_rows)  # the last clip arrives
    db.batches.update_job("cf-1", raw_clip_key=raw_key)
    final = _run(COMPOSE, instance, resources)
    assert final.success
    [normalized] = [e.materialization for e in final.get_asset_materialization_events()
                    if e.asset_key.path == ["normalized_clips"]]
    assert normalized.metadata["clips_completed"].value == 1  # only the last clip was left to normalize
    batch = db.batches.get_batch("cf")
    assert batch.status == "completed"
    assert [e.event for e in db.outbox.rows("cf")].count("clip.completed") == 2
