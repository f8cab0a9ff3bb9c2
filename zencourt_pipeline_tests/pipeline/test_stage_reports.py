"""The stages own their order (issue 26): each makes its state changes and returns a typed report
(`StrEnum` statuses, `ErrorCode` codes) that its asset only maps."""

from __future__ import annotations

from zencourt_pipeline.db.records import BatchStatus, JobStatus
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.net.policy import FetchPolicy
from zencourt_pipeline.pipeline.clip_checks import PhotoProblemKind, inspect_photo
from zencourt_pipeline.pipeline.intake import IntakeStatus, PhotoOutcome, take_in_batch
from zencourt_pipeline.pipeline.quota import QuotaLimits
from zencourt_pipeline_tests.defs.conftest import insert_batch_with_photos, write_photo


def _take_in(db, storage, tmp_path, batch_id: str, quota: QuotaLimits = QuotaLimits()):
    work = tmp_path / f"work-{batch_id}"
    work.mkdir(exist_ok=True)
    return take_in_batch(db, storage, db.batches.get_batch(batch_id), db.batches.get_jobs(batch_id), work, FetchPolicy(), quota=quota)


def test_photo_problems_carry_their_kind_and_read_as_their_message(tmp_path):
    small = inspect_photo(write_photo(tmp_path / "small.jpg", size=(600, 400)))
    assert [p.kind for p in small.problems] == [PhotoProblemKind.TOO_SMALL] and not small.unusable
    assert small.problems == ["short side 400 px < 640 px"]
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    broken = inspect_photo(tmp_path / "bad.jpg")
    assert [p.kind for p in broken.problems] == [PhotoProblemKind.UNDECODABLE] and broken.unusable
    wide = inspect_photo(write_photo(tmp_path / "wide.jpg", size=(2400, 700)))
    assert [p.kind for p in wide.problems] == [PhotoProblemKind.ODD_ASPECT] and not wide.unusable


def test_intake_takes_the_photos_in_and_starts_the_batch(sqlite_db, storage, tmp_path):
    insert_batch_with_photos(sqlite_db, storage, tmp_path, "in", [None, b"not a photo"])
    report = _take_in(sqlite_db, storage, tmp_path, "in", QuotaLimits(listing_quota=10))
    assert report.status is IntakeStatus.TAKEN_IN and report.error_code is None
    assert [p.status for p in report.photos] == [PhotoOutcome.READY, PhotoOutcome.FAILED]
    assert all(type(p.status) is PhotoOutcome for p in report.photos)
    assert isinstance(report.photos[1].error_code, ErrorCode)
    assert (report.count(PhotoOutcome.READY), report.count(PhotoOutcome.FAILED)) == (1, 1)
    assert [p.job_id for p in report.inspected] == ["in-0"] and report.inspected[0].inspection.passed
    assert [(u.scope, u.used, u.requested, u.quota) for u in report.quota_usage] == [("listing", 0, 2, 10)]
    assert sqlite_db.batches.get_batch("in").status == BatchStatus.PROCESSING
    assert sqlite_db.batches.get_job("in-1").status == JobStatus.FAILED


def test_intake_rejects_a_batch_over_quota_before_any_download(sqlite_db, storage, tmp_path):
    insert_batch_with_photos(sqlite_db, storage, tmp_path, "over", [None, None])
    report = _take_in(sqlite_db, storage, tmp_path, "over", QuotaLimits(listing_quota=1))
    assert report.status is IntakeStatus.REJECTED and report.error_code is ErrorCode.QUOTA_EXCEEDED
    assert report.photos == [] and "quota exceeded" in report.error_message
    batch = sqlite_db.batches.get_batch("over")
    assert (batch.status, batch.error_code) == (BatchStatus.FAILED, ErrorCode.QUOTA_EXCEEDED)
    assert {job.error_code for job in sqlite_db.batches.get_jobs("over")} == {ErrorCode.QUOTA_EXCEEDED}
    assert not any(job.photo_key for job in sqlite_db.batches.get_jobs("over"))


def test_intake_fails_a_batch_without_a_usable_photo(sqlite_db, storage, tmp_path):
    insert_batch_with_photos(sqlite_db, storage, tmp_path, "none", [b"junk", b"more junk"])
    report = _take_in(sqlite_db, storage, tmp_path, "none")
    assert report.status is IntakeStatus.NO_USABLE_PHOTO and report.error_code is ErrorCode.NO_USABLE_PHOTO
    assert [p.status for p in report.photos] == [PhotoOutcome.FAILED, PhotoOutcome.FAILED] and report.inspected == []
    batch = sqlite_db.batches.get_batch("none")
    assert (batch.status, batch.error_code) == (BatchStatus.FAILED, ErrorCode.NO_USABLE_PHOTO)


