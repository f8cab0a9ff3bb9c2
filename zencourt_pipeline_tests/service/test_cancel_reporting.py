"""A cancel that fails says so (issue 25, point 4), configured the way `zencourt serve` is: keys
from the environment, the canceller from the production builder (`cli.service_canceller`), a fake
Runway over a real socket whose DELETE fails.

The answer names the task that is not stopped; the ledger keeps it live; the reconciler asks
Runway again each tick until Runway confirms, and only then is the task `canceled`."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from zencourt_pipeline.cli import service_canceller
from zencourt_pipeline.config import Settings
from zencourt_pipeline.defs.resources import build_resources
from zencourt_pipeline.pipeline.reconcile import reconcile_tasks
from zencourt_pipeline.providers.runway import RunwayGenerator
from zencourt_pipeline.service.app import create_app
from zencourt_pipeline.storage.local import LocalStorage
from zencourt_pipeline_tests.conftest import make_batch
from zencourt_pipeline_tests.fakes.fixtures import fake_runway, make_request, photo  # noqa: F401
from zencourt_pipeline_tests.fakes.runway import RunwayScript

API_KEY = "svc-key-cancel-reporting-0123456789abcdef"


def test_a_failed_provider_cancel_is_reported_and_retried_until_confirmed(
    monkeypatch, tmp_path, sqlite_db, sqlite_url, fake_runway, photo  # noqa: F811
):
    for name, value in {
        "DATABASE_URL": sqlite_url,
        "ZENCOURT_DATA_DIR": str(tmp_path),
        "GENERATION_PROVIDERS": "runway",
        "RUNWAY_API_KEY": fake_runway.api_key,
        "RUNWAY_API_URL": fake_runway.url,
        "VIDEO_SERVER_API_KEY": API_KEY,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    settings = Settings.from_env()

    fake_runway.scripts.next(RunwayScript(hold=True))  # a long task, still running when canceled
    sqlite_db.batches.insert_batch(*make_batch("cr", n_jobs=2))
    task = RunwayGenerator(fake_runway.api_key, base_url=fake_runway.url).submit(
        make_request(photo, job_id="cr-0", batch_id="cr")
    )
    row = sqlite_db.ledger.begin_task("cr-0", "cr", "runway")
    sqlite_db.ledger.task_submitted(row, "cr-0", "runway", task.ref.task_id, meta=task.ref.meta)

    fake_runway.delete_faults = [503] * 50  # Runway's DELETE fails, whatever the client retries
    app = create_app(
        settings, db=sqlite_db, storage=LocalStorage(tmp_path / "storage"),
        canceller=service_canceller(settings, sqlite_db),
    )
    with TestClient(app) as client:
        answer = client.post("/video/cancel", json={"batchId": "cr"}, headers={"x-api-key": API_KEY})

    assert answer.status_code == 200
    body = answer.json()
    assert body["canceled"] == 2 and body["batchIds"] == ["cr"]
    assert body["providerTasksStopped"] == 0
    (pending,) = body["providerTasksPending"]
    assert pending["jobId"] == "cr-0" and pending["taskId"] == task.ref.task_id
    assert pending["provider"] == "runway" and pending["errorCode"] == "RUNWAY_CANCEL_FAILED"
    deletes_by_route = fake_runway.counts["delete"]
    assert deletes_by_route >= 1  # the fault hit: Runway was asked and refused
    assert fake_runway.status_of(task.ref.task_id) != "CANCELLED"
    assert [t.status for t in sqlite_db.ledger.tasks_for_job("cr-0")] == ["submitted"]

    chain = build_resources(settings, env_refs=False)["generators"].chain(sqlite_db)
    try:
        # still failing: the reconciler asks again and the task stays live
        report = reconcile_tasks(sqlite_db, chain, webhook_overdue_after={})
        assert report.canceled == 0 and fake_runway.counts["delete"] > deletes_by_route
        assert [t.status for t in sqlite_db.ledger.tasks_for_job("cr-0")] == ["submitted"]
        # Runway answers again: the next tick's cancel is confirmed
        fake_runway.delete_faults = []
        report = reconcile_tasks(sqlite_db, chain, webhook_overdue_after={"runway": timedelta(hours=1)})
    finally:
        chain.close()
    assert report.canceled == 1
    assert fake_runway.status_of(task.ref.task_id) == "CANCELLED"
    assert [t.status for t in sqlite_db.ledger.tasks_for_job("cr-0")] == ["canceled"]
    assert sqlite_db.liveness.live_tasks_of_ended_jobs() == []
