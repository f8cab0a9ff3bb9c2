"""The Dagster UI in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

On a fresh instance: two small batches run through the real sensors and runs (in process, as
`zencourt demo` does) and a third batch whose clip is black is stopped by the blocking check.
Then `dagster-webserver` serves that instance; a partition backfill of `composed_video` is
launched through the GraphQL mutation `launchPartitionBackfill` and executed by `dagster-daemon`
while the browser opens the asset graph (the pipeline's assets), a `composed_video`
materialization (metadata and the rendered preview) and the blocking check that says why the
third batch was not composed; then the backfill is watched until it completes, one run per batch
partition.

Screenshots go to test-output/ui/ (ignored by git). No browser is downloaded: if
/usr/bin/chromium is missing or does not start, the test fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import httpx
import pytest

from zencourt_pipeline_tests.defs.conftest import insert_batch_with_photos, solid_jpeg

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "test-output" / "ui"
BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PIPELINE = ["listing_photos", "clip_tasks", "generated_clips", "normalized_clips", "composed_video"]
GOOD = ["ui-batch-1", "ui-batch-2"]
BLOCKED = "ui-blocked"
# project settings that must not leak from the developer's environment into this instance
PROJECT_VARIABLES = (
    "DATABASE_URL", "STORAGE_BACKEND", "GENERATION_PROVIDERS", "ENABLE_FINAL_COMPOSITION",
    "ZENCOURT_MONTHLY_CLIP_QUOTA", "ZENCOURT_WORKSPACE_MONTHLY_CLIP_QUOTA",
)

LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on UnauthorizedError { message }
    ... on PartitionSetNotFoundError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey invalidOutputName }
  }
}
"""

BACKFILL_STATUS = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      status
      numPartitions
      runs { runId status tags { key value } }
      error { message }
    }
    ... on PythonError { message }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _process(args: list[str], *, env: dict, cwd: Path, log: Path):
    """A child process in its own process group; the group is ended (only it) on exit."""
    with log.open("w") as out:
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)


def _graphql(base: str, query: str, variables: dict) -> dict:
    response = httpx.post(f"{base}/graphql", json={"query": query, "variables": variables}, timeout=60)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def _zoom_graph_for_screenshot(page) -> None:
    """Hide the navigation and the group sidebar, zoom in one step (the nodes then show their
    partitions and checks) and pan the first asset back into view. Cosmetic only."""
    page.get_by_role("button", name="Hide navigation").click()
    jump = page.get_by_placeholder("Jump to", exact=False).bounding_box()
    if jump:  # the sidebar toggle sits right of the "Jump to…" box
        page.mouse.click(jump["x"] + jump["width"] + 18, jump["y"] + jump["height"] / 2)
    page.wait_for_timeout(800)
    first = page.get_by_text("listing_photos", exact=True).first.bounding_box()
    last = page.get_by_text("composed_video", exact=True).first.bounding_box()
    page.mouse.move((first["x"] + last["x"]) / 2, last["y"] + 150)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -120)
    page.keyboard.up("Control")
    page.wait_for_timeout(500)
    first = page.get_by_text("listing_photos", exact=True).first.bounding_box()
    page.mouse.move(400, 980)
    page.mouse.down()
    page.mouse.move(400 + max(0.0, 260 - first["x"]), 940, steps=10)
    page.mouse.up()
    page.wait_for_timeout(800)