def test_a_rerun_of_intake_skips_ended_jobs_and_keeps_stored_photos(sqlite_db, storage, tmp_path):
    insert_batch_with_photos(sqlite_db, storage, tmp_path, "again", [None, b"junk"])
    _take_in(sqlite_db, storage, tmp_path, "again")
    report = _take_in(sqlite_db, storage, tmp_path, "again")
    assert report.status is IntakeStatus.TAKEN_IN
    assert [p.status for p in report.photos] == [PhotoOutcome.READY, PhotoOutcome.SKIPPED]


class AcceptingGenerator:
    """Accepts every submission at once (a provider's create), recording which jobs it was sent."""

    def __init__(self, name: str = "runway"):
        self.name, self.calls = name, []

    def submit(self, request):
        from zencourt_pipeline.providers.base import SubmittedTask, TaskRef

        self.calls.append(request.job_id)
        return SubmittedTask(TaskRef(self.name, f"{self.name}-{request.job_id}-{len(self.calls)}"), cost_credits=5.0)

    def close(self) -> None:
        pass


def _generation_stack(db, storage, tmp_path, batch_id: str):
    from zencourt_pipeline.providers.chain import ProviderChain
    from zencourt_pipeline_tests.conftest import make_batch

    db.batches.insert_batch(*make_batch(batch_id, n_jobs=2, listing_id="L"))
    db.batches.start_batch(batch_id)
    for job in db.batches.get_jobs(batch_id):
        storage.put_file(f"photos/{job.id}.jpg", write_photo(tmp_path / f"{job.id}.jpg"), "image/jpeg")
        db.batches.update_job(job.id, photo_key=f"photos/{job.id}.jpg")
    generator = AcceptingGenerator()
    return generator, ProviderChain({"runway": generator}, ["runway"])


def _submit(db, storage, chain, tmp_path, batch_id: str, quota: QuotaLimits = QuotaLimits(), **kwargs):
    from zencourt_pipeline.pipeline.generation import submit_batch

    batch = db.batches.get_batch(batch_id)
    return submit_batch(db, storage, chain, batch, db.batches.get_jobs(batch_id), tmp_path, quota=quota, **kwargs)


def test_generation_submits_each_open_job_once(sqlite_db, storage, tmp_path):
    from zencourt_pipeline.pipeline.generation import SubmissionOutcome, SubmissionStatus

    generator, chain = _generation_stack(sqlite_db, storage, tmp_path, "gen")
    report = _submit(sqlite_db, storage, chain, tmp_path, "gen")
    assert report.status is SubmissionStatus.SUBMITTED and report.regeneration is None and report.error_code is None
    assert [o.status for o in report.outcomes] == [SubmissionOutcome.SUBMITTED] * 2
    assert all(type(o.status) is SubmissionOutcome for o in report.outcomes)
    assert report.count(SubmissionOutcome.SUBMITTED) == 2 and not report.all_completions_recorded
    again = _submit(sqlite_db, storage, chain, tmp_path, "gen")
    assert [o.status for o in again.outcomes] == [SubmissionOutcome.EXISTING] * 2
    assert generator.calls == ["gen-0", "gen-1"]


def _finish_jobs(db, batch_id: str) -> None:
    for task in db.ledger.tasks_for_batch(batch_id):
        db.completions.record_completion(provider=task.provider, task_id=task.task_id, status="succeeded", source="poll",
                             output_url="https://example.com/clip.mp4")
        db.batches.complete_job(task.job_id, f"file:///clips/{task.job_id}.mp4", None)


def test_a_regeneration_resets_the_named_jobs_then_submits_them(sqlite_db, storage, tmp_path):
    from zencourt_pipeline.pipeline.generation import SubmissionOutcome, SubmissionStatus

    generator, chain = _generation_stack(sqlite_db, storage, tmp_path, "regen")
    _submit(sqlite_db, storage, chain, tmp_path, "regen")
    _finish_jobs(sqlite_db, "regen")
    report = _submit(sqlite_db, storage, chain, tmp_path, "regen", regenerate_job_ids=["regen-1"])
    assert report.status is SubmissionStatus.SUBMITTED and report.superseded == 1
    assert [job.id for job in report.regeneration.reset] == ["regen-1"] and report.regeneration.skipped == {}
    assert [o.status for o in report.outcomes] == [SubmissionOutcome.SKIPPED, SubmissionOutcome.SUBMITTED]
    assert generator.calls == ["regen-0", "regen-1", "regen-1"]


