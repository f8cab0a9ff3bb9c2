"""`zencourt serve`'s canceller, configured only through the environment as in production
(issue 11, defect 1: with keys as EnvVar references it failed outside a run, and the route still
answered 200 while the provider task kept running and was paid)."""

from __future__ import annotations

from zencourt_pipeline.cli import service_canceller
from zencourt_pipeline.config import Settings
from zencourt_pipeline.providers.runway import RunwayGenerator
from zencourt_pipeline_tests.conftest import make_batch
from zencourt_pipeline_tests.fakes.fixtures import fake_runway, make_request, photo  # noqa: F401
from zencourt_pipeline_tests.fakes.runway import RunwayScript


def test_the_service_canceller_stops_the_provider_task_with_keys_from_the_environment(
    monkeypatch, tmp_path, sqlite_db, sqlite_url, fake_runway, photo  # noqa: F811
):
    for name, value in {
        "DATABASE_URL": sqlite_url,
        "ZENCOURT_DATA_DIR": str(tmp_path),
        "GENERATION_PROVIDERS": "runway",
        "RUNWAY_API_KEY": fake_runway.api_key,
        "RUNWAY_API_URL": fake_runway.url,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    fake_runway.scripts.next(RunwayScript(hold=True))
    sqlite_db.insert_batch(*make_batch("cx", n_jobs=1))
    task = RunwayGenerator(fake_runway.api_key, base_url=fake_runway.url).submit(
        make_request(photo, job_id="cx-0", batch_id="cx")
    )
    row = sqlite_db.begin_task("cx-0", "cx", "runway")
    sqlite_db.task_submitted(row, "cx-0", "runway", task.ref.task_id, meta=task.ref.meta)

    canceller = service_canceller(Settings.from_env(), sqlite_db)
    canceller(sqlite_db.cancel(batch_id="cx"), ["cx"])

    assert fake_runway.counts["delete"] == 1
    assert fake_runway.status_of(task.ref.task_id) == "CANCELLED"
    assert [t["status"] for t in sqlite_db.tasks_for_job("cx-0")] == ["canceled"]
