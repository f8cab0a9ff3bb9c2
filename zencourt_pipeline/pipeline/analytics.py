"""What analysts read: the per-clip story of one batch and per-provider daily figures. Dagster-free.

- `clip_rows`: one row per job of a batch: room, provider, task id, status, clip duration,
  latency (completion received - task submitted), credits spent, attempts.
- `provider_daily`: pandas over `generation_tasks` + `generation_completions`: per provider and
  UTC day: clips (accepted tasks), succeeded, failed, in flight, success rate, p50/p95 latency,
  credits and USD (`generation_tasks.cost_usd`; the full money ledger is `pipeline/spend.py`).
- `render_chart`: that table as a PNG bar chart, drawn with Pillow (no plotting dependency).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from zencourt_pipeline.db.analytics import HISTORY_COLUMNS, AnalyticsRepository
from zencourt_pipeline.db.clock import as_utc, utcnow
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.records import GenerationTaskStatus, JobStatus, Task, current_task
from zencourt_pipeline.domain import Provider

if TYPE_CHECKING:  # pandas is imported by the analytics functions, not with every run worker
    import pandas as pd

SUCCEEDED = GenerationTaskStatus.SUCCEEDED
FAILED_STATES = (GenerationTaskStatus.FAILED, GenerationTaskStatus.CANCELED)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((as_utc(end) - as_utc(start)).total_seconds(), 2)


@dataclass(frozen=True)
class ClipRow:
    job_id: str
    room: str | None
    provider: str | None
    task_id: str | None
    status: JobStatus
    duration_s: float | None
    latency_s: float | None
    cost_credits: float | None
    attempts: int
    error_code: str | None


def clip_rows(db: AppDatabase, batch_id: str, durations: dict[str, float] | None = None) -> list[ClipRow]:
    """The batch's clips in sort order. `durations` are the normalized clips' probed durations."""
    durations = durations or {}
    completions = {(c.provider, c.task_id): c for c in db.completions.completions_for_batch(batch_id)}
    tasks_by_job: dict[str, list[Task]] = {}
    for task in db.ledger.tasks_for_batch(batch_id):
        tasks_by_job.setdefault(task.job_id, []).append(task)
    rows = []
    for job in db.batches.get_jobs(batch_id):
        tasks = tasks_by_job.get(job.id, [])
        accepted = [task for task in tasks if task.task_id]
        task = current_task(tasks)
        completion = completions.get((task.provider, task.task_id)) if task else None
        costs = [task.cost_credits for task in accepted if task.cost_credits is not None]
        rows.append(
            ClipRow(
                job_id=job.id,
                room=job.room_name,
                provider=task.provider if task else job.provider,
                task_id=task.task_id if task else None,
                status=job.status,
                duration_s=round(durations[job.id], 3) if job.id in durations else None,
                latency_s=_seconds(task.submitted_at, completion.received_at) if task and completion else None,
                cost_credits=round(sum(costs), 4) if costs else None,
                attempts=len(accepted),
                error_code=job.error_code,
            )
        )
    return rows


# -- per provider and day -------------------------------------------------------------------------
DAILY_COLUMNS = [
    "day", "provider", "clips", "succeeded", "failed", "in_flight", "success_rate",
    "latency_p50_s", "latency_p95_s", "cost_credits", "cost_usd",
]


def load_generation_frame(analytics: AnalyticsRepository, *, days: int = 90, now: datetime | None = None) -> pd.DataFrame:
    """Accepted tasks of the last `days` days with their completion (if any): one row per task."""
    import pandas as pd

    since = (now or utcnow()) - timedelta(days=days)
    frame = pd.DataFrame(analytics.generation_history(since=since), columns=HISTORY_COLUMNS)
    frame["submitted_at"] = pd.to_datetime(frame["submitted_at"], utc=True)
    frame["received_at"] = pd.to_datetime(frame["received_at"], utc=True)
    return frame


def provider_daily(frame: pd.DataFrame) -> pd.DataFrame:
    """Per provider and UTC day (of submission): clips, outcomes, success rate, latency, credits, USD."""
    import pandas as pd

    if frame.empty:
        return pd.DataFrame(columns=DAILY_COLUMNS)
    data = frame.copy()
    data["day"] = data["submitted_at"].dt.strftime("%Y-%m-%d")
    data["succeeded"] = (data["completion_status"] == SUCCEEDED).astype(int)
    data["failed"] = data["completion_status"].isin(FAILED_STATES).astype(int)
    data["in_flight"] = data["completion_status"].isna().astype(int)
    data["latency_s"] = (data["received_at"] - data["submitted_at"]).dt.total_seconds()
    data["cost_credits"] = pd.to_numeric(data["cost_credits"], errors="coerce")
    data["cost_usd"] = pd.to_numeric(data["cost_usd"], errors="coerce") if "cost_usd" in data else float("nan")
    grouped = data.groupby(["day", "provider"], sort=True)
    daily = grouped.agg(
        clips=("task_id", "count"),
        succeeded=("succeeded", "sum"),
        failed=("failed", "sum"),
        in_flight=("in_flight", "sum"),
        latency_p50_s=("latency_s", lambda s: s.quantile(0.5)),
        latency_p95_s=("latency_s", lambda s: s.quantile(0.95)),
        cost_credits=("cost_credits", lambda s: s.sum(min_count=1)),
        cost_usd=("cost_usd", lambda s: s.sum(min_count=1)),
    ).reset_index()
    finished = daily["succeeded"] + daily["failed"]
    daily["success_rate"] = (daily["succeeded"] / finished.where(finished > 0)).round(4)
    for column in ("latency_p50_s", "latency_p95_s"):
        daily[column] = daily[column].astype(float).round(2)
    daily["cost_credits"] = daily["cost_credits"].astype(float).round(4)
    daily["cost_usd"] = daily["cost_usd"].astype(float).round(6)
    for column in ("clips", "succeeded", "failed", "in_flight"):
        daily[column] = daily[column].astype(int)
    return daily[DAILY_COLUMNS].sort_values(["day", "provider"], ignore_index=True)


def daily_records(daily: pd.DataFrame) -> list[dict]:
    """Rows as plain dicts (NaN -> None) for table metadata."""
    clean = daily.astype(object).where(daily.notna(), None)
    return clean.to_dict(orient="records")


# -- the chart ---------------------------------------------------------------------------------------
PROVIDER_COLORS = {Provider.RUNWAY: (79, 70, 229), Provider.FAL: (217, 119, 6), Provider.LOCAL: (5, 150, 105)}
_FALLBACK_COLORS = [(37, 99, 235), (220, 38, 38), (124, 58, 237), (8, 145, 178)]


def _color(provider: str, index: int) -> tuple[int, int, int]:
    return PROVIDER_COLORS.get(provider, _FALLBACK_COLORS[index % len(_FALLBACK_COLORS)])


def _lighter(color: tuple[int, int, int], amount: float = 0.6) -> tuple[int, int, int]:
    return tuple(int(c + (255 - c) * amount) for c in color)  # type: ignore[return-value]


def render_chart(daily: pd.DataFrame, *, width: int = 960, height: int = 440, last_days: int = 14) -> bytes:
    """PNG: per day, one bar per provider (clips; solid = succeeded, pale = failed or in flight),
    labelled with the success rate and p95 latency."""
    import pandas as pd
    from PIL import Image, ImageDraw, ImageFont

    def font(size: int):
        try:
            return ImageFont.load_default(size=size)
        except TypeError:  # Pillow built without FreeType
            return ImageFont.load_default()

    title_font, label_font, small_font = font(18), font(13), font(11)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((20, 14), "Clips per provider and day (UTC): solid = succeeded; label = success rate, p95 latency",
              fill=(17, 24, 39), font=title_font)
    left, right, top, bottom = 60, width - 20, 60, height - 60
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=(107, 114, 128), width=1)
    if daily.empty:
        draw.text((left + 20, (top + bottom) // 2), "no generation tasks yet", fill=(107, 114, 128), font=label_font)
        return _png(image)
    days = sorted(daily["day"].unique())[-last_days:]
    providers = sorted(daily["provider"].unique())
    data = daily[daily["day"].isin(days)].set_index(["day", "provider"])
    peak = max(int(data["clips"].max()), 1)
    step = max(1, -(-peak // 5))
    scale_top = step * 5 if step * 5 >= peak else peak
    for tick in range(0, scale_top + 1, step):
        y = bottom - (bottom - top) * tick / scale_top
        draw.line([(left - 4, y), (right, y)], fill=(229, 231, 235), width=1)
        draw.text((left - 8, y), str(tick), fill=(75, 85, 99), font=small_font, anchor="rm")
    group_width = (right - left) / len(days)
    bar_width = min(60.0, group_width * 0.8 / len(providers))
    for d_index, day in enumerate(days):
        group_left = left + group_width * d_index + (group_width - bar_width * len(providers)) / 2
        for p_index, provider in enumerate(providers):
            if (day, provider) not in data.index:
                continue
            row = data.loc[(day, provider)]
            color = _color(provider, p_index)
            x0, x1 = group_left + bar_width * p_index, group_left + bar_width * (p_index + 1) - 4
            clips_y = bottom - (bottom - top) * int(row["clips"]) / scale_top
            ok_y = bottom - (bottom - top) * int(row["succeeded"]) / scale_top
            draw.rectangle([x0, clips_y, x1, bottom], fill=_lighter(color))
            draw.rectangle([x0, ok_y, x1, bottom], fill=color)
            rate = "-" if pd.isna(row["success_rate"]) else f"{row['success_rate']:.0%}"
            p95 = "-" if pd.isna(row["latency_p95_s"]) else f"{row['latency_p95_s']:.0f}s"
            draw.text(((x0 + x1) / 2, clips_y - 4), f"{rate} {p95}", fill=(17, 24, 39), font=small_font, anchor="md")
        draw.text((left + group_width * (d_index + 0.5), bottom + 8), day, fill=(55, 65, 81), font=label_font, anchor="ma")
    legend_x = left
    for p_index, provider in enumerate(providers):
        color = _color(provider, p_index)
        draw.rectangle([legend_x, height - 26, legend_x + 14, height - 12], fill=color)
        draw.text((legend_x + 20, height - 19), provider, fill=(17, 24, 39), font=label_font, anchor="lm")
        legend_x += 30 + int(draw.textlength(provider, font=label_font)) + 20
    return _png(image)


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()
