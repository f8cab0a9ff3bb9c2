"""Runs whose worker died with its code server are failed (after two checks and a silence), and
only those: a run its server still runs, or whose server cannot answer, is left alone."""

from __future__ import annotations

import time

import dagster as dg
import pytest

from zencourt_pipeline.defs.jobs import batch_intake_job
from zencourt_pipeline.defs.orphans import ORPHAN_CONFIRM_S, ORPHAN_SILENCE_S, find_orphans, launcher_runs_it
from zencourt_pipeline.defs.sensors import intake_failures
from zencourt_pipeline.pipeline.liveness import RunEnd


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def _started(instance, batch_id):
    from zencourt_pipeline.definitions import defs

    job = defs().resolve_job_def(batch_intake_job.name)
    run = instance.create_run_for_job(job, tags={"zencourt/batch_id": batch_id}, status=dg.DagsterRunStatus.STARTED)
    return run


def test_a_run_unknown_to_its_server_is_failed_after_two_checks_and_a_silence(instance):
    dead, alive, unreachable = (_started(instance, b) for b in ("dead", "alive", "unreachable"))
    verdict = {dead.run_id: False, alive.run_id: True, unreachable.run_id: None}
    runs_it = lambda run: verdict[run.run_id]  # noqa: E731 - the code server's answer (the network edge)
    now = time.time() + ORPHAN_SILENCE_S + 1  # every run silent long enough
    orphans, suspects = find_orphans(instance, {}, now, runs_it)
    assert orphans == [] and list(suspects) == [dead.run_id]  # first check: only a suspect
    orphans, suspects = find_orphans(instance, suspects, now + ORPHAN_CONFIRM_S / 2, runs_it)
    assert orphans == [] and list(suspects) == [dead.run_id]  # too soon to confirm
    orphans, suspects = find_orphans(instance, suspects, now + ORPHAN_CONFIRM_S, runs_it)
    assert [run.run_id for run in orphans] == [dead.run_id] and suspects == {}


def test_a_run_that_wrote_an_event_lately_is_not_failed(instance):
    run = _started(instance, "busy")
    instance.report_engine_event("still working", run)
    now = time.time()
    orphans, suspects = find_orphans(instance, {run.run_id: now - 10 * ORPHAN_CONFIRM_S}, now, lambda r: False)
    assert orphans == [] and list(suspects) == [run.run_id]


def test_the_sensor_fails_the_orphan_and_its_batch_gets_an_interrupted_attempt(instance, monkeypatch):
    from zencourt_pipeline.defs import orphans as module

    run = _started(instance, "orphan")
    monkeypatch.setattr(module, "ORPHAN_CONFIRM_S", 0.0)
    monkeypatch.setattr(module, "ORPHAN_SILENCE_S", 0.0)
    monkeypatch.setattr(module, "launcher_runs_it", lambda r: False)
    module.orphaned_runs_sensor(dg.build_sensor_context(instance=instance))
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    assert intake_failures(instance, "orphan") == {RunEnd.INTERRUPTED: 1}


def test_a_server_that_does_not_answer_decides_nothing():
    run = dg.DagsterRun(job_name="j", run_id="r1", tags={".dagster/grpc_info": '{"host": "127.0.0.1", "port": 9}'})
    assert launcher_runs_it(run) is None
    assert launcher_runs_it(dg.DagsterRun(job_name="j", run_id="r2")) is None


def test_a_real_code_server_says_it_does_not_run_a_run_it_never_launched(tmp_path):
    """The question goes to a real `dagster api grpc` over its socket: a run it does not execute
    answers False (an orphan), which is what a restarted code server says of its old runs."""
    import os
    import subprocess
    import sys

    from zencourt_pipeline_tests.topology import free_port

    port = free_port()
    env = {**os.environ, "ZENCOURT_DATA_DIR": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    server = subprocess.Popen(
        [sys.executable, "-m", "dagster", "api", "grpc", "-m", "zencourt_pipeline.definitions", "-h", "127.0.0.1",
         "-p", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        run = dg.DagsterRun(job_name="batch_intake_job", run_id="never-launched",
                            tags={".dagster/grpc_info": f'{{"host": "127.0.0.1", "port": {port}}}'})
        deadline = time.monotonic() + 90
        answer = launcher_runs_it(run)
        while answer is None and time.monotonic() < deadline and server.poll() is None:
            time.sleep(1)
            answer = launcher_runs_it(run)
        assert answer is False
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:  # a loaded machine: the gRPC server's graceful stop is slow
            server.kill()
            server.wait(10)