def test_a_refused_regeneration_changes_nothing(sqlite_db, storage, tmp_path):
    from zencourt_pipeline.pipeline.generation import SubmissionStatus

    generator, chain = _generation_stack(sqlite_db, storage, tmp_path, "no")
    _submit(sqlite_db, storage, chain, tmp_path, "no")
    _finish_jobs(sqlite_db, "no")
    unknown = _submit(sqlite_db, storage, chain, tmp_path, "no", regenerate_job_ids=["elsewhere-0"])
    assert unknown.status is SubmissionStatus.REFUSED and unknown.error_code is ErrorCode.INVALID_INPUT
    assert unknown.outcomes == [] and "elsewhere-0" in unknown.error_message
    over = _submit(sqlite_db, storage, chain, tmp_path, "no", QuotaLimits(listing_quota=2), regenerate_job_ids=["no-0"])
    assert over.status is SubmissionStatus.REFUSED and over.error_code is ErrorCode.QUOTA_EXCEEDED
    assert generator.calls == ["no-0", "no-1"]
    assert all(job.status == JobStatus.COMPLETED for job in sqlite_db.batches.get_jobs("no"))


def test_normalize_blocks_the_batch_while_a_clip_is_unusable(sqlite_db, storage, tmp_path):
    from zencourt_pipeline.pipeline.normalize import NormalizeOutcome, normalize_batch
    from zencourt_pipeline_tests.conftest import make_batch
    from zencourt_pipeline_tests.fakes.server import sample_mp4

    sqlite_db.batches.insert_batch(*make_batch("nb", n_jobs=1))
    sqlite_db.batches.start_batch("nb")
    storage.put_file("batches/nb/generated/nb-0.mp4", sample_mp4(1280, 720), "video/mp4")
    sqlite_db.batches.update_job("nb-0", raw_clip_key="batches/nb/generated/nb-0.mp4")

    def normalize(name: str):
        work = tmp_path / name
        work.mkdir()
        return normalize_batch(sqlite_db, storage, sqlite_db.batches.get_batch("nb"), sqlite_db.batches.get_jobs("nb"), work)

    first = normalize("first")
    assert [c.status for c in first.clips] == [NormalizeOutcome.COMPLETED] and first.count(NormalizeOutcome.COMPLETED) == 1
    assert first.blocked is None and first.failing == {} and sqlite_db.batches.get_batch("nb").blocked_reason is None
    published = storage.root / "batches/nb/clips/nb-0.mp4"
    kept = published.read_bytes()
    published.unlink()  # the published clip is gone: composition could not use it
    second = normalize("second")
    assert [c.status for c in second.clips] == [NormalizeOutcome.SKIPPED] and list(second.failing) == ["nb-0"]
    assert second.blocked is ErrorCode.CLIP_CHECK_FAILED
    assert sqlite_db.batches.get_batch("nb").blocked_reason == ErrorCode.CLIP_CHECK_FAILED
    published.write_bytes(kept)
    third = normalize("third")
    assert third.blocked is None and sqlite_db.batches.get_batch("nb").blocked_reason is None


def test_composition_reports_how_the_batch_ended(sqlite_db, storage, tmp_path):
    from zencourt_pipeline.pipeline.composition import CompositionOutcome, compose_batch
    from zencourt_pipeline_tests.conftest import make_batch

    sqlite_db.batches.insert_batch(*make_batch("cf", n_jobs=1))
    sqlite_db.batches.fail_job("cf-0", ErrorCode.INVALID_INPUT, "bad photo")
    failed = compose_batch(sqlite_db, storage, sqlite_db.batches.get_batch("cf"), sqlite_db.batches.get_jobs("cf"), tmp_path)
    assert failed.status is CompositionOutcome.FAILED and failed.status.ended_badly
    assert failed.error_code is ErrorCode.ALL_CLIPS_FAILED
    assert sqlite_db.batches.get_batch("cf").error_code == ErrorCode.ALL_CLIPS_FAILED

    sqlite_db.batches.insert_batch(*make_batch("cs", n_jobs=1))
    sqlite_db.batches.complete_job("cs-0", "file:///clips/cs-0.mp4", None)
    skipped = compose_batch(sqlite_db, storage, sqlite_db.batches.get_batch("cs"), sqlite_db.batches.get_jobs("cs"), tmp_path, enabled=False)
    assert skipped.status is CompositionOutcome.SKIPPED and not skipped.status.ended_badly
    assert skipped.error_code is None
    assert sqlite_db.batches.get_batch("cs").status == BatchStatus.COMPLETED
