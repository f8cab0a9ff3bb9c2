"""Issue 4: the production topology as real processes on Postgres, B2 (moto) and webhooks."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
import sqlalchemy as sa

from zencourt_pipeline.notify.signing import verify
from zencourt_pipeline_tests.batches import ONE_OUTPUT_JSON
from zencourt_pipeline_tests.defs.conftest import write_photo
from zencourt_pipeline_tests.fakes.server import RequestRecorder
from zencourt_pipeline_tests.topology import BUCKET, WEBHOOK_SECRET, Topology, e2e_storage, start_s3

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@pytest.fixture
def moto_endpoint():
    server, endpoint = start_s3()
    yield endpoint
    server.stop()


@pytest.fixture
def topology(tmp_path, postgres_database, moto_endpoint):
    with RequestRecorder() as receiver:
        dagster_url = postgres_database()
        topo = Topology(tmp_path, postgres_database(), dagster_url, receiver.url, moto_endpoint,
                        extra_env={"MEDIA_ALLOWED_PRIVATE_HOSTS": "127.0.0.1"})
        topo.receiver = receiver
        topo.dagster_db = sa.create_engine(dagster_url)
        topo.storage = e2e_storage(moto_endpoint)
        try:
            topo.start_all()
            yield topo
        finally:
            topo.stop_all()
            topo.dagster_db.dispose()


class SilentPhotoServer:
    """Accepts photo downloads and never answers: the intake run that fetches from it stays STARTED."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.accepted = threading.Event()
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/photo.jpg"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            self.accepted.set()

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def batch_runs(topo: Topology, batch_id: str) -> list[tuple[str, str]]:
    """(run id, status) of the batch partition's runs, read from the Dagster run storage."""
    with topo.dagster_db.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(
            "SELECT r.run_id, r.status FROM runs r JOIN run_tags t ON t.run_id = r.run_id "
            "WHERE t.key = 'dagster/partition' AND t.value = :batch"), {"batch": batch_id})]


def insert_batch(topo: Topology, batch_id: str, n: int = 2, outputs: str | None = ONE_OUTPUT_JSON) -> None:
    """A batch of `n` photos asking for one 720p output (`outputs=None`: the default four)."""
    jobs = []
    for index in range(n):
        photo = write_photo(topo.tmp / f"{batch_id}-{index}.jpg", seed=index)
        key = f"uploads/{batch_id}/{index}.jpg"
        topo.storage.put_file(key, photo, "image/jpeg")
        jobs.append({"id": f"{batch_id}-{index}", "sort_order": index, "room_name": f"Room {index}",
                     "image_url": topo.storage.uri(key), "duration_seconds": 2})
    topo.db.batches.insert_batch({"id": batch_id, "listing_id": "L-e2e", "title": "9 Process Row", "outputs": outputs}, jobs)


def webhook_events(topo: Topology, batch_id: str) -> list[dict]:
    events = []
    for request in topo.receiver.received:
        body = json.loads(request.body)
        if body["batchId"] == batch_id:
            events.append((body, request))
    return events


