"""Custom instructions (issue 14 point 6): added to every job's motion prompt (its own or the
room's default) in the provider request; a stored batch whose instructions or callback URL are
unusable fails INVALID_INPUT at intake, and a prompt too long with them fails its job."""

from __future__ import annotations

import pytest

from zencourt_pipeline.db.records import BatchStatus, JobStatus
from zencourt_pipeline.domain import Orientation, instructions_problem, motion_prompt, prompt_problem
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.frames import ORIENTATION_SIZES
from zencourt_pipeline.net.policy import FetchPolicy
from zencourt_pipeline.pipeline.generation import batch_generation_ratio, build_request
from zencourt_pipeline.pipeline.intake import IntakeStatus, ingest_photos, take_in_batch
from zencourt_pipeline.pipeline.quota import QuotaLimits
from zencourt_pipeline.providers.chain import default_prompt
from zencourt_pipeline.storage.local import LocalStorage
from zencourt_pipeline_tests.conftest import make_batch

INSTRUCTIONS = "Keep the camera low; no people in frame."


def test_the_motion_prompt_carries_the_instructions():
    assert motion_prompt("slow dolly.", INSTRUCTIONS) == f"slow dolly. {INSTRUCTIONS}"
    assert motion_prompt("slow dolly", None) == "slow dolly" == motion_prompt("slow dolly", "  ")
    assert instructions_problem(None) is None and instructions_problem("x" * 500) is None
    assert "at most 500" in instructions_problem("x" * 501) and instructions_problem(" ") == "instructions are blank"
    assert prompt_problem("p" * 500, "i" * 498) is None and "1001 characters" in prompt_problem("p" * 501, "i" * 498)


def test_every_request_of_the_batch_has_the_instructions(sqlite_db, tmp_path):
    batch, jobs = make_batch("in1", instructions=INSTRUCTIONS)
    jobs[0]["prompt"], jobs[1]["prompt"] = "a slow orbit around the island", None
    sqlite_db.batches.insert_batch(batch, jobs)
    stored = sqlite_db.batches.get_batch("in1")
    storage = LocalStorage(tmp_path / "storage")
    first, second = (build_request(stored, job, tmp_path / "p.jpg", storage) for job in sqlite_db.batches.get_jobs("in1"))
    assert first.prompt == f"a slow orbit around the island. {INSTRUCTIONS}"
    assert second.prompt == f"{default_prompt('Room 1')}. {INSTRUCTIONS}"
    plain = sqlite_db.batches.get_jobs("in1")[0]
    without = build_request(stored.__class__(id="x", listing_id="l"), plain, tmp_path / "p.jpg", storage)
    assert without.prompt == "a slow orbit around the island"


def _take_in(db, tmp_path, batch_id, **batch_fields):
    batch, jobs = make_batch(batch_id, **batch_fields)
    db.batches.insert_batch(batch, jobs)
    return take_in_batch(db, LocalStorage(tmp_path / "s"), db.batches.get_batch(batch_id), db.batches.get_jobs(batch_id), tmp_path,
                         FetchPolicy(), quota=QuotaLimits())  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"instructions": "x" * 501}, "instructions have 501 characters (at most 500)"),
        ({"callback_url": "https://10.0.0.7/hook"}, "callback_url: refusing callback URL host '10.0.0.7'"),
        ({"callback_url": "http://crm.example.com/hook"}, "callback_url: plain http is not allowed"),
    ],
    ids=["instructions", "private callback", "http callback"],
)
def test_a_stored_batch_with_unusable_instructions_or_callback_fails_at_intake(sqlite_db, tmp_path, fields, named):
    report = _take_in(sqlite_db, tmp_path, "in2", **fields)
    assert report.status is IntakeStatus.REJECTED and report.error_code is ErrorCode.INVALID_INPUT
    assert named in report.error_message
    assert sqlite_db.batches.get_batch("in2").status == BatchStatus.FAILED


def test_a_prompt_too_long_with_the_instructions_fails_its_job_only(sqlite_db, tmp_path):
    batch, jobs = make_batch("in3", instructions="i" * 400)
    jobs[0]["prompt"], jobs[1]["prompt"] = "p" * 700, None
    sqlite_db.batches.insert_batch(batch, jobs)
    (result,) = ingest_photos(sqlite_db.batches, LocalStorage(tmp_path / "s"), sqlite_db.batches.get_batch("in3"),
                              sqlite_db.batches.get_jobs("in3")[:1], tmp_path, FetchPolicy())  # fmt: skip
    assert result.error_code == ErrorCode.INVALID_INPUT and "1102 characters" in result.error_message
    assert sqlite_db.batches.get_job("in3-0").status == JobStatus.FAILED and not sqlite_db.batches.get_job("in3-1").terminal


@pytest.mark.parametrize(("orientation", "ratio"), [("landscape", "1280:720"), ("vertical", "720:1280")])
def test_the_request_is_generated_at_the_ratio_of_the_batch_frame(sqlite_db, tmp_path, orientation, ratio):
    # every output shape asked for: the clips still come at the orientation's frame, which normalize keeps
    outputs = '[{"shape": "square"}, {"shape": "portrait"}, {"shape": "landscape"}, {"shape": "vertical"}]'
    batch, jobs = make_batch(f"ra-{orientation}", orientation=orientation, outputs=outputs)
    sqlite_db.batches.insert_batch(batch, jobs)
    stored = sqlite_db.batches.get_batch(batch["id"])
    request = build_request(stored, sqlite_db.batches.get_jobs(batch["id"])[0], tmp_path / "p.jpg", LocalStorage(tmp_path / "s"))
    assert batch_generation_ratio(stored) == request.ratio == request.generation_ratio == ratio
    assert request.size == ORIENTATION_SIZES[Orientation(orientation)]
