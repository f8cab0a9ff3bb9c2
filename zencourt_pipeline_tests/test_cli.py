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
    sqlite_db.batches.insert_batch(*make_batch("cx", n_jobs=1))
    task = RunwayGenerator(fake_runway.api_key, base_url=fake_runway.url).submit(
        make_request(photo, job_id="cx-0", batch_id="cx")
    )
    row = sqlite_db.ledger.begin_task("cx-0", "cx", "runway")
    sqlite_db.ledger.task_submitted(row, "cx-0", "runway", task.ref.task_id, meta=task.ref.meta)

    canceller = service_canceller(Settings.from_env(), sqlite_db)
    canceller(sqlite_db.cancels.cancel(batch_id="cx"), ["cx"])

    assert fake_runway.counts["delete"] == 1
    assert fake_runway.status_of(task.ref.task_id) == "CANCELLED"
    assert [t.status for t in sqlite_db.ledger.tasks_for_job("cx-0")] == ["canceled"]


# -- zencourt webhooks dead / requeue, zencourt spend ------------------------------------------
import json  # noqa: E402
import logging  # noqa: E402

import pytest  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from zencourt_pipeline.cli import main  # noqa: E402
from zencourt_pipeline.db.schema import webhook_outbox  # noqa: E402
from zencourt_pipeline.observability import logging as obs_logging  # noqa: E402


@pytest.fixture
def cli_env(monkeypatch, tmp_path, app_db):
    monkeypatch.setenv("DATABASE_URL", app_db.db.url)
    monkeypatch.setenv("ZENCOURT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ZENCOURT_LOG_FORMAT", "json")
    for name in ("VERCEL_API_URL", "VERCEL_WEBHOOK_SECRET", "DAGSTER_HOME"):
        monkeypatch.delenv(name, raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield app_db
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    obs_logging._role = None
    logging.captureWarnings(False)


def _dead_rows(db, n: int = 2) -> list[str]:
    for i in range(n):
        db.batches.insert_batch(*make_batch(f"wq{i}", n_jobs=1))
        assert db.batches.fail_job(f"wq{i}-0", "INVALID_INPUT", "bad photo")
    ids = [row.id for row in db.outbox.rows()]
    with db.db.transaction() as conn:
        conn.execute(sa.update(webhook_outbox).where(webhook_outbox.c.id.in_(ids)).values(status="dead", attempts=9))
    return ids


def test_webhooks_dead_and_requeue_commands(cli_env, capsys):
    db = cli_env
    ids = _dead_rows(db)
    assert main(["webhooks", "dead"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 dead row(s)") and all(i in out for i in ids)
    assert out.count("WEBHOOK_DELIVERY_FAILED") == 2  # the Node server's code, on every dead row
    assert main(["webhooks", "dead", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(r["id"] for r in listed) == sorted(ids)
    assert {r["error_code"] for r in listed} == {"WEBHOOK_DELIVERY_FAILED"}

    assert main(["webhooks", "requeue"]) == 2  # refuses to guess what to requeue
    assert "--all-dead" in capsys.readouterr().err
    assert main(["webhooks", "requeue", "--id", ids[0], "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"requeued": 1}
    assert main(["webhooks", "requeue", "--event", "batch.completed"]) == 0
    assert capsys.readouterr().out.startswith("requeued 0")
    assert main(["webhooks", "requeue", "--all-dead"]) == 0
    assert capsys.readouterr().out.startswith("requeued 1 dead rows")
    for row_id in ids:
        state = db.outbox.get(row_id)
        assert state.status == "pending" and state.attempts == 0


def test_spend_command_is_wired(cli_env, capsys):
    assert main(["spend", "--json", "--since", "2026-01-01", "--listing", "L-1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert isinstance(report, dict)
    assert main(["spend", "--batch", "nope"]) == 0
    assert capsys.readouterr().out.strip()
