"""Operator actions over HTTP (TestClient, SQLite): `POST /video/batches/{id}/recompose` and
`/regenerate` check the batch as the runs would, then hand one launch to the launcher. The launcher
here is a recorder at the network edge: `GraphQLLauncher` with an httpx transport that records the
GraphQL request and answers as the webserver does (the real webserver: defs/test_http_actions_launch.py)."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi.testclient import TestClient

from zencourt_pipeline.domain import ApiScope
from zencourt_pipeline.pipeline.quota import month_start
from zencourt_pipeline.service.app import create_app
from zencourt_pipeline.service.launch import GraphQLLauncher

from .conftest import assert_error

WEBSERVER = "http://webserver.test:3000"


class GraphQLRecorder:
    """The webserver's side of the wire: records each launch (`requests`) and each partition add
    (`partition_adds`, answered `partition_answer`: the partition is there unless told otherwise);
    a launch is answered `answer`, or a new run."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.partition_adds: list[str] = []
        self.partition_answer = {"__typename": "DuplicateDynamicPartitionError"}
        self.answer: dict | None = None
        self.status = 200

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == f"{WEBSERVER}/graphql"
        body = json.loads(request.content)
        if "addDynamicPartition" in body["query"]:
            assert body["variables"]["partitionsDefName"] == "batches"
            assert body["variables"]["repositorySelector"]["repositoryName"] == "__repository__"
            self.partition_adds.append(body["variables"]["partitionKey"])
            return httpx.Response(200, json={"data": {"addDynamicPartition": self.partition_answer}})
        self.requests.append(body)
        answer = self.answer or {
            "data": {"launchPipelineExecution": {"__typename": "LaunchRunSuccess", "run": {"runId": f"run-{len(self.requests)}"}}}
        }
        return httpx.Response(self.status, json=answer)

    @property
    def params(self) -> dict:
        """The `executionParams` of the last launch."""
        return self.requests[-1]["variables"]["executionParams"]


@pytest.fixture
def recorder() -> GraphQLRecorder:
    return GraphQLRecorder()


@pytest.fixture
def client(settings, db, storage, verifier, recorder):
    http = httpx.Client(transport=httpx.MockTransport(recorder))
    app = create_app(settings, db=db, storage=storage, verifier=verifier, launcher=GraphQLLauncher(WEBSERVER, client=http))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
    http.close()


def insert(db, batch_id: str, status: str = "completed", jobs: tuple[str, ...] = ("completed", "completed"), **fields):
    """A batch in `status` whose jobs are in `jobs`' statuses (taken in: each has its photo)."""
    rows = []
    for i, job_status in enumerate(jobs):
        done = job_status == "completed"
        rows.append({
            "id": f"{batch_id}-{i}", "sort_order": i, "image_url": f"https://example.com/{i}.jpg", "status": job_status,
            "photo_key": f"batches/{batch_id}/photos/{i}.jpg",
            "video_url": f"file:///clips/{batch_id}-{i}.mp4" if done else None,
        })
    db.batches.insert_batch({"id": batch_id, "listing_id": f"L-{batch_id}", "status": status, **fields}, rows)


def test_recompose_launches_the_ui_job_for_the_partition(client, db, auth, recorder):
    insert(db, "rc1")
    response = client.post("/video/batches/rc1/recompose", json={"template": "classic", "orientation": "vertical"}, headers=auth)
    assert response.status_code == 202, response.text
    assert response.json() == {"success": True, "batchId": "rc1", "runId": "run-1", "action": "recompose"}
    params = recorder.params
    assert params["selector"] == {
        "repositoryLocationName": "zencourt_pipeline", "repositoryName": "__repository__", "pipelineName": "batch_recompose_job",
    }
    assert params["runConfigData"] == {"ops": {"composed_video": {"config": {"template": "classic", "orientation": "vertical"}}}}
    tags = {tag["key"]: tag["value"] for tag in params["executionMetadata"]["tags"]}
    assert tags == {"dagster/partition": "rc1", "zencourt/batch_id": "rc1", "zencourt/stage": "recompose",
                    "zencourt/requested_by": "admin"}
    # no body field: the batch's own template and orientation
    assert client.post("/video/batches/rc1/recompose", json={}, headers=auth).status_code == 202
    assert recorder.params["runConfigData"] == {"ops": {"composed_video": {"config": {}}}}


