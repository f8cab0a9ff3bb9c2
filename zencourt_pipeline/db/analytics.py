"""What the analytics read: accepted generation tasks with their completion.

`AnalyticsRepository`; the pandas work is in `pipeline/analytics.py`.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime

import sqlalchemy as sa

from zencourt_pipeline.db.core import Db
from zencourt_pipeline.db.records import HistoryRow
from zencourt_pipeline.db.schema import generation_completions, generation_tasks

HISTORY_COLUMNS = [f.name for f in fields(HistoryRow)]


class AnalyticsRepository:
    """The analytics' reads of the generation ledger."""

    def __init__(self, db: Db):
        self.db = db

    def generation_history(self, *, since: datetime) -> list[HistoryRow]:
        """Accepted tasks (with a task id) submitted since `since`, each with its completion (if
        any): one `HistoryRow` per task (its fields: `HISTORY_COLUMNS`)."""
        task, completion = generation_tasks.c, generation_completions.c
        query = (
            sa.select(
                task.provider,
                task.task_id,
                task.batch_id,
                task.job_id,
                task.status.label("task_status"),
                task.cost_credits,
                task.cost_usd,
                task.cost_source,
                task.submitted_at,
                completion.status.label("completion_status"),
                completion.received_at,
            )
            .select_from(
                generation_tasks.outerjoin(
                    generation_completions,
                    sa.and_(completion.provider == task.provider, completion.task_id == task.task_id),
                )
            )
            .where(task.task_id.is_not(None), task.submitted_at >= since)
        )
        with self.db.engine.connect() as conn:
            return [HistoryRow.from_row(row) for row in conn.execute(query)]
