"""The provider analytics asset: pandas per provider and day, a CSV and a PNG in storage."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
from PIL import Image

from zencourt_pipeline.db.schema import generation_completions, generation_tasks
from zencourt_pipeline.defs.assets import all_assets
from zencourt_pipeline.defs.assets.analytics import (
    ANALYTICS_CHART_KEY,
    ANALYTICS_CSV_KEY,
    provider_daily_stats,
)
from zencourt_pipeline.pipeline.analytics import DAILY_COLUMNS, clip_rows, provider_daily, render_chart
from zencourt_pipeline_tests.conftest import make_batch


def _frame(rows):
    frame = pd.DataFrame(
        rows, columns=["provider", "task_id", "submitted_at", "completion_status", "received_at", "cost_credits"]
    )
    frame["submitted_at"] = pd.to_datetime(frame["submitted_at"], utc=True)
    frame["received_at"] = pd.to_datetime(frame["received_at"], utc=True)
    return frame


def test_provider_daily_counts_rates_percentiles_and_cost():
    day = datetime(2026, 5, 4, 10, tzinfo=UTC)
    rows = [("runway", f"r{i}", day, "succeeded", day + timedelta(seconds=10 * (i + 1)), 5.0) for i in range(10)]
    rows += [("runway", "rf", day, "failed", day + timedelta(seconds=5), 5.0)]
    rows += [("runway", "rq", day, None, None, 5.0)]  # still in flight
    rows += [("fal", "f1", day + timedelta(days=1), "succeeded", day + timedelta(days=1, seconds=60), None)]
    daily = provider_daily(_frame(rows))
    assert list(daily.columns) == DAILY_COLUMNS
    runway = daily[daily["provider"] == "runway"].iloc[0]
    assert (runway["day"], runway["clips"], runway["succeeded"], runway["failed"], runway["in_flight"]) == (
        "2026-05-04", 12, 10, 1, 1,
    )
    assert runway["success_rate"] == round(10 / 11, 4)
    latencies = pd.Series([10.0 * (i + 1) for i in range(10)] + [5.0])
    assert runway["latency_p50_s"] == round(latencies.quantile(0.5), 2)
    assert runway["latency_p95_s"] == round(latencies.quantile(0.95), 2)
    assert runway["cost_credits"] == 60.0
    fal = daily[daily["provider"] == "fal"].iloc[0]
    assert (fal["day"], fal["clips"], fal["success_rate"], fal["latency_p50_s"]) == ("2026-05-05", 1, 1.0, 60.0)
    assert pd.isna(fal["cost_credits"])
    assert provider_daily(_frame([])).empty


def test_the_chart_is_a_png_even_without_data():
    for daily in (provider_daily(_frame([])), provider_daily(_frame([("local", "t", datetime.now(UTC), "succeeded",
                                                                         datetime.now(UTC), 0.0)]))):
        image = Image.open(io.BytesIO(render_chart(daily)))
        assert (image.format, image.size) == ("PNG", (960, 440))


def _history(db):
    """Two providers over two days, as the generation tables record them."""
    db.batches.insert_batch(*make_batch("hist", n_jobs=3))
    now = datetime.now(UTC).replace(microsecond=0)
    plan = [
        ("hist-0", "runway", "rw-0", now - timedelta(days=1), "succeeded", 40.0, 5.0, 0.25),
        ("hist-1", "runway", "rw-1", now - timedelta(days=1), "failed", 20.0, 5.0, 0.25),
        ("hist-1", "fal", "fal-1", now, "succeeded", 90.0, 3.5, 0.5),
        ("hist-2", "runway", "rw-2", now, None, None, 5.0, 0.25),
    ]
    # an ambiguous create (sent, answer lost): no task id, possibly paid, no cost figure
    orphan = db.ledger.begin_task("hist-2", "hist", "fal")
    with db.db.transaction() as conn:
        conn.execute(sa.update(generation_tasks).where(generation_tasks.c.id == orphan).values(possibly_orphaned=True))
    for job_id, provider, task_id, submitted, status, latency, cost, usd in plan:
        row = db.ledger.begin_task(job_id, "hist", provider)
        db.ledger.task_submitted(row, job_id, provider, task_id, cost=cost, cost_usd=usd, cost_source="rate")
        with db.db.transaction() as conn:
            conn.execute(sa.update(generation_tasks).where(generation_tasks.c.id == row).values(submitted_at=submitted))
        if status:
            db.completions.record_completion(provider=provider, task_id=task_id, status=status, source="poll")
            with db.db.transaction() as conn:
                conn.execute(
                    sa.update(generation_completions)
                    .where(generation_completions.c.task_id == task_id)
                    .values(received_at=submitted + timedelta(seconds=latency))
                )
    return now


def test_the_asset_stores_csv_and_chart_and_shows_them(instance, resources):
    db, storage = resources["app_db"].get(), resources["storage"].get()
    now = _history(db)
    result = dg.materialize([provider_daily_stats], instance=instance, resources=resources)
    assert result.success
    [event] = [e.materialization for e in result.get_asset_materialization_events()]
    metadata = event.metadata
    assert metadata["dagster/row_count"].value == 3 and metadata["clips"].value == 4
    assert metadata["providers"].value == "fal, runway"
    records = [r.data for r in metadata["provider_daily"].value.records]
    today = now.strftime("%Y-%m-%d")
    assert {(r["day"], r["provider"]): (r["clips"], r["succeeded"], r["in_flight"]) for r in records}[
        (today, "runway")
    ] == (1, 0, 1)
    fal = next(r for r in records if r["provider"] == "fal")
    assert (fal["latency_p50_s"], fal["cost_credits"], fal["success_rate"]) == (90.0, 3.5, 1.0)
    assert fal["cost_usd"] == 0.5
    assert sorted(r["cost_usd"] for r in records if r["provider"] == "runway") == [0.25, 0.5]

    # the money ledger of the window: spend per provider, the possibly orphaned request
    assert (metadata["spend_usd"].value, metadata["spend_usd_rate"].value, metadata["spend_usd_provider"].value) == (
        1.25, 1.25, 0.0,
    )  # fmt: skip
    assert (metadata["spend_usd_runway"].value, metadata["spend_usd_fal"].value) == (0.75, 0.5)
    assert (metadata["paid_tasks"].value, metadata["possibly_orphaned"].value, metadata["orphan_usd"].value) == (
        5, 1, 0.0,
    )  # fmt: skip
    spend = metadata["spend"].value
    assert "| fal | 2 | 0 | 1 | 0 | 0 | 0 | 1 | 0 | 0 | $0.0000 | $0.5000 | $0.5000 |" in spend
    assert "| runway | 3 | 1 | 1 | 1 | 0 | 0 | 0 | 0 | 0 | $0.0000 | $0.7500 | $0.7500 |" in spend
    assert "Possibly orphaned: **1** ($0.0000); unpriced: 1." in spend
    assert "| hist | listing-hist | 5 | 1 | $1.2500 |" in spend
    assert metadata["chart"].value.startswith("![clips per provider and day](data:image/png;base64,")

    csv = pd.read_csv(storage.path(ANALYTICS_CSV_KEY))
    assert list(csv.columns) == DAILY_COLUMNS and len(csv) == 3
    assert Image.open(storage.path(ANALYTICS_CHART_KEY)).format == "PNG"
    assert metadata["csv_uri"].value == storage.uri(ANALYTICS_CSV_KEY)

    # the per-clip story of the batch: latency = completion - submission of its current task
    rows = {row.job_id: row for row in clip_rows(db, "hist")}
    assert (rows["hist-1"].provider, rows["hist-1"].latency_s, rows["hist-1"].cost_credits) == ("fal", 90.0, 8.5)
    assert rows["hist-1"].attempts == 2 and rows["hist-2"].latency_s is None


@pytest.mark.filterwarnings("ignore::dagster.BetaWarning")  # the tester's own AssetSelection.all(include_sources=)
def test_the_analytics_refresh_hourly_and_not_otherwise(instance, resources):
    defs = dg.Definitions(assets=all_assets, resources=resources)
    start = datetime(2026, 5, 4, 10, 20, tzinfo=UTC)
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=start)
    assert first.total_requested == 0
    later = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=start + timedelta(minutes=30), cursor=first.cursor
    )
    assert later.total_requested == 0  # 10:50, no hour boundary passed
    hour = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=start + timedelta(minutes=45), cursor=later.cursor
    )
    assert hour.total_requested == 1  # 11:05: the 11:00 tick passed
    assert hour.get_num_requested(dg.AssetKey("provider_daily_stats")) == 1