def test_batches_complete_on_the_production_topology_survive_a_daemon_kill_and_cancel_stops_a_started_run(topology):
    """Batches complete, a daemon kill is survived, the operator actions run over HTTP, cancel stops a started run."""
    topo = topology
    insert_batch(topo, "prod-1", outputs=None)  # the default four outputs, once on the production topology
    assert topo.wait_for_status("prod-1", {"completed", "failed"}) == "completed"

    batch = topo.db.batches.get_batch("prod-1")
    assert batch.video_url == f"s3://{BUCKET}/batches/prod-1/video/listing-landscape-1920x1080-branded-default.mp4"
    head = topo.storage.head("batches/prod-1/video/listing-landscape-1920x1080-branded-default.mp4")
    assert head["content_type"] == "video/mp4" and head["size"] > 10_000
    assert all(job.status == "completed" and job.video_url.startswith("s3://") for job in topo.db.batches.get_jobs("prod-1"))

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(b["event"] == "batch.completed" for b, _ in webhook_events(topo, "prod-1")):
        time.sleep(0.5)
    [(body, request)] = [(b, r) for b, r in webhook_events(topo, "prod-1") if b["event"] == "batch.completed"]
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["x-webhook-id"] == body["id"]
    assert verify(WEBHOOK_SECRET, headers["x-webhook-timestamp"], request.body, headers["x-webhook-signature"])
    assert body["videoUri"] == batch.video_url and body["listingId"] == "L-e2e"
    # the web app gets a URL it can play: presigned over the (moto) B2 endpoint, fetched with plain httpx
    assert body["videoUrl"].startswith("http") and body["urlsExpireAt"].endswith("Z")
    played = httpx.get(body["videoUrl"], timeout=30)
    assert played.status_code == 200 and played.content[4:8] == b"ftyp" and len(played.content) == head["size"]

    # the daemon dies in the middle of a second batch; started again, the batch still completes
    insert_batch(topo, "prod-2")
    topo.wait_for_status("prod-2", {"processing"}, timeout=120)
    topo.kill("daemon")
    time.sleep(2)
    topo.start_daemon()
    assert topo.wait_for_status("prod-2", {"completed", "failed"}) == "completed"
    assert topo.storage.exists("batches/prod-2/video/listing-landscape-1280x720-branded-default.mp4")
    # exactly one generation task per job, despite the restart
    assert [len(topo.db.ledger.tasks_for_job(f"prod-2-{i}")) for i in range(2)] == [1, 1]

    operator_actions_over_http(topo, "prod-2")  # one output: its recompose and regenerate render two, not eight
    cancel_stops_a_started_run(topo)


def wait_for_run(topo: Topology, batch_id: str, run_id: str, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = dict(batch_runs(topo, batch_id)).get(run_id)
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(1)
    raise AssertionError(f"run {run_id} did not end\n{topo.log_tails()}")


def operator_actions_over_http(topo: Topology, batch_id: str) -> None:
    """Issue 16 point 4: `zencourt serve` launches the UI's recompose and regenerate jobs through
    the real webserver (DAGSTER_WEBSERVER_URL, set by topology.py); the daemon runs them."""
    answer = topo.service("POST", f"/video/batches/{batch_id}/recompose", json={"orientation": "vertical"})
    assert answer.status_code == 202, answer.text
    assert wait_for_run(topo, batch_id, answer.json()["runId"]) == "SUCCESS"
    assert topo.db.batches.get_batch(batch_id).video_url.endswith("/video/listing-vertical-1080x1920-branded-default.mp4")

    answer = topo.service("POST", f"/video/batches/{batch_id}/regenerate", json={"jobIds": [f"{batch_id}-1"]})
    assert answer.status_code == 202, answer.text
    assert wait_for_run(topo, batch_id, answer.json()["runId"]) == "SUCCESS"
    assert topo.wait_for_status(batch_id, {"completed", "failed"}) == "completed"
    assert [len(topo.db.ledger.tasks_for_job(f"{batch_id}-{i}")) for i in range(2)] == [1, 2]  # one new paid task

    refused = topo.service("POST", f"/video/batches/{batch_id}/regenerate", json={"jobIds": ["nope"]})
    assert refused.status_code == 422 and refused.json()["code"] == "INVALID_INPUT"


def cancel_stops_a_started_run(topo: Topology) -> None:
    """Cancel stops a run that is already executing (STARTED), not only a queued one."""
    photos = SilentPhotoServer()
    try:
        topo.db.batches.insert_batch({"id": "prod-3", "listing_id": "L-e2e", "title": "9 Process Row"},
                             [{"id": "prod-3-0", "sort_order": 0, "room_name": "Hall", "image_url": photos.url,
                               "duration_seconds": 2}])
        assert photos.accepted.wait(120), "the intake run never fetched the photo"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(status == "STARTED" for _, status in batch_runs(topo, "prod-3")):
            time.sleep(0.5)
        [(run_id, status)] = batch_runs(topo, "prod-3")
        assert status == "STARTED"

        answer = topo.service("POST", "/video/cancel", json={"batchId": "prod-3"})
        assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and dict(batch_runs(topo, "prod-3"))[run_id] != "CANCELED":
            time.sleep(0.5)
        assert dict(batch_runs(topo, "prod-3"))[run_id] == "CANCELED", topo.log_tails()
        assert topo.db.batches.get_batch("prod-3").status == "canceled"
        assert [job.status for job in topo.db.batches.get_jobs("prod-3")] == ["canceled"]
    finally:
        photos.close()
