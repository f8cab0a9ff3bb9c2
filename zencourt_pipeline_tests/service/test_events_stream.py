"""`GET /video/batches/{id}/events` over a real `zencourt serve` process (uvicorn, configured only
through the environment, on PostgreSQL): an SSE client reads the batch's events while the test
drives its state changes through the database API, as the Dagster runs would; it disconnects
mid-batch, reconnects with `Last-Event-ID` and sees every event exactly once; heartbeats come
while nothing happens; the stream ends by itself after the terminal event."""

from __future__ import annotations

import json
import queue
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.outputs import OutputRow, OutputStatus
from zencourt_pipeline.db.records import BatchStage, BatchStatus
from zencourt_pipeline.domain import OutputShape, OutputSpec
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline_tests.conftest import make_batch
from zencourt_pipeline_tests.service.serve import ServeProcess
from zencourt_pipeline_tests.topology import ScratchDatabases

pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("events_stream")]  # one serve process

API_KEY = "events-key-5c1f9e0a7b"
HEARTBEAT_SECONDS = 0.3


@dataclass
class Message:
    id: int
    event: str
    data: dict


@dataclass
class SseClient:
    """Reads one SSE stream in a thread; `stop_after` messages it disconnects (mid-batch)."""

    url: str
    last_event_id: int | None = None
    stop_after: int | None = None
    messages: queue.Queue = field(default_factory=queue.Queue)
    received: list[Message] = field(default_factory=list)
    heartbeats: int = 0
    status: int | None = None
    content_type: str | None = None
    ended_by_server: bool = False
    done: threading.Event = field(default_factory=threading.Event)

    def start(self) -> SseClient:
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self) -> None:
        headers = {"x-api-key": API_KEY}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = str(self.last_event_id)
        try:
            with httpx.Client(timeout=httpx.Timeout(10, read=20)) as client:
                with client.stream("GET", self.url, headers=headers) as response:
                    self.status, self.content_type = response.status_code, response.headers.get("content-type")
                    if response.status_code != 200:
                        return
                    fields: dict[str, str] = {}
                    for line in response.iter_lines():
                        if line.startswith(":"):
                            self.heartbeats += 1
                        elif line:
                            name, _, value = line.partition(":")
                            fields[name] = value[1:] if value.startswith(" ") else value
                        elif "data" in fields:  # a blank line ends a message
                            message = Message(int(fields["id"]), fields["event"], json.loads(fields["data"]))
                            self.received.append(message)
                            self.messages.put(message)
                            fields = {}
                            if self.stop_after is not None and len(self.received) >= self.stop_after:
                                return  # the client goes away mid-batch: the connection closes
                        else:
                            fields = {}  # e.g. the `retry:` line
                    self.ended_by_server = True
        finally:
            self.done.set()

    def next(self, timeout: float = 10) -> Message:
        """The next message (fails the test when none comes in time)."""
        return self.messages.get(timeout=timeout)

    def wait_heartbeat(self, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        seen = self.heartbeats
        while self.heartbeats <= seen:
            assert time.monotonic() < deadline, "no heartbeat"
            time.sleep(0.02)


def start_serve(
    tmp: Path, database_url: str, poll_seconds: float = 0.1, heartbeat_seconds: float = HEARTBEAT_SECONDS
) -> ServeProcess:
    """The service with the event stream's intervals set through the environment."""
    env = {"ZENCOURT_EVENTS_POLL_SECONDS": str(poll_seconds), "ZENCOURT_EVENTS_HEARTBEAT_SECONDS": str(heartbeat_seconds)}
    return ServeProcess(tmp, database_url, API_KEY, env)


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    scratch = ScratchDatabases("zc_events", n=1)
    try:
        yield scratch.urls[0]
    finally:
        scratch.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory, database_url) -> Iterator[tuple[str, str, Path]]:
    """(service URL, database URL, data dir) of a `zencourt serve` process."""
    serve = start_serve(tmp_path_factory.mktemp("events"), database_url)
    try:
        yield serve.url, database_url, serve.data_dir
    finally:
        serve.stop()


