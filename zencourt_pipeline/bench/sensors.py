"""Sensor ticks with many open batches (issue 11): `sensor_tick_<n>_open_batches_s`.

The real sensors, evaluated through `build_sensor_context` against a real PostgreSQL database
(created and dropped here) holding `n` open batches of 6 jobs: a tenth pending, the rest
processing with a provider task per job, a third of those with every completion recorded
(ready to compose), the others still generating. Each sensor ticks `ticks` times (the
completions sensor's first tick requests compose runs and stores them as requested; later ticks
look the runs up); the figure is the slowest sensor's median tick, with each sensor on its own line.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable

import sqlalchemy as sa

from zencourt_pipeline.config import BenchSettings
from zencourt_pipeline.db.clock import utcnow
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.schema import (
    generation_completions,
    generation_tasks,
    video_gen_batch,
    video_gen_jobs,
)

JOBS_PER_BATCH = 6


def _seed(db: AppDatabase, n: int) -> None:
    now = utcnow()
    batches, jobs, tasks, completions = [], [], [], []
    for i in range(n):
        batch_id = f"bench-{i:06d}"
        pending = i % 10 == 0
        batches.append({"id": batch_id, "listing_id": f"L-{i % 500}", "status": "pending" if pending else "processing",
                        "processing_started_at": None if pending else now})
        for j in range(JOBS_PER_BATCH):
            job_id = f"{batch_id}-{j}"
            jobs.append({"id": job_id, "batch_id": batch_id, "sort_order": j, "image_url": "https://example.com/p.jpg",
                         "status": "pending" if pending else "processing", "photo_key": f"batches/{batch_id}/photos/{j}.jpg",
                         "provider": None if pending else "fal", "provider_task_id": None if pending else f"t-{job_id}"})
            if pending:
                continue
            tasks.append({"job_id": job_id, "batch_id": batch_id, "provider": "fal", "task_id": f"t-{job_id}",
                          "status": "submitted", "submitted_at": now})
            if i % 3 == 0:
                completions.append({"provider": "fal", "task_id": f"t-{job_id}", "job_id": job_id, "batch_id": batch_id,
                                    "status": "succeeded", "source": "webhook"})
    with db.db.transaction() as conn:
        for table, rows in ((video_gen_batch, batches), (video_gen_jobs, jobs), (generation_tasks, tasks),
                            (generation_completions, completions)):
            for start in range(0, len(rows), 5000):
                conn.execute(sa.insert(table), rows[start:start + 5000])


def _median_tick(fn: Callable[[], object], ticks: int) -> float:
    times = []
    for _ in range(ticks):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def sensor_ticks(n: int, ticks: int = 5) -> dict[str, float]:
    """{sensor name: median tick seconds} with `n` open batches in a fresh PostgreSQL database."""
    import dagster as dg

    from zencourt_pipeline.defs.resources import (
        AppDatabaseResource,
        GeneratorsResource,
        PipelineSettingsResource,
    )
    from zencourt_pipeline.defs.sensors import (
        clip_completions_sensor,
        pending_batches_sensor,
    )

    admin_url = BenchSettings.from_env().postgres_url  # ZENCOURT_BENCH_POSTGRES_URL
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"zc_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        db = AppDatabase.connect(url)
        db.db.upgrade()
        _seed(db, n)
        resources = {
            "app_db": AppDatabaseResource(database_url=url),
            "pipeline_settings": PipelineSettingsResource(),
            "generators": GeneratorsResource(providers=["local"]),
        }
        out = {}
        with dg.instance_for_test() as instance:
            for sensor in (pending_batches_sensor, clip_completions_sensor):
                # opened as a context: the generators resource has a lifecycle (chains closed at teardown)
                with dg.build_sensor_context(instance=instance, resources=resources) as context:
                    out[sensor.name] = _median_tick(lambda s=sensor, c=context: s(c), ticks)
        db.db.dispose()
        return out
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
