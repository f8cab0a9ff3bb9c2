"""The capacity model of `make bench` (issue 13 point 5): the CPU-seconds one batch costs, stage by
stage, and the batches per core-hour they allow. `docs/scaling.md` turns these lines into the table.

One batch of the default request goes through the pipeline's own stage functions in this process,
on the embedded defaults (`Settings` with a temporary ZENCOURT_DATA_DIR: SQLite, local storage, the
local generator): six sample-listing photos x 5 s, the four default outputs (16:9 and 9:16 at 1080p,
branded and MLS-unbranded), the `showcase` template with every listing fact and an agent name set
(so the unbranded cuts differ from the branded ones and all four are rendered, none copied).

Every figure is CPU time (user + system) of this process and of its children (ffmpeg) over the
stage: a busy machine stretches wall time, not these.

  capacity_cpu_s_intake          `take_in_batch`: validation, photos fetched, stored, inspected
  capacity_cpu_s_generate_local  `submit_batch` with the local generator (the Ken Burns renders). A
                                 paid provider renders remotely: its submission costs milliseconds,
                                 so this line is NOT in capacity_cpu_s_batch
  capacity_cpu_s_collect         `collect_outputs`: the providers' clips stored (a paid provider's
                                 output is downloaded here; locally it is a file copy)
  capacity_cpu_s_normalize       `normalize_batch`: clips normalized, published, inspected, thumbnails
  capacity_cpu_s_compose         `compose_batch` without its storage puts: the four renditions, the
                                 platform checks, the published video's inspection
  capacity_cpu_s_upload          the storage puts of `compose_batch` (the outputs and thumbnails).
                                 Local storage: a file copy. B2 is I/O-bound: boto3 hashes and
                                 encrypts the bytes (capacity_cpu_s_upload_b2_hashing: SHA-256 + MD5
                                 of capacity_upload_mb, measured) and waits on the network
  capacity_stored_objects / capacity_stored_mb  what the batch left in storage (photos, provider
                                 clips, normalized clips, thumbnails, the outputs): B2 sizing
  capacity_cpu_s_run_startup     one Dagster run process: a new interpreter loading the code location
                                 (`build_definitions` on the embedded defaults, both batch jobs
                                 resolved), then a three-step run of no-op assets on a SQLite
                                 instance (the framework's events and step launches); median of 2
  capacity_runs_per_batch        2: `batch_intake_job` and `batch_compose_job` (a clip-first clips
                                 run, when a batch's clips arrive apart, is one more start-up)
  capacity_cpu_s_batch           intake + collect + normalize + compose + upload + runs x start-up
  capacity_batches_per_core_hour 3600 / capacity_cpu_s_batch
  capacity_cpu_s_batch_local / capacity_batches_per_core_hour_local  the same with the local
                                 generator's renders added (an offline deployment)
  capacity_cpu_s_compose_one_720p / capacity_batches_per_core_hour_one_720p  the same batch asking
                                 for one 720p landscape output (`render_renditions` of that one
                                 output on the same normalized clips; its upload is not counted)

Not counted: the daemon and the sensors (per tick, not per batch), the HTTP service, Postgres.
`ZENCOURT_BENCH_QUICK=1` takes two 2 s clips asking for the one 720p output (so compose is also the
one-720p figure): the figures then mean nothing.
`python -m zencourt_pipeline.bench.capacity` runs this section alone.
"""

from __future__ import annotations

import hashlib
import resource
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from zencourt_pipeline.domain import DEFAULT_OUTPUTS, ListingFacts, OutputShape, OutputSpec, outputs_json

SAMPLE_PACKAGE = "zencourt_pipeline.sample_listing"
TEMPLATE = "showcase"
FACTS = ListingFacts(
    address="12 Harbor View Lane", price=1_250_000, beds=4, baths=2.5, sqft=2_150, agent_name="Jordan Avery"
)
ONE_720P = OutputSpec(shape=OutputShape.LANDSCAPE, width=1280, height=720, branded=True)
RUNS_PER_BATCH = 2  # batch_intake_job + batch_compose_job


@dataclass(frozen=True)
class CapacityConfig:
    """The batch measured: clips and their length, the outputs asked for, run start-up repeats."""

    clips: int
    clip_s: int
    outputs: tuple[OutputSpec, ...] | None  # None: the default request (nothing stored)
    startup_repeats: int