def _wait_for_server(base: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "dagster-webserver exited:\n" + log.read_text()[-3000:]
        try:
            if httpx.get(f"{base}/server_info", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("dagster-webserver did not answer /server_info:\n" + log.read_text()[-3000:])


@pytest.fixture
def demo_instance(tmp_path: Path, monkeypatch):
    """A fresh Dagster home (the repo's dagster.yaml) and data dir, with the batches run through."""
    from zencourt_pipeline.config import Settings
    from zencourt_pipeline.definitions import build_definitions
    from zencourt_pipeline.defs.assets import pipeline_assets
    from zencourt_pipeline.demo import drive_batch

    home, data = tmp_path / "dagster_home", tmp_path / "data"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    for name in PROJECT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("ZENCOURT_DATA_DIR", str(data))
    defs = build_definitions(Settings.from_env())
    db, storage = defs.resources["app_db"].get(), defs.resources["storage"].get()
    db.db.upgrade()  # what start-up does on a fresh database (resources never migrate)
    for batch_id in GOOD:
        insert_batch_with_photos(db, storage, tmp_path, batch_id, [None, None])
    with dg.DagsterInstance.get() as instance:
        for batch_id in GOOD:  # the sensors pick both up in the same ticks
            assert drive_batch(defs, instance, batch_id, timeout=180, out=lambda *_: None, idle_sleep=0.3) == "completed"
        # a third batch whose second clip comes out black: the blocking check stops its composition
        insert_batch_with_photos(db, storage, tmp_path, BLOCKED, [None, solid_jpeg((0, 0, 0))])
        instance.add_dynamic_partitions("batches", [BLOCKED])
        for selection in (PIPELINE[:2], PIPELINE[2:]):
            dg.materialize(
                pipeline_assets, selection=selection, partition_key=BLOCKED, instance=instance,
                resources=defs.resources, raise_on_error=False,
            )
    assert db.batches.get_batch(BLOCKED).status == "processing" and db.batches.get_batch(BLOCKED).video_url is None
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: zencourt_pipeline.definitions\n"
        "      attribute: defs\n      location_name: zencourt_pipeline\n"
    )
    return {"home": home, "workspace": workspace, "env": dict(os.environ), "db": db, "cwd": tmp_path}


def test_the_ui_shows_the_batch_and_runs_a_partition_backfill(demo_instance):
    from playwright.sync_api import sync_playwright

    OUTPUT.mkdir(parents=True, exist_ok=True)
    env, cwd, workspace = demo_instance["env"], demo_instance["cwd"], demo_instance["workspace"]
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    web_log, daemon_log = cwd / "webserver.log", cwd / "daemon.log"
    webserver = [str(BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)]
    daemon = [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)]
    with _process(webserver, env=env, cwd=cwd, log=web_log) as web:
        _wait_for_server(base, web, web_log)
        # 1. a partition backfill through launchPartitionBackfill; the daemon (started right after,
        # so that its first backfill iteration picks it up) runs it while the browser looks around
        launched = _graphql(base, LAUNCH_BACKFILL, {
            "params": {
                "partitionNames": GOOD,
                "assetSelection": [{"path": ["composed_video"]}],
                "fromFailure": False,
                "title": "re-compose the UI test batches",
            }
        })["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]
        with _process(daemon, env=env, cwd=cwd, log=daemon_log) as daemon_proc, sync_playwright() as pw:
            try:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            except Exception as exc:  # noqa: BLE001 - no browser is a failure, never a skip
                pytest.fail(f"headless Chromium ({CHROMIUM}) did not start: {exc}")
            context = browser.new_context(viewport={"width": 1600, "height": 1500})
            context.set_default_timeout(60_000)
            # the UI's one-time "join the community" dialog would cover the page
            context.add_init_script("window.localStorage.setItem('communityNux', JSON.stringify('1'))")
            page = context.new_page()
            _asset_graph(page, base)
            _composed_video(page, base)
            _blocking_check(page, base)
            backfill = _wait_for_backfill(base, backfill_id, daemon_proc, daemon_log)
            assert backfill["status"] == "COMPLETED_SUCCESS", backfill
            # one run per batch partition (the backfill policy), each successful
            partitions = sorted(
                next(tag["value"] for tag in run["tags"] if tag["key"] == "dagster/partition") for run in backfill["runs"]
            )
            assert partitions == GOOD and {run["status"] for run in backfill["runs"]} == {"SUCCESS"}
            page.goto(f"{base}/runs/b/{backfill_id}")
            page.get_by_text("Succeeded", exact=True).first.wait_for()
            page.wait_for_timeout(1000)
            page.screenshot(path=OUTPUT / "backfill.png")
            browser.close()
    for batch_id in GOOD:
        assert demo_instance["db"].batches.get_batch(batch_id).status == "completed"


def _asset_graph(page, base: str) -> None:
    """The global asset graph, groups expanded: every asset of the pipeline."""
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.goto(f"{base}/asset-groups")
    page.get_by_text("composition", exact=True).last.wait_for()
    page.mouse.click(1300, 200)  # focus the graph canvas
    page.keyboard.press("Alt+e")  # "Expand all groups"
    for name in PIPELINE:
        page.get_by_text(name, exact=True).first.wait_for()
    page.get_by_text("analytics", exact=True).last.wait_for()  # the provider_daily_stats group
    _zoom_graph_for_screenshot(page)
    page.screenshot(path=OUTPUT / "asset-graph.png")
    page.set_viewport_size({"width": 1600, "height": 1500})


def _composed_video(page, base: str) -> None:
    """A composed_video materialization of one batch: its metadata and the rendered preview."""
    page.goto(f"{base}/assets/composed_video?view=events&partition={GOOD[0]}")
    page.get_by_text(f"Partition {GOOD[0]} materialized in run", exact=False).wait_for()
    for entry in ("duration_s", "planned_duration_s", "clips_used", "video_uri", "preview", "clips"):
        page.get_by_text(entry, exact=True).first.wait_for()
    for column in ("room", "provider", "task_id", "duration_s", "latency_s", "cost_credits", "status"):
        page.get_by_role("columnheader", name=column, exact=True).first.wait_for()  # the per-clip table
    page.get_by_role("row").filter(has=page.get_by_text("clips_used", exact=True)).get_by_text("2").first.wait_for()
    page.screenshot(path=OUTPUT / "composed-video-metadata.png")
    page.get_by_role("row").filter(has=page.get_by_text("preview", exact=True)).get_by_text("[Show Markdown]").click()
    preview = page.locator("img[src^='data:image/jpeg;base64,']").first
    preview.wait_for()
    width, height = preview.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert (width, height) == (480, 270), "the preview image did not render"
    page.screenshot(path=OUTPUT / "composed-video.png")
    page.keyboard.press("Escape")


def _blocking_check(page, base: str) -> None:
    """The blocking clip check that stopped the third batch says why."""
    page.goto(f"{base}/assets/normalized_clips?view=checks")
    page.get_by_text("This is a blocking asset check").wait_for()
    page.get_by_text(
        f"Composition of batch {BLOCKED} stopped: 1 of 2 clips unusable: {BLOCKED}-1 (Room 1): black", exact=False
    ).wait_for()
    page.screenshot(path=OUTPUT / "blocking-check.png")


def _wait_for_backfill(base: str, backfill_id: str, daemon: subprocess.Popen, log: Path, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        assert daemon.poll() is None, "dagster-daemon exited:\n" + log.read_text()[-3000:]
        backfill = _graphql(base, BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        assert backfill["__typename"] == "PartitionBackfill", backfill
        if backfill["status"] not in ("REQUESTED", "CANCELING", "FAILING"):
            return backfill
        assert time.monotonic() < deadline, f"backfill still {backfill['status']}:\n" + log.read_text()[-3000:]
        time.sleep(2)
