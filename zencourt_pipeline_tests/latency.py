"""Tail latency of a batch on the production topology (issue 13 point 7), a `make bench` part.

One batch of 6 clips of 5 s through fake Runway (2 s latency) on the production topology
(Postgres, moto as B2, code server, daemon, `zencourt serve`): from the last clip completion
recorded to the batch's video published (the primary output's `output.completed` event: its file
stored, `video_gen_batch.video_url` set, what the web app waits for), and its parts, read from the
app database and the Dagster instance:

- `sensor_wait`: last completion recorded -> the compose run created (the run request's tick);
- `run_startup`: run created -> its first step started (queue, launch, process start, code load);
- `collect`, `normalize`: the two steps' own durations;
- `compose`: the compose step's start -> the primary output published (render, check, upload);
- `between_steps`: the rest (step hand-over, outputs and events).

`all_outputs` is the same tail to every output published (`batch.completed` written: the other
renditions rendered after the primary), printed on its own line.

`python -m zencourt_pipeline_tests.latency [--batches N]` prints `name: value` lines (medians over
N batches run one after another on one topology, the first counted too).
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from zencourt_pipeline.db.clock import as_utc
from zencourt_pipeline_tests.fakes.fal import FakeFal
from zencourt_pipeline_tests.fakes.runway import FakeRunway, RunwayScript
from zencourt_pipeline_tests.fakes.server import RequestRecorder
from zencourt_pipeline_tests.topology import ScratchDatabases, Topology, e2e_storage, start_s3

CLIPS, CLIP_SECONDS, PROVIDER_LATENCY_S = 6, 5, 2.0
STEPS = {"collect": "generated_clips", "normalize": "normalized_clips", "compose": "composed_video"}


def tail_parts(topo: Topology, batch_id: str) -> dict[str, float]:
    """The batch's tail latency and its parts, in seconds (module docstring)."""
    import dagster as dg

    with topo.db.db.engine.connect() as conn:
        last_completion = conn.execute(sa.text(
            "SELECT max(received_at) FROM generation_completions WHERE batch_id = :b"), {"b": batch_id}).scalar()
        published = conn.execute(sa.text(
            "SELECT min(created_at) FROM webhook_outbox WHERE batch_id = :b AND event = 'batch.completed'"),
            {"b": batch_id}).scalar()
        outputs = conn.execute(sa.text(
            "SELECT created_at, body FROM batch_events WHERE batch_id = :b AND event = 'output.completed' ORDER BY id"),
            {"b": batch_id}).all()
    primary = [row.created_at for row in outputs if json.loads(row.body).get("primary")]
    last, done = as_utc(last_completion).timestamp(), as_utc(published).timestamp()
    video = as_utc(primary[0]).timestamp() if primary else done  # held for the batch's end (a failed profile)
    with topo.instance() as instance:
        records = instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": batch_id}))
        published_by = []  # the runs whose compose step succeeded: the last one published the video
        for record in records:
            steps = {s.step_key: s for s in instance.get_run_step_stats(record.dagster_run.run_id)}
            compose = steps.get(STEPS["compose"])
            if compose is not None and compose.status.value == "SUCCESS":  # StepEventStatus
                published_by.append((record.create_timestamp.timestamp(), record, steps))
        if not published_by:
            raise RuntimeError(f"no run composed {batch_id}: " + ", ".join(
                f"{r.dagster_run.job_name} {r.dagster_run.status} {r.dagster_run.tags}" for r in records))
        _, record, steps = max(published_by, key=lambda item: item[0])
    created = record.create_timestamp.timestamp()
    first_step = min(s.start_time for s in steps.values() if s.start_time)
    parts = {name: steps[key].end_time - steps[key].start_time for name, key in STEPS.items()}
    parts["compose"] = video - steps[STEPS["compose"]].start_time
    figures = {"tail_latency": video - last, "sensor_wait": created - last, "run_startup": first_step - created, **parts}
    # the rest: between the steps (outputs, events, checks) and inside compose after the publish
    figures["between_steps"] = figures["tail_latency"] - sum(v for k, v in figures.items() if k != "tail_latency")
    figures["all_outputs"] = done - last
    return figures


def _when_recorded(read, timeout: float = 60.0):
    """The batch is published inside the compose step: its run's events land a moment later."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return read()
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def run_latency(workdir: Path, batches: int = 1) -> dict[str, float]:
    databases = ScratchDatabases("zc_latency")
    moto, endpoint = start_s3()
    storage = e2e_storage(endpoint)
    topo = None
    try:
        with FakeRunway() as runway, FakeFal() as fal, RequestRecorder() as receiver:
            topo = Topology(workdir, databases.urls[0], databases.urls[1], receiver.url, endpoint, extra_env={
                "GENERATION_PROVIDERS": "runway,fal",
                "RUNWAY_API_URL": runway.url, "RUNWAY_API_KEY": runway.api_key,
                "FAL_QUEUE_URL": fal.url, "FAL_KEY": fal.key, "FAL_JWKS_URL": fal.jwks_url,
                "MEDIA_ALLOWED_PRIVATE_HOSTS": "127.0.0.1",
            })
            topo.env["FAL_WEBHOOK_URL"] = f"http://127.0.0.1:{topo.service_port}/webhooks/fal"
            topo.start_all()
            from zencourt_pipeline_tests.defs.conftest import write_photo

            photo_key = "uploads/latency/photo.jpg"
            storage.put_file(photo_key, write_photo(workdir / "photo.jpg"), "image/jpeg")
            samples: list[dict[str, float]] = []
            for n in range(batches):
                batch_id = f"tail-{n:02d}"
                for i in range(CLIPS):
                    runway.scripts.for_prompt(f"{batch_id}:{i} push-in", RunwayScript(latency=PROVIDER_LATENCY_S))
                topo.db.batches.insert_batch(
                    {"id": batch_id, "listing_id": f"L-{batch_id}", "title": "Tail Latency Lane"},
                    [{"id": f"{batch_id}-{i}", "sort_order": i, "room_name": f"Room {i}", "image_url": storage.uri(photo_key),
                      "duration_seconds": CLIP_SECONDS, "prompt": f"{batch_id}:{i} push-in"} for i in range(CLIPS)],
                )
                status = topo.wait_for_status(batch_id, {"completed", "failed", "canceled"}, timeout=600)
                if status != "completed":
                    raise RuntimeError(f"batch {batch_id} ended {status}:\n{topo.db_state(batch_id)}\n{topo.log_tails()}")
                samples.append(_when_recorded(lambda b=batch_id: tail_parts(topo, b)))
            return {name: round(statistics.median(s[name] for s in samples), 2) for name in samples[0]}
    finally:
        if topo is not None:
            topo.stop_all()
        moto.stop()
        databases.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=3)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="zencourt-latency-") as tmp:
        figures = run_latency(Path(tmp), args.batches)
    print(f"batch_tail_latency_s: {figures.pop('tail_latency')}")
    all_outputs = figures.pop("all_outputs")
    for name, value in figures.items():
        print(f"batch_tail_{name}_s: {value}")
    print(f"batch_tail_all_outputs_s: {all_outputs}")
    print(f"batch_tail_bench_wall_s: {time.monotonic() - started:.1f}")


if __name__ == "__main__":
    main()
