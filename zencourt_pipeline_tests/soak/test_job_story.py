"""The soak's story of a job whose outcome breaks an invariant: readable on SQLite and PostgreSQL,
and it shows a completion by task id even when it was never linked to its job."""

from __future__ import annotations

import types

import sqlalchemy as sa

from zencourt_pipeline_tests.conftest import make_batch
from zencourt_pipeline_tests.soak.invariants import job_story


def test_the_story_lists_the_ledger_an_unlinked_completion_and_the_fake_task(app_db):
    app_db.batches.insert_batch(*make_batch("st"))
    app_db.batches.start_batch("st")
    row = app_db.ledger.begin_task("st-0", "st", "fal")
    app_db.completions.record_completion(provider="fal", task_id="r-st", status="succeeded", source="webhook")
    with app_db.db.engine.begin() as conn:  # the create's answer persisted without seeing it (the race)
        conn.execute(sa.text("UPDATE generation_tasks SET task_id = 'r-st', status = 'submitted' WHERE id = :id"),
                     {"id": row})
    ctx = types.SimpleNamespace(topo=types.SimpleNamespace(db=app_db))
    fake = [{"job": "st-0", "provider": "fal", "id": "r-st", "final": "succeed"}, {"job": "other", "id": "x"}]
    story = job_story(ctx, app_db.batches.get_job("st-0"), app_db.batches.get_batch("st"), fake)
    assert story[1].startswith("task fal r-st submitted submitted +") and "downloads=0" in story[1]
    assert story[2].startswith("completion fal r-st succeeded by webhook at +")
    assert story[3:] == ["fake fal r-st final=succeed"]
