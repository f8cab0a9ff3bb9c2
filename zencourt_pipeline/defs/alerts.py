"""Alerts an operator sees in the Dagster UI.

`dead_webhooks_sensor` watches `webhook_outbox` for `dead` rows (completion webhooks the web
app never acknowledged within the retry horizon, so it never heard that a clip or batch
finished). With none its tick is skipped ("no dead webhook"); with any, the tick **fails**
with the Node server's code `WEBHOOK_DELIVERY_FAILED`, the count per event, the oldest row's age and the command that retries them: the sensor
shows as failing (red) under Automation and on the Overview, and every tick fails until the
rows are requeued (`zencourt webhooks requeue --all-dead`) or resolved. Dagster+ alert
policies on sensor tick failures turn this into a notification.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from zencourt_pipeline.db.records import DeadSummary
from zencourt_pipeline.defs.resources import AppDatabaseResource
from zencourt_pipeline.errors import ErrorCode

DEAD_WEBHOOKS_INTERVAL_SECONDS = 300


class DeadWebhooksAlert(Exception):
    """Raised by the sensor so that its tick fails, visibly, while dead rows exist."""


def dead_webhooks_message(summary: DeadSummary) -> str:
    """The alert: dead webhooks per event, the oldest one's age, the commands to list and requeue."""
    per_event = ", ".join(f"{event}: {count}" for event, count in summary.by_event.items())
    oldest = summary.oldest_dead_created_at
    age = ""
    if oldest:
        hours = (datetime.now(UTC) - datetime.fromisoformat(oldest)).total_seconds() / 3600
        age = f"; oldest created {hours:.1f} h ago"
    return (
        f"{ErrorCode.WEBHOOK_DELIVERY_FAILED}: "
        f"{summary.dead} dead completion webhook(s) in webhook_outbox ({per_event}){age}. "
        "The web app did not acknowledge them within the retry horizon. List them with "
        "`zencourt webhooks dead`, then retry with `zencourt webhooks requeue --all-dead` "
        "(or `--id ID`, `--event TYPE`) once the receiver is fixed."
    )


@dg.sensor(
    minimum_interval_seconds=DEAD_WEBHOOKS_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Alert: fails while webhook_outbox has dead rows (completion webhooks given up on), "
        "naming how many and how to requeue them; skips otherwise."
    ),
)
def dead_webhooks_sensor(context: dg.SensorEvaluationContext, app_db: AppDatabaseResource) -> dg.SkipReason:
    """Fail the tick with the dead webhooks' summary while any outbox row is dead; skip otherwise."""
    summary = app_db.get().outbox.dead_summary()
    if not summary.dead:
        return dg.SkipReason("no dead webhook")
    message = dead_webhooks_message(summary)
    context.log.error(message)
    raise DeadWebhooksAlert(message)
