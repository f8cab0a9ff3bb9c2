"""Provider analytics for analysts: one unpartitioned asset over the generation tables."""

from datetime import timedelta

import dagster as dg

from zencourt_pipeline.db.clock import utcnow
from zencourt_pipeline.defs.assets.common import png_markdown
from zencourt_pipeline.defs.assets.generation import clip_tasks, generated_clips
from zencourt_pipeline.defs.executors import queue_tags
from zencourt_pipeline.defs.resources import AppDatabaseResource, StorageResource
from zencourt_pipeline.domain import WorkQueue
from zencourt_pipeline.pipeline.analytics import (
    daily_records,
    load_generation_frame,
    provider_daily,
    render_chart,
)
from zencourt_pipeline.pipeline.spend import spend_markdown, spend_report

ANALYTICS_CSV_KEY = "analytics/provider_daily.csv"
ANALYTICS_CHART_KEY = "analytics/provider_daily.png"
WINDOW_DAYS = 90

# Hourly, on the clock: completions arrive through webhooks and polls without materializing any
# asset, so "an upstream changed" is not the signal; an hourly refresh costs one query. It only
# runs where the automation sensor runs (the daemon), never inside tests or `zencourt demo`.
HOURLY = (
    dg.AutomationCondition.cron_tick_passed("0 * * * *", cron_timezone="UTC")
    & ~dg.AutomationCondition.in_progress()
)

DAILY_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("day", "string", description="UTC day the tasks were submitted"),
        dg.TableColumn("provider", "string"),
        dg.TableColumn("clips", "int", description="tasks the provider accepted"),
        dg.TableColumn("succeeded", "int"),
        dg.TableColumn("failed", "int", description="failed or canceled"),
        dg.TableColumn("in_flight", "int", description="no completion recorded yet"),
        dg.TableColumn("success_rate", "float", description="succeeded / (succeeded + failed)"),
        dg.TableColumn("latency_p50_s", "float", description="completion received - task submitted, median"),
        dg.TableColumn("latency_p95_s", "float"),
        dg.TableColumn("cost_credits", "float", description="sum of generation_tasks.cost_credits"),
        dg.TableColumn("cost_usd", "float", description="sum of generation_tasks.cost_usd (provider's or rate)"),
    ]
)


@dg.asset(
    deps=[clip_tasks, generated_clips],
    group_name="analytics",
    kinds={"pandas", "csv"},
    op_tags=queue_tags(WorkQueue.PROVIDERS),
    owners=["team:analytics", "team:media-pipeline"],
    code_version="1",
    tags={"stage": "analytics"},
    automation_condition=HOURLY,
)
def provider_daily_stats(
    context: dg.AssetExecutionContext, app_db: AppDatabaseResource, storage: StorageResource
) -> dg.MaterializeResult:
    """Per generation provider and UTC day (last 90 days): clips (accepted tasks), succeeded,
    failed, in flight, success rate, p50/p95 latency (completion received - task submitted) and
    credits and USD, computed with pandas from `generation_tasks` and `generation_completions`;
    and the money ledger of the same window (spend per provider by cost source, paid tasks by
    ledger state, the possibly orphaned count, the top batches: `pipeline/spend.py`). Stored as
    `analytics/provider_daily.csv` (and a PNG chart, `analytics/provider_daily.png`) in storage;
    refreshed hourly by the automation sensor, or on demand with Materialize."""
    db = app_db.get()
    frame = load_generation_frame(db.analytics, days=WINDOW_DAYS)
    spend = spend_report(db, since=utcnow() - timedelta(days=WINDOW_DAYS))
    daily = provider_daily(frame)
    chart = render_chart(daily)
    client = storage.get()
    csv_uri = client.put_bytes(ANALYTICS_CSV_KEY, daily.to_csv(index=False).encode(), "text/csv")
    chart_uri = client.put_bytes(ANALYTICS_CHART_KEY, chart, "image/png")
    records = [dg.TableRecord(record) for record in daily_records(daily)]
    cost = daily["cost_credits"].sum(min_count=1) if not daily.empty else None
    finished = int(daily["succeeded"].sum() + daily["failed"].sum()) if not daily.empty else 0
    metadata = {
        "dagster/row_count": len(daily),
        "days": daily["day"].nunique() if not daily.empty else 0,
        "providers": ", ".join(sorted(daily["provider"].unique())) if not daily.empty else "",
        "clips": int(daily["clips"].sum()) if not daily.empty else 0,
        "success_rate": round(int(daily["succeeded"].sum()) / finished, 4) if finished else None,
        "cost_credits": float(cost) if cost is not None and cost == cost else None,
        "spend_usd": dg.MetadataValue.float(spend.ledger.usd),
        "spend_usd_provider": dg.MetadataValue.float(spend.ledger.usd_provider),
        "spend_usd_rate": dg.MetadataValue.float(spend.ledger.usd_rate),
        "paid_tasks": dg.MetadataValue.int(spend.ledger.tasks),
        "possibly_orphaned": dg.MetadataValue.int(spend.ledger.possibly_orphaned),
        "orphan_usd": dg.MetadataValue.float(spend.ledger.orphan_usd),
        **{f"spend_usd_{p.provider}": dg.MetadataValue.float(p.usd) for p in spend.ledger.providers},
        "spend": dg.MetadataValue.md(spend_markdown(spend)),
        "provider_daily": dg.MetadataValue.table(records, schema=DAILY_SCHEMA),
        "chart": dg.MetadataValue.md(png_markdown(chart, alt="clips per provider and day")),
        "csv_uri": dg.MetadataValue.url(csv_uri),
        "chart_uri": dg.MetadataValue.url(chart_uri),
        "window_days": WINDOW_DAYS,
    }
    return dg.MaterializeResult(metadata={key: value for key, value in metadata.items() if value is not None})