FULL_CAPACITY = CapacityConfig(clips=6, clip_s=5, outputs=None, startup_repeats=2)
QUICK_CAPACITY = CapacityConfig(clips=2, clip_s=2, outputs=(ONE_720P,), startup_repeats=1)


def cpu_seconds(fn: Callable[[], Any]) -> tuple[float, Any]:
    """User + system seconds of this process and its waited-for children (ffmpeg) over fn(), and
    fn's result."""
    s0, c0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    result = fn()
    s1, c1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(b.ru_utime - a.ru_utime + b.ru_stime - a.ru_stime for a, b in ((s0, s1), (c0, c1)))
    return cpu, result


class MeteredStorage:
    """A `Storage` that adds up the CPU seconds (of the calling thread) and the bytes of its puts;
    everything else goes to the wrapped storage."""

    def __init__(self, inner: Any):
        self._inner = inner
        self.cpu_s = 0.0
        self.bytes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> str:
        """The wrapped put, metered."""
        t0 = resource.getrusage(resource.RUSAGE_THREAD)
        uri = self._inner.put_file(key, path, content_type)
        t1 = resource.getrusage(resource.RUSAGE_THREAD)
        self.cpu_s += t1.ru_utime - t0.ru_utime + t1.ru_stime - t0.ru_stime
        self.bytes += Path(path).stat().st_size
        return uri

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> str:
        """The wrapped put, metered (through put_file, as `Storage.put_bytes` does)."""
        with tempfile.NamedTemporaryFile(suffix=Path(key).suffix) as handle:
            handle.write(data)
            handle.flush()
            return self.put_file(key, Path(handle.name), content_type)


def insert_capacity_batch(db: Any, storage: Any, cfg: CapacityConfig, batch_id: str) -> str:
    """The sample listing's first `cfg.clips` photos uploaded (as the web app does) and inserted as
    a pending batch of `cfg.clip_s` s clips asking for `cfg.outputs` (None: the default request)."""
    import json

    folder = resources.files(SAMPLE_PACKAGE)
    listing = json.loads(folder.joinpath("listing.json").read_text())
    jobs = []
    for index, job in enumerate(listing["jobs"][: cfg.clips]):
        key = f"uploads/{batch_id}/{job['file']}"
        with resources.as_file(folder.joinpath(job["file"])) as path:
            storage.put_file(key, path, "image/jpeg")
        jobs.append({
            "id": f"{batch_id}-{index + 1}", "sort_order": index, "room_name": job.get("room_name"),
            "image_url": storage.uri(key), "prompt": job.get("prompt"), "duration_seconds": cfg.clip_s,
        })  # fmt: skip
    batch = {
        "id": batch_id, "listing_id": listing["listing_id"], "orientation": "landscape", "title": listing["title"],
        "template": TEMPLATE, "facts": FACTS.to_json(),
    }  # fmt: skip
    if cfg.outputs is not None:
        batch["outputs"] = outputs_json(cfg.outputs)
    db.batches.insert_batch(batch, jobs)
    return batch_id


@dataclass(frozen=True)
class StageFigures:
    """CPU seconds of each stage of one batch, and what it published."""

    intake: float
    generate_local: float
    collect: float
    normalize: float
    compose: float
    upload: float
    upload_bytes: int
    outputs_rendered: int
    compose_one_720p: float
    stored_objects: int
    stored_bytes: int


