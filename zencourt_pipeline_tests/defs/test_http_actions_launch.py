"""The HTTP operator actions launch for real: `zencourt serve`'s app posts its GraphQL mutation to a
real Dagster webserver app (dagster_webserver, in process) whose workspace is this code location
(`zencourt_pipeline.definitions:defs`, loaded in process) on a test instance with the production
run coordinator (queued; no daemon here, so the run stays queued and is inspected as launched)."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import InProcessTestWorkspaceLoadTarget
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster_webserver.app import create_app_from_workspace_process_context
from fastapi.testclient import TestClient

from zencourt_pipeline.config import Settings
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.defs.jobs import batch_recompose_job, batch_regenerate_job
from zencourt_pipeline.pipeline.actions import ActionConflict, OperatorAction
from zencourt_pipeline.service.app import create_app
from zencourt_pipeline.service.errors import ApiErrorCode
from zencourt_pipeline.service.launch import LOCATION_NAME, GraphQLLauncher
from zencourt_pipeline.storage.local import LocalStorage

API_KEY = "launch-test-key-5b1e"


def test_the_actions_name_the_ui_jobs_and_their_codes_are_api_codes():
    assert OperatorAction.RECOMPOSE.job_name == batch_recompose_job.name
    assert OperatorAction.REGENERATE.job_name == batch_regenerate_job.name
    assert {code.value for code in ActionConflict} <= {code.value for code in ApiErrorCode}


@pytest.fixture
def webserver(tmp_path):
    """A Dagster webserver app over the code location, and its instance (QueuedRunCoordinator)."""
    overrides = {"run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}}
    with dg.instance_for_test(overrides=overrides) as instance:
        origin = InProcessCodeLocationOrigin(
            LoadableTargetOrigin(module_name="zencourt_pipeline.definitions", attribute="defs"),
            location_name=LOCATION_NAME,
        )
        with WorkspaceProcessContext(instance, InProcessTestWorkspaceLoadTarget(origin)) as context:
            with TestClient(create_app_from_workspace_process_context(context)) as web:
                yield instance, web


def test_recompose_and_regenerate_launch_real_runs_of_the_partition(tmp_path, webserver):
    instance, web = webserver
    db = AppDatabase.connect(f"sqlite:///{tmp_path}/app.db")
    db.db.upgrade()
    jobs = [{"id": f"hl-{i}", "sort_order": i, "image_url": "https://example.com/p.jpg", "status": "completed",
             "photo_key": f"batches/hl/photos/{i}.jpg", "video_url": f"file:///clips/hl-{i}.mp4"} for i in range(2)]
    db.batches.insert_batch({"id": "hl", "listing_id": "L-hl", "status": "completed"}, jobs)
    # no partition: the retention sensor removed it (the batch ended long ago); the action adds it back
    assert not instance.has_dynamic_partition("batches", "hl")
    settings = Settings(data_dir=tmp_path / "data", video_server_api_key=API_KEY)
    launcher = GraphQLLauncher(str(web.base_url), client=web)
    app = create_app(settings, db=db, storage=LocalStorage(tmp_path / "storage"), verifier=object(), launcher=launcher)
    auth = {"x-api-key": API_KEY}
    with TestClient(app) as client:
        recompose = client.post("/video/batches/hl/recompose", json={"template": "classic", "orientation": "vertical"},
                                headers=auth)
        regenerate = client.post("/video/batches/hl/regenerate", json={"jobIds": ["hl-1"]}, headers=auth)
    db.db.dispose()
    assert recompose.status_code == regenerate.status_code == 202, (recompose.text, regenerate.text)

    assert instance.get_dynamic_partitions("batches") == ["hl"]
    run = instance.get_run_by_id(recompose.json()["runId"])
    assert run.job_name == "batch_recompose_job" and run.status == dg.DagsterRunStatus.QUEUED
    assert run.tags["dagster/partition"] == "hl" and run.tags["zencourt/batch_id"] == "hl"
    assert run.tags["zencourt/stage"] == "recompose"
    assert run.run_config["ops"] == {"composed_video": {"config": {"template": "classic", "orientation": "vertical"}}}

    run = instance.get_run_by_id(regenerate.json()["runId"])
    assert run.job_name == "batch_regenerate_job" and run.tags["dagster/partition"] == "hl"
    assert run.run_config["ops"] == {"clip_tasks": {"config": {"regenerate_job_ids": ["hl-1"]}}}
