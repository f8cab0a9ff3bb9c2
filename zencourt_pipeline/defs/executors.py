"""How runs execute their steps: in the run's process, or on Celery workers (ZENCOURT_EXECUTOR).

With `celery`, a run stays a Dagster run (queued, launched and monitored as before), and each of
its steps is sent to a Celery worker over ZENCOURT_CELERY_BROKER_URL (`dagster-celery`), on the
queue of its kind of work (`WorkQueue`, the step's `dagster-celery/queue` tag): `media`
(normalize, compose) or `providers` (photos, submissions, downloads). Workers start with
`zencourt worker --queue media|providers` on any machine that reaches the broker, the database
and the storage, with the same environment as the other processes.

A worker killed in the middle of a step loses nothing: tasks are acknowledged only once they
finished (`task_acks_late`) and given back to the broker when their worker dies
(`task_reject_on_worker_lost`), so another worker runs the step again; the steps are idempotent
(a paid task is never re-sent, outputs are published under final keys atomically). A broker that
goes away keeps its durable queues: the run's loop and the workers reconnect.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import dagster as dg

from zencourt_pipeline.config import Settings, environment_has
from zencourt_pipeline.domain import Executor, WorkQueue

QUEUE_TAG = "dagster-celery/queue"  # dagster_celery.tags.DAGSTER_CELERY_QUEUE_TAG
MEDIA_CONCURRENCY = max(1, os.cpu_count() or 1)  # one media step per core: ffmpeg uses the core
PROVIDERS_CONCURRENCY = 8  # network-bound steps: many per worker

# both ends of the queue agree on these: the run's loop sends, the workers take
CELERY_CONFIG: dict[str, Any] = {
    "task_acks_late": True,  # a task is acknowledged once it ran, not when a worker took it
    "task_reject_on_worker_lost": True,  # ... and given back when its worker died meanwhile
    "worker_prefetch_multiplier": 1,  # a worker takes one task per free process, no more
    "broker_connection_retry_on_startup": True,
    "task_create_missing_queues": True,
}


def queue_tags(queue: WorkQueue) -> dict[str, str]:
    """The op tags that send an asset's step to `queue` under the Celery executor (ignored in process)."""
    return {QUEUE_TAG: queue.value}


def result_backend(broker_url: str) -> str:
    """Where step results come back: over the broker itself on AMQP (`rpc://`), else the broker's URL (Redis)."""
    return "rpc://" if broker_url.split(":", 1)[0] in ("amqp", "pyamqp", "amqps") else broker_url


def build_executor(settings: Settings) -> dg.ExecutorDefinition:
    """The code location's executor: in process, or Celery on the configured broker (the broker URL
    reaches Dagster as an env reference when it comes from the environment, so the UI never shows it)."""
    if settings.executor == Executor.IN_PROCESS:
        return dg.in_process_executor
    from dagster_celery import celery_executor

    url = settings.celery_broker_url
    broker: Any = {"env": "ZENCOURT_CELERY_BROKER_URL"} if environment_has("ZENCOURT_CELERY_BROKER_URL", url) else url
    return celery_executor.configured(
        {"broker": broker, "backend": result_backend(url), "config_source": CELERY_CONFIG}, name="celery"
    )


def run_worker(settings: Settings, queue: WorkQueue, concurrency: int | None = None, name: str | None = None) -> None:
    """Serve `queue` as a Celery worker until stopped (`zencourt worker --queue ...`): the same
    Celery app and task the run's loop sends to, on the configured broker. `name`: the worker's
    name in the runs' engine events (`<name>@<host>`; default `<queue>-<random>`)."""
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_task

    url = settings.celery_broker_url
    executor = CeleryExecutor.for_cli(broker=url, backend=result_backend(url), config_source=CELERY_CONFIG)
    app = make_app(executor.app_args())
    create_task(app)
    if concurrency is None:
        concurrency = MEDIA_CONCURRENCY if queue == WorkQueue.MEDIA else PROVIDERS_CONCURRENCY
    name = f"{name or queue.value + '-' + uuid.uuid4().hex[:6]}@%h"
    app.worker_main(
        ["worker", "--queues", queue.value, "--concurrency", str(concurrency), "--hostname", name, "--loglevel", "INFO"]
    )
