"""Issue 16 point 4 on the production topology: `zencourt serve` launches the operator actions
through the real webserver (DAGSTER_WEBSERVER_URL, set by topology.py); the daemon runs them."""

from __future__ import annotations

import time

import pytest

from zencourt_pipeline_tests.e2e.test_production_topology import (  # noqa: F401 - fixtures
    batch_runs,
    insert_batch,
    moto_endpoint,
    topology,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


def wait_for_run(topo, run_id: str, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = dict(batch_runs(topo, topo.batch_id)).get(run_id)
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(1)
    raise AssertionError(f"run {run_id} did not end\n{topo.log_tails()}")


def test_recompose_and_regenerate_over_http_run_on_the_topology(topology):  # noqa: F811 - the fixture
    topo = topology
    topo.batch_id = "act-1"
    insert_batch(topo, "act-1")
    assert topo.wait_for_status("act-1", {"completed", "failed"}) == "completed"

    answer = topo.service("POST", "/video/batches/act-1/recompose", json={"orientation": "vertical"})
    assert answer.status_code == 202, answer.text
    assert wait_for_run(topo, answer.json()["runId"]) == "SUCCESS"
    assert topo.db.get_batch("act-1").video_url.endswith("/video/listing-vertical-default.mp4")

    answer = topo.service("POST", "/video/batches/act-1/regenerate", json={"jobIds": ["act-1-1"]})
    assert answer.status_code == 202, answer.text
    assert wait_for_run(topo, answer.json()["runId"]) == "SUCCESS"
    assert topo.wait_for_status("act-1", {"completed", "failed"}) == "completed"
    assert [len(topo.db.tasks_for_job(f"act-1-{i}")) for i in range(2)] == [1, 2]  # one new paid task

    refused = topo.service("POST", "/video/batches/act-1/regenerate", json={"jobIds": ["nope"]})
    assert refused.status_code == 422 and refused.json()["code"] == "INVALID_INPUT"
