"""Issue 13: the production topology on the Celery executor (ZENCOURT_EXECUTOR=celery), RabbitMQ as
the broker (a throwaway node), two `media` workers and one `providers` worker, each with a data
directory of its own (storage is B2 over moto: nothing shared on disk but DAGSTER_HOME's config).

A `media` worker is SIGKILLed in the middle of a batch's normalize: the step runs again on the
other worker, the batch completes with its webhook, every step ran in a Celery worker of its
kind's queue, every job has one paid task, and every object under a final key is a whole video.
Then, the broker dies while a step waits in its queue with no worker to take it,
and comes back: the queued step is not lost, and the batch completes."""

from __future__ import annotations

import re
import time

import pytest
import sqlalchemy as sa

from zencourt_pipeline_tests.broker import ThrowawayRabbit, rabbitmq_available
from zencourt_pipeline_tests.e2e.test_crash_chaos import assert_final_objects_valid
from zencourt_pipeline_tests.e2e.test_production_topology import (  # noqa: F401 - fixture
    batch_runs,
    insert_batch,
    moto_endpoint,
    webhook_events,
)
from zencourt_pipeline_tests.fakes.server import RequestRecorder
from zencourt_pipeline_tests.topology import Topology, e2e_storage

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.postgres,
    pytest.mark.skipif(not rabbitmq_available(), reason="Debian's rabbitmq-server is not installed (make test installs it)"),
]


@pytest.fixture
def celery_topology(tmp_path, postgres_database, moto_endpoint):  # noqa: F811 - the imported fixture
    rabbit = ThrowawayRabbit(tmp_path)
    rabbit.start()
    with RequestRecorder() as receiver:
        dagster_url = postgres_database()
        env = {"MEDIA_ALLOWED_PRIVATE_HOSTS": "127.0.0.1", "ZENCOURT_EXECUTOR": "celery",
               "ZENCOURT_CELERY_BROKER_URL": rabbit.url}  # fmt: skip
        topo = Topology(tmp_path, postgres_database(), dagster_url, receiver.url, moto_endpoint, extra_env=env)
        topo.receiver, topo.rabbit = receiver, rabbit
        topo.dagster_db = sa.create_engine(dagster_url)
        topo.storage = e2e_storage(moto_endpoint)
        try:
            topo.start_all()
            topo.start_worker("media-a", "media")
            topo.start_worker("media-b", "media")
            topo.start_worker("providers-a", "providers", concurrency=4)
            yield topo
        finally:
            topo.stop_all()
            topo.dagster_db.dispose()
            rabbit.kill()  # a throwaway node: nothing to shut down cleanly


def celery_steps(topo: Topology, batch_id: str) -> list[tuple[str, str]]:
    """(step key, worker name) of every step of the batch's runs that a Celery worker executed,
    from the workers' engine events ("Executing steps ... in celery worker") in the event log."""
    run_ids = [run_id for run_id, _ in batch_runs(topo, batch_id)]
    with topo.dagster_db.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT event FROM event_logs WHERE run_id = ANY(:runs) AND dagster_event_type = 'ENGINE_EVENT' "
                    "AND event LIKE '%in celery worker%' ORDER BY id"), {"runs": run_ids}
        ).scalars().all()  # fmt: skip
    steps = []
    for row in rows:
        step = row.split("Executing steps ", 1)[1].split(" in celery worker", 1)[0]
        worker = re.search(r"((?:media|providers)-[a-z0-9]+)@", row)  # the worker's hostname, <name>@<host>
        steps.append((step, worker.group(1) if worker else "?"))
    return steps


def wait_for(predicate, timeout: float, what: str, topo: Topology, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}\n{topo.log_tails()}")


def test_batches_run_on_celery_workers_survive_a_media_worker_kill_and_a_broker_restart(celery_topology):
    topo = celery_topology
    # 1. SIGKILL the media worker running cel-2's normalize: the other one runs the step again,
    # and the batch completes with each step on a worker of its queue
    insert_batch(topo, "cel-2", n=3)
    victim = wait_for(lambda: dict(celery_steps(topo, "cel-2")).get("normalized_clips"), 300, "cel-2's normalize", topo)
    topo.kill(victim)
    assert topo.wait_for_status("cel-2", {"completed", "failed"}, timeout=300) == "completed"
    steps = celery_steps(topo, "cel-2")
    normalizers = [worker for step, worker in steps if step == "normalized_clips"]
    survivor = {"media-a": "media-b", "media-b": "media-a"}[victim]
    assert normalizers[0] == victim and normalizers[-1] == survivor, normalizers
    assert dict(steps)["composed_video"] == survivor, steps
    assert [dict(steps).get(step) for step in ("listing_photos", "clip_tasks", "generated_clips")] == ["providers-a"] * 3
    assert [len(topo.db.ledger.tasks_for_job(f"cel-2-{i}")) for i in range(3)] == [1, 1, 1]  # nothing paid twice
    assert_final_objects_valid(topo, "cel-2")
    wait_for(lambda: [body for body, _ in webhook_events(topo, "cel-2") if body["event"] == "batch.completed"], 60,
             "cel-2's batch.completed webhook", topo, every=0.5)

    # 2. no media worker: cel-3's normalize waits in the broker's queue; the broker dies and comes
    # back; a media worker started afterwards takes the step, and the batch completes
    topo.kill(survivor)
    insert_batch(topo, "cel-3", n=2)
    wait_for(lambda: topo.rabbit.queued("media"), 300, "cel-3's normalize step waiting in the media queue", topo, every=0.2)
    topo.rabbit.kill()
    time.sleep(2)
    topo.rabbit.start()
    topo.start_worker("media-c", "media")
    assert topo.wait_for_status("cel-3", {"completed", "failed"}, timeout=300) == "completed"
    assert dict(celery_steps(topo, "cel-3"))["normalized_clips"] == "media-c"
    assert_final_objects_valid(topo, "cel-3")