@pytest.fixture(scope="module")
def db(served) -> Iterator[AppDatabase]:
    database = AppDatabase.connect(served[1])  # the pipeline's connection (the service migrated at start-up)
    yield database
    database.db.dispose()


def test_a_client_follows_a_batch_across_a_reconnect_and_sees_every_event_once(served, db):
    url, _, data_dir = served
    stream_url = f"{url}/video/batches/sse1/events"
    db.batches.insert_batch(*make_batch("sse1", n_jobs=3))

    first = SseClient(stream_url, stop_after=5).start()
    assert first.next().event == "batch.created"
    first.wait_heartbeat()  # idle: comment lines keep the connection alive
    db.batches.start_batch("sse1")
    row = db.ledger.begin_task("sse1-0", "sse1", "runway")
    db.ledger.task_submitted(row, "sse1-0", "runway", "rw-task-1")
    db.events.record_task_progress(row, 0.3)
    db.events.record_task_progress(row, 0.3)  # unchanged: no event
    db.events.record_task_progress(row, 0.65)
    assert first.done.wait(10) and not first.ended_by_server  # the client left after 5 messages
    assert [m.event for m in first.received] == [
        "batch.created", "batch.processing", "job.processing", "job.progress", "job.progress",
    ]  # fmt: skip
    assert first.received[2].data["provider"] == "runway" and first.received[4].data["progress"] == 0.65
    assert first.status == 200 and first.content_type.startswith("text/event-stream")

    # while nobody listens
    other = db.ledger.begin_task("sse1-1", "sse1", "fal")
    db.ledger.task_submitted(other, "sse1-1", "fal", "fal-req-1")
    db.batches.fail_job("sse1-1", ErrorCode.FAL_GENERATION_FAILED, "fal refused")
    clip = (data_dir / "storage" / "batches" / "sse1" / "clips" / "sse1-0.mp4").as_uri()
    db.batches.complete_job("sse1-0", clip, None)

    second = SseClient(stream_url, last_event_id=first.received[-1].id).start()
    assert [second.next().event for _ in range(3)] == ["job.processing", "job.failed", "job.completed"]
    db.cancels.cancel(job_ids=["sse1-2"])
    db.events.record_stage("sse1", BatchStage.COMPOSING, clips=1)
    db.events.record_stage("sse1", BatchStage.UPLOADING)
    # the primary output published ahead of the batch (issue 13 point 7): its URLs resolved as sent
    primary = OutputRow(OutputSpec(shape=OutputShape.LANDSCAPE), OutputStatus.COMPLETED, primary=True, video_uri=clip)
    assert db.outputs.publish_output("sse1", primary)
    db.batches.finish_batch("sse1", BatchStatus.COMPLETED, video_url="file:///elsewhere/v.mp4", error="1 of 3 clips failed")
    assert second.done.wait(10) and second.ended_by_server  # the stream ended after the terminal event
    assert [m.event for m in second.received] == [
        "job.processing", "job.failed", "job.completed", "job.canceled", "batch.stage", "batch.stage",
        "output.completed", "batch.completed",
    ]  # fmt: skip

    stored = db.events.batch_events("sse1")
    seen = first.received + second.received
    assert [m.id for m in seen] == [event.id for event in stored]  # every event, once, in order
    assert [m.data["event"] for m in seen] == [m.event for m in seen]
    failed = second.received[1].data
    assert (failed["jobId"], failed["errorCode"], failed["error"]) == ("sse1-1", "FAL_GENERATION_FAILED", "fal refused")
    completed = second.received[2].data
    assert completed["videoUri"] == clip and completed["videoUrl"].startswith(f"{url}/media/batches/sse1/clips/")
    assert completed["urlsExpireAt"] and completed["thumbnailUrl"] is None
    assert [m.data["stage"] for m in second.received[4:6]] == ["composing", "uploading"]
    output = second.received[6].data
    assert (output["primary"], output["shape"], output["videoUri"]) == (True, "landscape", clip)
    assert output["videoUrl"].startswith(f"{url}/media/batches/sse1/clips/") and output["urlsExpireAt"]
    done = second.received[-1].data
    assert done["videoUrl"] == "file:///elsewhere/v.mp4" and done["error"] == "1 of 3 clips failed"  # not ours: as stored


