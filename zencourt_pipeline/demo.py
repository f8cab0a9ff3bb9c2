"""`zencourt demo`: the sample listing through the real Dagster path on a local instance.

It does what production does, in one process: insert the batch as the web app would, tick
the pending-batches sensor, execute the runs it requests, tick the completions sensor, execute
those runs, and print where the composed video and thumbnail are. `make dev` opens the same
instance in the UI afterwards.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from zencourt_pipeline.config import Settings
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.domain import CLIP_SECONDS_DEFAULT, Orientation

SAMPLE_PACKAGE = "zencourt_pipeline.sample_listing"
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class DemoResult:
    batch_id: str
    status: str
    video_path: Path | None
    thumbnail_path: Path | None
    seconds: float
    outputs: tuple[tuple[str, str, Path | None], ...] = ()  # every output: (name, status, local file)
    clips: tuple[tuple[str, str, Path | None, Path | None], ...] = ()  # every job: (room, status, clip, thumbnail)
    composed: bool = True  # False: ENABLE_FINAL_COMPOSITION is off, the clips are the result (clip-first)

    @property
    def succeeded(self) -> bool:
        """The batch completed with what it was to make: the video, or with composition off every clip."""
        if self.status != "completed":
            return False
        if self.composed:
            return self.video_path is not None
        return bool(self.clips) and all(path is not None for _, _, path, _ in self.clips)


def ensure_dagster_home(settings: Settings) -> Path:
    """The demo's Dagster home: DAGSTER_HOME, else `<ZENCOURT_DATA_DIR>/dagster_home` (created)."""
    home = Path(settings.dagster_home or settings.data_dir / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    return home


def insert_sample_batch(
    db: AppDatabase, storage, *, orientation: Orientation | None = None, batch_id: str | None = None
) -> str:
    """Upload the packaged sample photos to storage and insert them as a pending batch."""
    folder = resources.files(SAMPLE_PACKAGE)
    listing = json.loads(folder.joinpath("listing.json").read_text())
    batch_id = batch_id or "demo-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    jobs = []
    for index, job in enumerate(listing["jobs"]):
        key = f"samples/{listing['listing_id']}/{job['file']}"
        if not storage.exists(key):
            with resources.as_file(folder.joinpath(job["file"])) as path:
                storage.put_file(key, path, "image/jpeg")
        jobs.append(
            {
                "id": f"{batch_id}-{index + 1}",
                "sort_order": index,
                "room_name": job.get("room_name"),
                "image_url": storage.uri(key),
                "prompt": job.get("prompt"),
                "duration_seconds": job.get("duration_seconds", CLIP_SECONDS_DEFAULT),
            }
        )
    db.batches.insert_batch(
        {
            "id": batch_id,
            "listing_id": listing["listing_id"],
            "orientation": orientation or listing.get("orientation", Orientation.LANDSCAPE),
            "title": listing.get("title"),
            "template": listing.get("template"),
        },
        jobs,
    )
    return batch_id


class ProgressPrinter(threading.Thread):
    """Prints every job and batch status change it sees in the database."""

    def __init__(self, db: AppDatabase, batch_id: str, out=print, interval: float = 0.5):
        super().__init__(daemon=True)
        self.db, self.batch_id, self.out, self.interval = db, batch_id, out, interval
        self.stop_event = threading.Event()
        self.seen: dict[str, str] = {}
        self.started = time.monotonic()

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.poll()
            self.stop_event.wait(self.interval)
        self.poll()

    def poll(self) -> None:
        batch = self.db.batches.get_batch(self.batch_id)
        jobs = self.db.batches.get_jobs(self.batch_id)
        elapsed = time.monotonic() - self.started
        done = sum(job.terminal for job in jobs)
        for job in jobs:
            state = f"{job.status}:{job.provider}"
            if self.seen.get(job.id) != state:
                self.seen[job.id] = state
                extra = f" via {job.provider}" if job.provider else ""
                error = f" ({job.error_code}: {job.error_message})" if job.error_code else ""
                self.out(f"[{elapsed:6.1f}s] {done}/{len(jobs)} clip {job.room_name or job.id}: {job.status}{extra}{error}")
        if batch and self.seen.get("__batch__") != batch.status:
            self.seen["__batch__"] = batch.status
            self.out(f"[{elapsed:6.1f}s] batch {self.batch_id}: {batch.status}")


def tick_and_run(defs, instance, sensor_name: str, resources_map: dict, out=print) -> int:
    """Evaluate one sensor tick, apply its partition requests, execute its runs in-process."""
    import dagster as dg

    sensor = defs.resolve_sensor_def(sensor_name)
    # opened as a context: resources with a lifecycle (the generators) are set up and torn down
    with dg.build_sensor_context(instance=instance, resources=resources_map, definitions=defs) as context:
        result = sensor(context)
    if not isinstance(result, dg.SensorResult) or not result.run_requests:
        return 0
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    launched = 0
    for request in result.run_requests:
        # like the daemon: a run key that already produced a run produces no second one
        if request.run_key and instance.get_runs(
            filters=dg.RunsFilter(tags={"dagster/run_key": request.run_key}), limit=1
        ):
            continue
        job = defs.resolve_job_def(request.job_name or sensor.job_name)  # a sensor of several jobs names it
        out(f"sensor {sensor_name}: run {job.name} for partition {request.partition_key}")
        job.execute_in_process(
            instance=instance,
            partition_key=request.partition_key,
            tags={**request.tags, "dagster/run_key": request.run_key or ""},
            run_config=QUIET_LOGS,
            raise_on_error=False,
        )
        launched += 1
    return launched


SENSOR_ORDER = ("pending_batches_sensor", "clip_completions_sensor")  # the latter polls, then requests


def drive_batch(defs, instance, batch_id: str, *, timeout: float = 600, out=print, idle_sleep: float = 1.0) -> str:
    """Tick the sensors in order, executing the runs they request, until the batch is terminal.

    What the daemon does, in this process: returns the batch's final status.
    """
    resources_map = defs.resources
    db = resources_map["app_db"].get()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = db.batches.get_batch(batch_id).status
        if status.terminal:
            return status
        launched = sum(tick_and_run(defs, instance, name, resources_map, out) for name in SENSOR_ORDER)
        if not launched:
            time.sleep(idle_sleep)
    return db.batches.get_batch(batch_id).status


def run_demo(
    settings: Settings | None = None, *, orientation: Orientation | None = None, timeout: float = 600, out=print
) -> DemoResult:
    import dagster as dg

    from zencourt_pipeline.definitions import build_definitions

    settings = settings or Settings.from_env()
    home = ensure_dagster_home(settings)
    started = time.monotonic()
    defs = build_definitions(settings)
    db = defs.resources["app_db"].get()
    db.db.upgrade()  # start-up on a possibly fresh database: resources never migrate
    storage = defs.resources["storage"].get()
    batch_id = insert_sample_batch(db, storage, orientation=orientation)
    out(f"inserted batch {batch_id} (database {settings.resolved_database_url}, providers {','.join(settings.generation_providers)})")
    instance = dg.DagsterInstance.from_config(str(home))
    printer = ProgressPrinter(db, batch_id, out)
    printer.start()
    try:
        drive_batch(defs, instance, batch_id, timeout=timeout - (time.monotonic() - started), out=out)
    finally:
        printer.stop_event.set()
        printer.join()
    batch = db.batches.get_batch(batch_id)
    video = _local_path(storage, batch.video_url)
    thumbnail = _local_path(storage, batch.thumbnail_url)
    outputs = tuple((o.spec.name, str(o.status), _local_path(storage, o.video_url)) for o in db.outputs.get_outputs(batch_id))
    clips = tuple(
        (job.room_name or job.id, str(job.status), _local_path(storage, job.video_url), _local_path(storage, job.thumbnail_url))
        for job in db.batches.get_jobs(batch_id)
    )  # fmt: skip
    return DemoResult(
        batch_id, batch.status, video, thumbnail, time.monotonic() - started, outputs, clips,
        composed=settings.enable_final_composition,
    )  # fmt: skip


def _local_path(storage, uri: str | None) -> Path | None:
    if not uri:
        return None
    key = storage.key_from_uri(uri)
    return storage.path(key) if key and hasattr(storage, "path") else None
