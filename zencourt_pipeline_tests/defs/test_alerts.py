"""The alert for dead webhook rows: a sensor whose tick fails (red in the UI) while any exist."""

from __future__ import annotations

import dagster as dg
import pytest
import sqlalchemy as sa

from zencourt_pipeline.db.schema import webhook_outbox
from zencourt_pipeline.defs.alerts import DeadWebhooksAlert, dead_webhooks_sensor
from zencourt_pipeline.defs.resources import AppDatabaseResource
from zencourt_pipeline_tests.conftest import make_batch


def evaluate(instance, url):
    context = dg.build_sensor_context(instance=instance, resources={"app_db": AppDatabaseResource(database_url=url)})
    return dead_webhooks_sensor(context)


def test_skips_without_dead_rows_and_fails_with_them(instance, sqlite_db, sqlite_url):
    result = evaluate(instance, sqlite_url)
    assert isinstance(result, dg.SkipReason) and result.skip_message == "no dead webhook"

    sqlite_db.batches.insert_batch(*make_batch("al1", n_jobs=1))
    assert sqlite_db.batches.fail_job("al1-0", "INVALID_INPUT", "bad photo")
    (row,) = sqlite_db.outbox.rows("al1")
    with sqlite_db.db.transaction() as conn:
        conn.execute(sa.update(webhook_outbox).where(webhook_outbox.c.id == row.id).values(status="dead"))
    with pytest.raises(DeadWebhooksAlert) as failure:
        evaluate(instance, sqlite_url)
    message = str(failure.value)
    assert message.startswith("WEBHOOK_DELIVERY_FAILED: 1 dead completion webhook(s)") and "clip.failed: 1" in message
    assert "zencourt webhooks requeue --all-dead" in message

    assert sqlite_db.outbox.requeue_dead() == 1
    assert isinstance(evaluate(instance, sqlite_url), dg.SkipReason)


def test_the_sensor_is_registered_and_running_by_default():
    from zencourt_pipeline.definitions import defs

    sensor = defs().resolve_sensor_def("dead_webhooks_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 300 and sensor.description
