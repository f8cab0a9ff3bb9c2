"""Load run on the production topology: N batches through fake Runway (primary) and fake fal
(fallback), 2-5 s provider latency, a share of Runway tasks failing INTERNAL (they fall back).

`make loadtest` runs 200 batches of 6 clips: `python -m zencourt_pipeline_tests.load --batches 200`.
With `--media-workers N` the run is on the Celery executor (issue 13 point 5): a throwaway RabbitMQ,
N `zencourt worker --queue media` processes (one step each) and one `providers` worker (4 at once);
it prints the throughput (batches an hour) and each queue's utilisation (the share of its workers'
slot-time its steps held).
The suite runs its checks inside the CI soak (`zencourt_pipeline_tests/e2e/test_soak.py`). Prints one
`name: value` line per figure.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from zencourt_pipeline.db.clock import as_utc
from zencourt_pipeline_tests.fakes.fal import FakeFal, FalScript
from zencourt_pipeline_tests.fakes.runway import FakeRunway, RunwayScript
from zencourt_pipeline_tests.fakes.server import RequestRecorder
from zencourt_pipeline_tests.topology import ScratchDatabases, Topology, e2e_storage, start_s3

TERMINAL = {"completed", "failed", "canceled"}
MEDIA_STEPS = {"normalized_clips", "composed_video"}  # queue_tags(WorkQueue.MEDIA); every other step: providers
PROVIDERS_SLOTS = 4  # the providers worker's concurrency in a Celery load run


@dataclass
class LoadReport:
    batches: int
    clips: int
    wall_s: float
    batches_completed: int
    jobs_terminal: int
    jobs_total: int
    lost: int
    duplicates: int
    fallbacks: int
    runs_created: int
    batch_latency_p50_s: float
    batch_latency_p95_s: float
    pool_utilisation: float
    executor: str = "in_process"
    media_workers: int = 0
    batches_per_hour: float = 0.0
    media_queue_utilisation: float = 0.0
    providers_queue_utilisation: float = 0.0

    def lines(self) -> list[str]:
        return [f"load_{name}: {value}" for name, value in self.__dict__.items()]


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_load(workdir: Path, *, batches: int, clips: int, failure_rate: float = 0.1, seed: int = 7,
             timeout: float = 3600.0, media_workers: int = 0) -> LoadReport:
    """The load run; on the Celery executor with `media_workers` media workers when > 0."""
    rng = random.Random(seed)
    rabbit = None
    celery_env: dict[str, str] = {}
    if media_workers:
        from zencourt_pipeline_tests.broker import ThrowawayRabbit

        rabbit = ThrowawayRabbit(workdir)
        rabbit.start()
        celery_env = {"ZENCOURT_EXECUTOR": "celery", "ZENCOURT_CELERY_BROKER_URL": rabbit.url}
    databases = ScratchDatabases("zc_load")
    urls = databases.urls
    moto, endpoint = start_s3()
    storage = e2e_storage(endpoint)
    topo = None
    try:
        with FakeRunway() as runway, FakeFal() as fal, RequestRecorder() as receiver:
            topo = Topology(workdir, urls[0], urls[1], receiver.url, endpoint, extra_env={
                "GENERATION_PROVIDERS": "runway,fal",
                "RUNWAY_API_URL": runway.url, "RUNWAY_API_KEY": runway.api_key,
                "FAL_QUEUE_URL": fal.url, "FAL_KEY": fal.key, "FAL_JWKS_URL": fal.jwks_url,
                "MEDIA_ALLOWED_PRIVATE_HOSTS": "127.0.0.1",
                "FAL_WEBHOOK_OVERDUE_SECONDS": "60", **celery_env,
            })
            topo.env["FAL_WEBHOOK_URL"] = f"http://127.0.0.1:{topo.service_port}/webhooks/fal"
            topo.start_all()
            for index in range(media_workers):
                topo.start_worker(f"media-{index}", "media")
            if media_workers:
                topo.start_worker("providers-0", "providers", concurrency=PROVIDERS_SLOTS)
            from zencourt_pipeline_tests.defs.conftest import write_photo

            photo_key = "uploads/load/photo.jpg"
            storage.put_file(photo_key, write_photo(workdir / "photo.jpg"), "image/jpeg")
            batch_ids = [f"load-{index:04d}" for index in range(batches)]
            for batch_id in batch_ids:
                for index in range(clips):
                    prompt = f"{batch_id}:{index} slow push-in"
                    failing = rng.random() < failure_rate
                    runway.scripts.for_prompt(prompt, RunwayScript(
                        latency=rng.uniform(2, 5),
                        outcome="fail" if failing else "succeed",
                        failure_code="INTERNAL.BAD_OUTPUT.CODE01" if failing else None))
                    fal.scripts.for_prompt(prompt, FalScript(latency=rng.uniform(2, 5)))
            started = time.monotonic()
            for batch_id in batch_ids:
                topo.db.batches.insert_batch(
                    {"id": batch_id, "listing_id": f"L-{batch_id}", "title": "Load Test Lane"},
                    [{"id": f"{batch_id}-{i}", "sort_order": i, "room_name": f"Room {i}", "image_url": storage.uri(photo_key),
                      "duration_seconds": 2, "prompt": f"{batch_id}:{i} slow push-in"} for i in range(clips)],
                )
            deadline = started + timeout
            while time.monotonic() < deadline:
                with topo.db.db.engine.connect() as conn:
                    open_batches = conn.execute(sa.text(
                        "SELECT count(*) FROM video_gen_batch WHERE status NOT IN ('completed','failed','canceled')"
                    )).scalar()
                if open_batches == 0:
                    break
                time.sleep(2)
            wall = time.monotonic() - started
            return _report(topo, runway, fal, batch_ids, clips, wall, media_workers)
    finally:
        if topo is not None:
            topo.stop_all()
        if rabbit is not None:
            rabbit.kill()
        moto.stop()
        databases.close()


def _report(topo: Topology, runway: FakeRunway, fal: FakeFal, batch_ids: list[str], clips: int, wall: float,
            media_workers: int = 0) -> LoadReport:
    db = topo.db
    latencies, completed, terminal_jobs, total_jobs = [], 0, 0, 0
    for batch_id in batch_ids:
        batch = db.batches.get_batch(batch_id)
        jobs = db.batches.get_jobs(batch_id)
        total_jobs += len(jobs)
        terminal_jobs += sum(job.status in TERMINAL for job in jobs)
        if batch.status == "completed":
            completed += 1
        if batch.status in TERMINAL:
            latencies.append((as_utc(batch.updated_at) - as_utc(batch.created_at)).total_seconds())
    created = Counter()
    for fake, name in ((runway, "runway"), (fal, "fal")):
        tasks = fake.tasks.values() if name == "runway" else fake.requests.values()
        for task in tasks:
            body = task.body
            prompt = body.get("promptText") or body.get("prompt") or ""
            created[(name, prompt)] += 1
    duplicates = sum(count - 1 for count in created.values() if count > 1)
    fallbacks = sum(1 for (name, _prompt) in created if name == "fal")
    runs, utilisation, busy = _dagster_figures(topo, wall)
    return LoadReport(
        batches=len(batch_ids), clips=clips, wall_s=round(wall, 1), batches_completed=completed,
        jobs_terminal=terminal_jobs, jobs_total=total_jobs, lost=total_jobs - terminal_jobs,
        duplicates=duplicates, fallbacks=fallbacks, runs_created=runs,
        batch_latency_p50_s=round(_percentile(latencies, 0.5), 1),
        batch_latency_p95_s=round(_percentile(latencies, 0.95), 1),
        pool_utilisation=utilisation,
        executor="celery" if media_workers else "in_process", media_workers=media_workers,
        batches_per_hour=round(completed * 3600 / wall, 1) if wall else 0.0,
        media_queue_utilisation=round(busy["media"] / (media_workers * wall), 3) if media_workers and wall else 0.0,
        providers_queue_utilisation=round(busy["providers"] / (PROVIDERS_SLOTS * wall), 3) if media_workers and wall else 0.0,
    )


def _dagster_figures(topo: Topology, wall: float) -> tuple[int, float, dict[str, float]]:
    """Runs created, the share of the provider pool's slot-time its steps held, and the step-seconds
    of each Celery queue's steps."""
    with topo.instance() as instance:
        records = instance.get_run_records()
        pool, queues = 0.0, {"media": 0.0, "providers": 0.0}
        for record in records:
            for step in instance.get_run_step_stats(record.dagster_run.run_id):
                if not (step.start_time and step.end_time):
                    continue
                seconds = step.end_time - step.start_time
                if step.step_key in ("clip_tasks", "generated_clips"):
                    pool += seconds
                queues["media" if step.step_key in MEDIA_STEPS else "providers"] += seconds
        limit = 2  # docker/dagster.yaml concurrency.pools.default_limit
        return len(records), round(pool / (limit * wall), 3) if wall else 0.0, queues


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--failure-rate", type=float, default=0.1)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for every batch to end")
    parser.add_argument("--media-workers", type=int, default=0,
                        help="run on the Celery executor with this many media workers (0: in process)")
    args = parser.parse_args()
    # A SIGTERM (kill, a CI timeout) unwinds like Ctrl-C: the topology's processes are stopped
    # and the load databases dropped by the `finally` blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="zencourt-load-") as tmp:
        report = run_load(Path(tmp), batches=args.batches, clips=args.clips, failure_rate=args.failure_rate,
                          timeout=args.timeout, media_workers=args.media_workers)
    for line in report.lines():
        print(line)


if __name__ == "__main__":
    main()
