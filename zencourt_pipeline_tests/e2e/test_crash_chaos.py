"""Issue 6 crash chaos: SIGKILL at several points of a batch on the production topology, with
the fake Runway as the paid provider. Resumed by the code server (marks the dead run failed)
and run_retries (re-runs crashed runs from the failed step), the batch completes, the fake
counts exactly one created task per job, and every object under a final key is valid.

The kill during submission lands after the fake created the task and before it answered (issue
11 defect 4: the old fake created nothing when the client hung up, which is what made "pays
once" hold). The resumed run cannot know whether that create was paid, so it neither re-sends
it nor falls back: the job fails PROVIDER_ANSWER_LOST and its task is on the ledger as possibly
orphaned; the other jobs complete."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from zencourt_pipeline.media.ffmpeg import probe
from zencourt_pipeline_tests.e2e.test_production_topology import insert_batch, moto_endpoint  # noqa: F401
from zencourt_pipeline_tests.fakes.runway import FakeRunway, RunwayScript
from zencourt_pipeline_tests.fakes.server import RequestRecorder
from zencourt_pipeline_tests.topology import Topology, e2e_storage

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.chaos]  # `make soak` runs it


def wait_until(predicate, timeout: float, what: str, topo: Topology) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{topo.log_tails()}")


def created_per_job(runway: FakeRunway, batch_id: str) -> Counter:
    counts: Counter = Counter()
    for task in runway.tasks.values():
        prompt = task.body.get("promptText", "")
        if prompt.startswith(f"{batch_id}:"):
            counts[prompt.split(" ")[0]] += 1
    return counts


def insert(topo, batch_id, n=3):
    insert_batch(topo, batch_id, n)
    for index in range(n):
        topo.db.batches.update_job(f"{batch_id}-{index}", prompt=f"{batch_id}:{index} slow push-in")


def assert_final_objects_valid(topo, batch_id):
    keys = [key for key in topo.storage.list_keys(f"batches/{batch_id}/") if key.endswith(".mp4")]
    assert any("/video/" in key for key in keys)
    for key in keys:
        local = topo.tmp / "check.mp4"
        topo.storage.get_file(key, local)
        info = probe(local, count_frames=True)
        assert info.codec == "h264" and info.frame_count and info.frame_count > 0, key


def test_sigkill_at_submission_waiting_and_composition_pays_once_and_completes(tmp_path, postgres_database, moto_endpoint):  # noqa: F811

    with FakeRunway() as runway, RequestRecorder() as receiver:
        topo = Topology(tmp_path, postgres_database(), postgres_database(), receiver.url, moto_endpoint, extra_env={
            "GENERATION_PROVIDERS": "runway", "RUNWAY_API_URL": runway.url, "RUNWAY_API_KEY": runway.api_key,
            "MEDIA_ALLOWED_PRIVATE_HOSTS": "127.0.0.1",
        })
        topo.storage = e2e_storage(moto_endpoint)
        try:
            topo.start_all()

            # 1. during submission: the second create has created its task at Runway, and its answer
            # is still held back, when the run worker dies
            runway.create_delay = 6.0  # wide enough to land the kill inside it on a loaded machine
            insert(topo, "chaos-submit")
            wait_until(lambda: runway.counts["create"] >= 1, 120, "the first create", topo)
            workers = topo.run_workers()  # found now: scanning /proc on a loaded machine takes a while
            assert workers, topo.describe_processes()
            wait_until(lambda: runway.counts["create"] >= 2, 60, "the second create", topo)
            topo.kill_run_workers(workers)
            runway.create_delay = 0.0
            assert topo.wait_for_status("chaos-submit", {"completed", "failed"}) == "completed"
            (topo.logs / "chaos-submit-state.txt").write_text(
                f"{runway.counts}\n{topo.db_state('chaos-submit')}\n"
                + "\n".join(f"{t.id} {t.created_at} {t.body.get('promptText')}" for t in runway.tasks.values()))
            assert created_per_job(runway, "chaos-submit") == Counter({f"chaos-submit:{i}": 1 for i in range(3)}), (
                runway.counts, topo.db_state("chaos-submit"))
            # the killed create's task exists at Runway: never re-created, never sent to another provider
            lost = [t for t in topo.db.ledger.tasks_for_batch("chaos-submit") if t.possibly_orphaned]
            assert len(lost) == 1 and lost[0].cost_usd and lost[0].task_id is None, topo.db_state("chaos-submit")
            jobs = {job.id: job for job in topo.db.batches.get_jobs("chaos-submit")}
            assert jobs[lost[0].job_id].error_code == "PROVIDER_ANSWER_LOST"
            assert sorted(job.status for job in jobs.values()) == ["completed", "completed", "failed"]
            assert_final_objects_valid(topo, "chaos-submit")

            # 2. while waiting on the provider: the daemon (sensors, reconciler) dies
            runway.scripts.default = RunwayScript(hold=True)
            insert(topo, "chaos-wait")
            wait_until(lambda: sum(created_per_job(runway, "chaos-wait").values()) == 3, 120, "three creates", topo)
            topo.kill("daemon")
            for task_id, task in list(runway.tasks.items()):
                if task.body.get("promptText", "").startswith("chaos-wait:"):
                    runway.release(task_id)
            runway.scripts.default = RunwayScript()
            topo.start_daemon()
            assert topo.wait_for_status("chaos-wait", {"completed", "failed"}) == "completed"
            assert created_per_job(runway, "chaos-wait") == Counter({f"chaos-wait:{i}": 1 for i in range(3)})

            # 3. during composition: the compose run dies once the generated clips are stored
            insert(topo, "chaos-compose")
            wait_until(
                lambda: all(job.raw_clip_key for job in topo.db.batches.get_jobs("chaos-compose")), 180, "stored clips", topo
            )
            wait_until(lambda: topo.kill_run_workers() >= 1, 30, "the compose run worker", topo)
            assert topo.wait_for_status("chaos-compose", {"completed", "failed"}) == "completed"
            assert created_per_job(runway, "chaos-compose") == Counter({f"chaos-compose:{i}": 1 for i in range(3)})
            assert_final_objects_valid(topo, "chaos-compose")
        finally:
            topo.stop_all()