def test_a_terminal_batch_replays_and_ends(served, db):
    url = served[0]
    db.batches.insert_batch(*make_batch("sse2", n_jobs=1))
    db.cancels.cancel(batch_id="sse2")
    stored = db.events.batch_events("sse2")
    replay = SseClient(f"{url}/video/batches/sse2/events").start()
    assert replay.done.wait(10) and replay.ended_by_server
    assert [m.id for m in replay.received] == [event.id for event in stored]
    assert [m.event for m in replay.received] == ["batch.created", "job.canceled", "batch.canceled"]
    caught_up = SseClient(f"{url}/video/batches/sse2/events", last_event_id=stored[-1].id).start()
    assert caught_up.done.wait(10) and caught_up.ended_by_server and caught_up.received == []
    resumed = SseClient(f"{url}/video/batches/sse2/events", last_event_id=stored[0].id).start()
    assert resumed.done.wait(10) and [m.id for m in resumed.received] == [event.id for event in stored[1:]]


def test_unknown_batch_bad_last_event_id_and_no_key(served, db):
    url = served[0]
    db.batches.insert_batch(*make_batch("sse3", n_jobs=1))
    with httpx.Client(base_url=url, timeout=10) as client:
        missing = client.get("/video/batches/nope/events", headers={"x-api-key": API_KEY})
        assert missing.status_code == 404 and missing.json()["code"] == "NOT_FOUND"
        bad = client.get("/video/batches/sse3/events", headers={"x-api-key": API_KEY, "Last-Event-ID": "x1"})
        assert bad.status_code == 400 and bad.json()["code"] == "INVALID_INPUT"
        assert bad.json()["details"] == {"field": "Last-Event-ID"}
        anonymous = client.get("/video/batches/sse3/events")
        assert anonymous.status_code == 401 and anonymous.json()["code"] == "UNAUTHORIZED"


def test_a_stopping_service_ends_its_streams_at_once(tmp_path, database_url, db):
    """SIGTERM (a rolling deploy): the open streams end within a poll, so the process exits
    without waiting out uvicorn's graceful timeout; the client resumes with `Last-Event-ID`."""
    db.batches.insert_batch(*make_batch("sse4", n_jobs=1))
    serve = start_serve(tmp_path, database_url)
    try:
        client = SseClient(f"{serve.url}/video/batches/sse4/events").start()
        assert client.next().event == "batch.created"
        started = time.monotonic()
        serve.proc.send_signal(signal.SIGTERM)
        assert client.done.wait(5) and client.ended_by_server
        assert serve.proc.wait(10) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
        assert time.monotonic() - started < 10  # not the 20 s graceful timeout
    finally:
        serve.stop()  # closes the client; the process has ended already unless the test failed


def test_postgres_notify_wakes_a_stream_long_before_its_poll(tmp_path, database_url, db):
    """With a 30 s poll (and heartbeat) interval the events still come at once: migration 0007's trigger NOTIFYs
    each committed event and the service's listener wakes the batch's streams."""
    db.batches.insert_batch(*make_batch("sse5", n_jobs=1))
    serve = start_serve(tmp_path, database_url, poll_seconds=30, heartbeat_seconds=30)
    try:
        client = SseClient(f"{serve.url}/video/batches/sse5/events").start()
        assert client.next().event == "batch.created"  # the first read is at connect
        time.sleep(0.5)  # the stream waits now (the listener started with the service)
        started = time.monotonic()
        db.batches.start_batch("sse5")
        assert client.next(timeout=10).event == "batch.processing"
        db.cancels.cancel(batch_id="sse5")
        assert [client.next(timeout=10).event for _ in range(2)] == ["job.canceled", "batch.canceled"]
        assert time.monotonic() - started < 5  # not the 30 s poll
        assert client.done.wait(5) and client.ended_by_server
    finally:
        serve.stop()