def measure_stages(cfg: CapacityConfig, data_dir: Path) -> StageFigures:
    """One batch through the stage functions on the embedded defaults under `data_dir`."""
    from zencourt_pipeline.config import Settings
    from zencourt_pipeline.db.database import AppDatabase
    from zencourt_pipeline.defs.resources import build_resources
    from zencourt_pipeline.pipeline.collect import collect_outputs
    from zencourt_pipeline.pipeline.composition import CompositionOutcome, compose_batch
    from zencourt_pipeline.pipeline.generation import submit_batch
    from zencourt_pipeline.pipeline.intake import IntakeStatus, take_in_batch
    from zencourt_pipeline.pipeline.normalize import normalize_batch
    from zencourt_pipeline.pipeline.quota import QuotaLimits

    settings = Settings(data_dir=data_dir, generation_providers=["local"])
    res = build_resources(settings, env_refs=False)
    db = AppDatabase.connect(settings.resolved_database_url)
    db.db.upgrade()
    storage = res["storage"].get()
    generators = res["generators"]
    chain = generators.chain(db)
    quota = QuotaLimits()
    batch_id = insert_capacity_batch(db, storage, cfg, "capacity-1")

    def stage(name: str, fn: Callable[[Path], Any]) -> tuple[float, Any]:
        work = data_dir / "work" / name
        work.mkdir(parents=True)
        return cpu_seconds(lambda: fn(work))

    def batch():
        return db.batches.get_batch(batch_id), db.batches.get_jobs(batch_id)

    try:
        intake, report = stage("intake", lambda w: take_in_batch(
            db, storage, *batch(), w, generators.fetch_policy(), quota=quota, time_to_narration=True))  # fmt: skip
        if report.status != IntakeStatus.TAKEN_IN:
            raise SystemExit(f"capacity: intake ended {report.status}: {report.error_message}")
        generate, _ = stage("generate", lambda w: submit_batch(db, storage, chain, *batch(), w, quota=quota))
        collect, _ = stage("collect", lambda w: collect_outputs(db, storage, chain, *batch(), w, quota=quota))
        normalize, _ = stage("normalize", lambda w: normalize_batch(db, storage, *batch(), w))
        metered = MeteredStorage(storage)
        compose, composed = stage("compose", lambda w: compose_batch(db, metered, *batch(), w))  # type: ignore[arg-type]
        if composed.status != CompositionOutcome.COMPLETED:
            raise SystemExit(f"capacity: composition ended {composed.status}: {composed.error}")
        if cfg.outputs == (ONE_720P,):  # the batch asked for that one output: compose is its figure
            one_720p = compose - metered.cpu_s
        else:
            one_720p, _ = stage("one_720p", lambda w: _render_one_720p(db, storage, batch_id, w))
        stored = [p for p in settings.local_storage_root.rglob("*") if p.is_file()]
    finally:
        chain.close()
        db.db.dispose()
    return StageFigures(
        intake=intake, generate_local=generate, collect=collect, normalize=normalize,
        compose=compose - metered.cpu_s, upload=metered.cpu_s, upload_bytes=metered.bytes,
        outputs_rendered=sum(1 for r in composed.outputs if not r.copied), compose_one_720p=one_720p,
        stored_objects=len(stored), stored_bytes=sum(p.stat().st_size for p in stored),
    )  # fmt: skip


def _render_one_720p(db: Any, storage: Any, batch_id: str, work: Path) -> list:
    """The batch's normalized clips rendered as one 720p landscape output (the compose step's
    rendering, as a batch asking for that one output would make it)."""
    from zencourt_pipeline.domain import parse_facts
    from zencourt_pipeline.media.listing import clip_input
    from zencourt_pipeline.pipeline.intake import listing_clip
    from zencourt_pipeline.pipeline.renditions import render_renditions

    batch = db.batches.get_batch(batch_id)
    clips = []
    for job in db.batches.get_jobs(batch_id):
        path = storage.get_file(storage.key_from_uri(job.video_url), work / f"{job.id}.mp4")
        clips.append(clip_input(listing_clip(job), path))
    template = db.templates.resolve_template(batch.workspace_id, batch.template)
    return render_renditions(
        clips, [ONE_720P], ONE_720P, work / "out", title=batch.title, template=template, facts=parse_facts(batch.facts)
    )


# One Dagster run process: the code location loaded as a run worker loads it, then a run of three
# no-op steps on a SQLite instance (`init` makes the instance's tables first, unmeasured).
_RUN_PROCESS = r"""
import sys
from pathlib import Path
import dagster as dg
from zencourt_pipeline.config import Settings
from zencourt_pipeline.definitions import build_definitions

data, mode = Path(sys.argv[1]), sys.argv[2]
repo = build_definitions(Settings(data_dir=data, generation_providers=["local"])).get_repository_def()
jobs = [repo.get_job(name) for name in ("batch_intake_job", "batch_compose_job")]

@dg.asset
def first(): return None

@dg.asset(deps=[first])
def second(): return None

@dg.asset(deps=[second])
def third(): return None

with dg.DagsterInstance.local_temp(str(data / "dagster_home")) as instance:
    if mode == "run":
        assert dg.materialize([first, second, third], instance=instance).success
"""