def test_recompose_refusals(client, db, auth, recorder):
    insert(db, "rc-busy", status="processing", jobs=("completed", "processing"))
    insert(db, "rc-none", status="completed", jobs=("failed", "failed"))
    insert(db, "rc-fail", status="failed", jobs=("completed", "failed"), error_code="COMPOSITION_FAILED")
    insert(db, "rc-cxl", status="canceled", jobs=("canceled", "completed"))
    insert(db, "rc-ok")
    body = assert_error(client.post("/video/batches/rc-busy/recompose", json={}, headers=auth), 409, "BATCH_BUSY")
    assert body["details"] == {"batchStatus": "processing"}
    assert_error(client.post("/video/batches/rc-none/recompose", json={}, headers=auth), 409, "NO_COMPLETED_CLIPS")
    body = assert_error(client.post("/video/batches/rc-fail/recompose", json={}, headers=auth), 409, "BATCH_FAILED")
    assert body["details"] == {"batchStatus": "failed", "errorCode": "COMPOSITION_FAILED"}
    assert_error(client.post("/video/batches/rc-cxl/recompose", json={}, headers=auth), 409, "CANCELED")
    assert_error(client.post("/video/batches/rc-ok/recompose", json={"template": "nope"}, headers=auth), 422, "INVALID_INPUT")
    assert_error(client.post("/video/batches/rc-ok/recompose", json={"orientation": "square"}, headers=auth), 400, "INVALID_INPUT")
    assert_error(client.post("/video/batches/rc-ok/recompose", json={"outputs": 2}, headers=auth), 400, "INVALID_INPUT")
    assert_error(client.post("/video/batches/nope/recompose", json={}, headers=auth), 404, "NOT_FOUND")
    assert_error(client.post("/video/batches/bad%20id/recompose", json={}, headers=auth), 400, "INVALID_INPUT")
    assert recorder.requests == []  # nothing refused was launched


def test_regenerate_launches_with_the_named_jobs(client, db, auth, recorder):
    insert(db, "rg1", jobs=("completed", "failed", "completed"))
    response = client.post("/video/batches/rg1/regenerate", json={"jobIds": ["rg1-1", "rg1-2", "rg1-1"]}, headers=auth)
    assert response.status_code == 202, response.text
    assert response.json() == {"success": True, "batchId": "rg1", "runId": "run-1", "action": "regenerate"}
    assert recorder.params["selector"]["pipelineName"] == "batch_regenerate_job"
    assert recorder.params["runConfigData"] == {"ops": {"clip_tasks": {"config": {"regenerate_job_ids": ["rg1-1", "rg1-2"]}}}}
    tags = {tag["key"]: tag["value"] for tag in recorder.params["executionMetadata"]["tags"]}
    assert (tags["dagster/partition"], tags["zencourt/stage"]) == ("rg1", "regenerate")


def test_regenerate_refusals_are_the_runs_own(client, db, auth, recorder, settings):
    insert(db, "rg2", status="processing", jobs=("completed", "canceled", "processing"))
    post = lambda ids: client.post("/video/batches/rg2/regenerate", json={"jobIds": ids}, headers=auth)  # noqa: E731
    body = assert_error(post(["rg2-0", "other"]), 422, "INVALID_INPUT")
    assert body["details"] == {"jobIds": ["other"]}
    assert_error(post(["rg2-1"]), 409, "CANCELED")
    body = assert_error(post(["rg2-2"]), 409, "BATCH_BUSY")  # still generating: nothing to do
    assert body["details"]["skipped"] == {"rg2-2": "not finished yet"}
    assert_error(post([]), 400, "INVALID_INPUT")
    assert_error(client.post("/video/batches/rg2/regenerate", json={}, headers=auth), 400, "MISSING_REQUIRED_FIELD")
    insert(db, "rg-p", status="pending", jobs=("pending",))
    assert_error(client.post("/video/batches/rg-p/regenerate", json={"jobIds": ["rg-p-0"]}, headers=auth), 409, "BATCH_BUSY")
    insert(db, "rg-f", status="failed", jobs=("failed",))
    db.ledger.begin_task("rg-f-0", "rg-f", "local")  # a submission still on its way (paid or about to be)
    body = assert_error(client.post("/video/batches/rg-f/regenerate", json={"jobIds": ["rg-f-0"]}, headers=auth), 409, "IN_FLIGHT")
    assert "task still in flight" in body["message"]
    insert(db, "rg-c", status="canceled", jobs=("completed",))
    assert_error(client.post("/video/batches/rg-c/regenerate", json={"jobIds": ["rg-c-0"]}, headers=auth), 409, "CANCELED")
    assert recorder.requests == []


