"""Intake's check of a batch's texts (issue 14 point 2): facts, captions and transitions the
template cannot render fail the batch INVALID_INPUT with a message naming the field, before any
download or provider call; good ones go on."""

from __future__ import annotations

import json

import pytest

from zencourt_pipeline.db.records import BatchStatus, JobStatus
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.net.policy import FetchPolicy
from zencourt_pipeline.pipeline.intake import IntakeStatus, take_in_batch
from zencourt_pipeline.pipeline.quota import QuotaLimits
from zencourt_pipeline_tests.conftest import make_batch

FACTS = {"address": "12 Oak Lane", "price": 1250000, "beds": 3, "baths": 2, "sqft": 1850, "agentName": "Jane Doe"}


def _take_in(db, tmp_path, batch_id: str, *, facts=FACTS, template="showcase", title="Home", outputs=None, **job_fields):
    batch, jobs = make_batch(batch_id, template=template, title=title, outputs=outputs,
                             facts=facts if facts is None or isinstance(facts, str) else json.dumps(facts))  # fmt: skip
    for job in jobs:
        job.update({name: None for name in job_fields})
    jobs[0].update(job_fields)
    db.batches.insert_batch(batch, jobs)
    work = tmp_path / batch_id
    work.mkdir()

    class NoStorage:  # a rejected batch downloads nothing
        def __getattr__(self, name):
            raise AssertionError(f"storage.{name} called")

    return take_in_batch(db, NoStorage(), db.batches.get_batch(batch_id), db.batches.get_jobs(batch_id), work, FetchPolicy(),
                         quota=QuotaLimits())  # fmt: skip


REJECTED = [
    ("unknown fact", {"facts": {"bedrooms": 3}}, "facts.bedrooms"),
    ("typed fact", {"facts": {"sqft": "large"}}, "facts.sqft"),
    ("not json", {"facts": "{price"}, "facts"),
    ("unknown field in the title", {"title": "Just listed: {{zip}}"}, "{{zip}}"),
    ("missing value in a caption", {"caption": "{{agent_name}}'s favourite room", "facts": {"price": 1}}, "{{agent_name}}"),
    ("address too long", {"facts": {**FACTS, "address": "WWWWWWWWW " * 19}}, "intro text ({{address}}) does not fit"),
    ("caption too long", {"caption": "W" * 200}, "({{caption}}) does not fit"),
    ("transition", {"transition": "spin"}, "unknown transition 'spin'"),
    # issue 15: the outputs asked for, and each job's focus point
    ("unknown output shape", {"outputs": '[{"shape": "round"}]'}, "outputs.0.shape"),
    ("output size of another shape", {"outputs": '[{"shape": "square", "width": 1920, "height": 1080}]'}, "1080x1080"),
    ("no output", {"outputs": "[]"}, "at least one output"),
    ("focus outside the frame", {"focus_x": 1.5}, "focus_x 1.5 is outside 0..1"),
    ("a title too wide for a square output", {"title": "W" * 40, "template": "default", "outputs": '[{"shape": "square"}]'},
     "1080x1080 frame"),
]


@pytest.mark.parametrize(("change", "named"), [c[1:] for c in REJECTED], ids=[c[0] for c in REJECTED])
def test_texts_that_cannot_render_fail_the_batch_at_intake(sqlite_db, tmp_path, change, named):
    report = _take_in(sqlite_db, tmp_path, "tx", **change)
    assert report.status is IntakeStatus.REJECTED and report.error_code is ErrorCode.INVALID_INPUT
    assert named in report.error_message
    batch = sqlite_db.batches.get_batch("tx")
    assert (batch.status, batch.error_code) == (BatchStatus.FAILED, ErrorCode.INVALID_INPUT)
    assert named in batch.error
    assert {job.status for job in sqlite_db.batches.get_jobs("tx")} == {JobStatus.FAILED}


def test_good_texts_pass_the_check(sqlite_db, tmp_path):
    from zencourt_pipeline.pipeline.intake import validate_batch

    batch, jobs = make_batch("ok", template="showcase", title="{{address}}", facts=json.dumps(FACTS))
    jobs[0].update(caption="{{beds}}-bed kitchen", transition="circleopen")
    jobs[1].update(caption=None, transition=None)
    sqlite_db.batches.insert_batch(batch, jobs)
    validate_batch(sqlite_db.batches.get_batch("ok"), sqlite_db.batches.get_jobs("ok"))  # no BatchRejected
    job = sqlite_db.batches.get_job("ok-0")
    assert (job.caption, job.transition) == ("{{beds}}-bed kitchen", "circleopen")


def test_a_workspace_template_is_resolved_at_intake(sqlite_db, tmp_path):
    from zencourt_pipeline.pipeline.intake import batch_template, validate_batch

    sqlite_db.templates.put_template("ws-1", {"name": "brand-a", "texts": [
        {"role": "intro", "text": "{{address}}", "position": "upper-band"}]})  # fmt: skip
    batch, jobs = make_batch("own", template="brand-a", workspace_id="ws-1", facts=json.dumps(FACTS))
    sqlite_db.batches.insert_batch(batch, jobs)
    template = batch_template(sqlite_db.templates, sqlite_db.batches.get_batch("own"))
    assert template.name == "brand-a"
    validate_batch(sqlite_db.batches.get_batch("own"), sqlite_db.batches.get_jobs("own"), template)
    report = _take_in(sqlite_db, tmp_path, "other", template="brand-a")  # no workspace: not its template
    assert report.status is IntakeStatus.REJECTED and "unknown template 'brand-a'" in report.error_message