def run_startup_cpu_s(work: Path, repeats: int) -> float:
    """CPU seconds of one run process (median of `repeats`), children included."""
    (work / "dagster_home").mkdir(parents=True, exist_ok=True)

    def process(mode: str) -> None:
        subprocess.run(
            [sys.executable, "-c", _RUN_PROCESS, str(work), mode], check=True, capture_output=True, timeout=300
        )

    process("init")
    return statistics.median(cpu_seconds(lambda: process("run"))[0] for _ in range(repeats))


def b2_hashing_cpu_s(size: int) -> float:
    """CPU seconds of SHA-256 and MD5 over `size` bytes: what boto3 computes of an upload's body."""
    chunk = b"\x5a" * (1 << 20)

    def digest() -> None:
        sha, md5 = hashlib.sha256(), hashlib.md5()
        left = size
        while left > 0:
            piece = chunk[: min(left, len(chunk))]
            sha.update(piece)
            md5.update(piece)
            left -= len(piece)

    return cpu_seconds(digest)[0]


def capacity_figures(cfg: CapacityConfig, work: Path, *, emit: Callable, note: Callable) -> dict[str, float]:
    """Measure, print every figure with `emit` (`name: value`), and return them."""
    outputs = len(cfg.outputs or DEFAULT_OUTPUTS)
    note(f"capacity: one {cfg.clips} x {cfg.clip_s} s batch, {outputs} outputs, through the stage functions")
    stages = measure_stages(cfg, work / "data")
    note("capacity: Dagster run process start-up")
    startup = run_startup_cpu_s(work / "run", cfg.startup_repeats)
    batch = stages.intake + stages.collect + stages.normalize + stages.compose + stages.upload
    batch += RUNS_PER_BATCH * startup
    one_720p = batch - stages.compose - stages.upload + stages.compose_one_720p
    figures: dict[str, float] = {
        "capacity_clips": cfg.clips,
        "capacity_outputs": outputs,
        "capacity_outputs_rendered": stages.outputs_rendered,
        "capacity_cpu_s_intake": stages.intake,
        "capacity_cpu_s_generate_local": stages.generate_local,
        "capacity_cpu_s_collect": stages.collect,
        "capacity_cpu_s_normalize": stages.normalize,
        "capacity_cpu_s_compose": stages.compose,
        "capacity_cpu_s_upload": stages.upload,
        "capacity_upload_mb": stages.upload_bytes / 1e6,
        "capacity_cpu_s_upload_b2_hashing": b2_hashing_cpu_s(stages.upload_bytes),
        "capacity_stored_objects": stages.stored_objects,
        "capacity_stored_mb": stages.stored_bytes / 1e6,
        "capacity_cpu_s_run_startup": startup,
        "capacity_runs_per_batch": RUNS_PER_BATCH,
        "capacity_cpu_s_batch": batch,
        "capacity_batches_per_core_hour": 3600 / batch,
        "capacity_cpu_s_batch_local": batch + stages.generate_local,
        "capacity_batches_per_core_hour_local": 3600 / (batch + stages.generate_local),
        "capacity_cpu_s_compose_one_720p": stages.compose_one_720p,
        "capacity_cpu_s_batch_one_720p": one_720p,
        "capacity_batches_per_core_hour_one_720p": 3600 / one_720p,
    }
    for name, value in figures.items():
        emit(name, value)
    return figures


def main() -> None:
    """This section alone (`python -m zencourt_pipeline.bench.capacity`)."""
    from zencourt_pipeline.bench.report import emit, note
    from zencourt_pipeline.config import BenchSettings

    bench = BenchSettings.from_env()
    cfg = QUICK_CAPACITY if bench.quick else FULL_CAPACITY
    with tempfile.TemporaryDirectory(prefix="zc-bench-capacity-", dir=bench.work_dir) as tmp:
        capacity_figures(cfg, Path(tmp), emit=emit, note=note)


if __name__ == "__main__":
    main()