def test_regenerate_over_the_monthly_quota_is_refused(settings, db, storage, verifier, auth, recorder):
    insert(db, "rq1", jobs=("completed", "completed"))
    db.quota.reserve_clips([("listing", "L-rq1", 0)], month_start().strftime("%Y-%m"), 3)
    http = httpx.Client(transport=httpx.MockTransport(recorder))
    app = create_app(settings.model_copy(update={"monthly_clip_quota": 4}), db=db, storage=storage, verifier=verifier,
                     launcher=GraphQLLauncher(WEBSERVER, client=http))
    with TestClient(app, raise_server_exceptions=False) as client:
        body = assert_error(client.post("/video/batches/rq1/regenerate", json={"jobIds": ["rq1-0", "rq1-1"]}, headers=auth),
                            409, "QUOTA_EXCEEDED")
        assert "has used 3 of its 4 clips" in body["message"]
        assert client.post("/video/batches/rq1/regenerate", json={"jobIds": ["rq1-0"]}, headers=auth).status_code == 202
    assert len(recorder.requests) == 1


def test_workspace_keys_need_write_and_see_their_workspace_only(client, db, recorder):
    insert(db, "ws1", workspace_id="wsA")
    _, reader = db.api_keys.create_key("wsA", [ApiScope.READ])
    _, other = db.api_keys.create_key("wsB", [ApiScope.READ, ApiScope.WRITE])
    record, writer = db.api_keys.create_key("wsA", [ApiScope.WRITE])
    for path, body in (("recompose", {}), ("regenerate", {"jobIds": ["ws1-0"]})):
        assert_error(client.post(f"/video/batches/ws1/{path}", json=body, headers={"x-api-key": reader}), 403, "INSUFFICIENT_SCOPE")
        assert_error(client.post(f"/video/batches/ws1/{path}", json=body, headers={"x-api-key": other}), 404, "NOT_FOUND")
        assert_error(client.post(f"/video/batches/ws1/{path}", json=body), 401, "UNAUTHORIZED")
        response = client.post(f"/video/batches/ws1/{path}", json=body, headers={"Authorization": f"Bearer {writer}"})
        assert response.status_code == 202, response.text
    tags = {tag["key"]: tag["value"] for tag in recorder.params["executionMetadata"]["tags"]}
    assert tags["zencourt/requested_by"] == f"key:{record.prefix}"


def test_without_a_webserver_or_when_it_does_not_launch(settings, db, storage, verifier, auth, client, recorder):
    insert(db, "nl1")
    with TestClient(create_app(settings, db=db, storage=storage, verifier=verifier), raise_server_exceptions=False) as plain:
        assert_error(plain.post("/video/batches/nl1/recompose", json={}, headers=auth), 503, "SERVICE_UNAVAILABLE")
    recorder.answer = {"data": {"launchPipelineExecution": {"__typename": "PythonError", "message": "partition missing"}}}
    body = assert_error(client.post("/video/batches/nl1/recompose", json={}, headers=auth), 502, "BAD_GATEWAY")
    assert "PythonError: partition missing" in body["message"]
    recorder.answer, recorder.status = {"errors": [{"message": "down"}]}, 500
    assert_error(client.post("/video/batches/nl1/recompose", json={}, headers=auth), 502, "BAD_GATEWAY")


def test_a_pruned_partition_is_added_back_before_the_launch(client, db, auth, recorder):
    """The retention sensor removed the partition of a batch that ended long ago: the action adds
    it back first (the launch would fail without it); when that fails nothing is launched."""
    insert(db, "pr1")
    recorder.partition_answer = {"__typename": "AddDynamicPartitionSuccess", "partitionsDefName": "batches", "partitionKey": "pr1"}
    assert client.post("/video/batches/pr1/recompose", json={}, headers=auth).status_code == 202
    assert recorder.partition_adds == ["pr1"] and len(recorder.requests) == 1
    recorder.partition_answer = {"__typename": "UnauthorizedError", "message": "no edit_dynamic_partitions"}
    body = assert_error(client.post("/video/batches/pr1/recompose", json={}, headers=auth), 502, "BAD_GATEWAY")
    assert "UnauthorizedError: no edit_dynamic_partitions" in body["message"]
    assert recorder.partition_adds == ["pr1", "pr1"] and len(recorder.requests) == 1  # not launched
