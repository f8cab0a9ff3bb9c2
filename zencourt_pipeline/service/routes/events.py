"""Live progress (API key): `GET /video/batches/{id}/events`, Server-Sent Events (docs/contract.md section 4).

The stream is fed from the database, not from the process that made a change: every state change
of a batch and its jobs writes a `batch_events` row in its own transaction (db/events.py), and the
stream reads that table every `ZENCOURT_EVENTS_POLL_SECONDS` through an `EventCursor`, which hands
out each event once, in id order, and never skips an id that may still commit. So the events of
the Dagster runs, the sensors and this service all reach every replica's streams. On PostgreSQL the
table's NOTIFYs (`EventListener`, started with the app) wake a batch's streams at once (`Wakeups`).

Each message is `id: <event id>`, `event: <type>`, `data: <JSON, camelCase>`; stored media URIs
(`videoUri`, `thumbnailUri`) get their playable `videoUrl`/`thumbnailUrl`/`urlsExpireAt`, resolved
when the message is sent, as in the status route. A client that reconnects with `Last-Event-ID`
(an `EventSource` does) gets every event after that id. A comment line (`: heartbeat`) goes out
every `ZENCOURT_EVENTS_HEARTBEAT_SECONDS` without a message. A live stream ends after the batch's
terminal event (`batch.completed`, `batch.failed`, `batch.canceled`); a stream opened on a batch
that is already terminal replays the events after `Last-Event-ID` and ends. Auth as the status
route: a `read` key; a workspace key sees its workspace's batches only (another's is 404, as unknown).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic.alias_generators import to_camel
from starlette.concurrency import run_in_threadpool

from zencourt_pipeline.db.events import EventCursor
from zencourt_pipeline.db.records import BatchEvent
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.service.auth import principal_of, require_api_key
from zencourt_pipeline.service.errors import ApiError, ApiErrorCode
from zencourt_pipeline.service.openapi import AUTH_ERRORS, errors
from zencourt_pipeline.service.routes.common import check_id
from zencourt_pipeline.storage.urls import MediaUrls

logger = logging.getLogger("zencourt_pipeline.service.events")
router = APIRouter(prefix="/video", dependencies=[Depends(require_api_key)])

RETRY_MS = 2000  # the `retry:` an EventSource waits before it reconnects
HEARTBEAT = b": heartbeat\n\n"
MAX_EVENT_ID = 2**63 - 1


class Wakeups:
    """The streams waiting for their batch's next event; `notify(batch_id)`, from any thread (the
    PostgreSQL `EventListener`'s), wakes them on the event loop `bind` was called on."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.waiting: dict[str, set[asyncio.Event]] = {}

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop the streams run on (the app's, at start-up)."""
        self.loop = loop

    def notify(self, batch_id: str) -> None:
        """An event of `batch_id` committed: wake its streams."""
        if self.loop is not None and batch_id in self.waiting:
            self.loop.call_soon_threadsafe(self._wake, batch_id)

    def _wake(self, batch_id: str) -> None:
        for wake in self.waiting.get(batch_id, ()):
            wake.set()

    @contextmanager
    def waiter(self, batch_id: str) -> Iterator[asyncio.Event]:
        """An event set when `batch_id` has news, registered while the context lasts."""
        wake = asyncio.Event()
        self.waiting.setdefault(batch_id, set()).add(wake)
        try:
            yield wake
        finally:
            waiters = self.waiting.get(batch_id, set())
            waiters.discard(wake)
            if not waiters:
                self.waiting.pop(batch_id, None)


def last_event_id(request: Request) -> int:
    """The `Last-Event-ID` header (or `?lastEventId=`) as an event id; 0 when absent, 400 when not one."""
    text = request.headers.get("last-event-id") or request.query_params.get("lastEventId") or ""
    text = text.strip()
    if not text:
        return 0
    if not text.isdigit() or int(text) > MAX_EVENT_ID:
        raise ApiError(
            400, ErrorCode.INVALID_INPUT, "Last-Event-ID must be an event id (a non-negative integer)",
            {"field": "Last-Event-ID"},
        )  # fmt: skip
    return int(text)


def format_event(event: BatchEvent, urls: MediaUrls | None) -> bytes:
    """One SSE message: `id`, `event` and the JSON `data` with its media URIs resolved now."""
    data: dict[str, Any] = event.data
    if urls is not None and ("videoUri" in data or "thumbnailUri" in data):
        resolved = urls.fields(data.get("videoUri"), data.get("thumbnailUri"))
        data.update({to_camel(name): value for name, value in resolved.items()})
    if urls is not None and isinstance(data.get("outputs"), list):  # batch.completed: each output's URLs too
        for output in data["outputs"]:
            if isinstance(output, dict):
                resolved = urls.fields(output.get("videoUri"), output.get("thumbnailUri"))
                output.update({to_camel(name): value for name, value in resolved.items()})
    payload = json.dumps(data, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.event}\ndata: {payload}\n\n".encode()


async def event_stream(
    cursor: EventCursor,
    *,
    terminal_at_connect: bool,
    poll_seconds: float,
    heartbeat_seconds: float,
    urls: MediaUrls | None,
    stopping: threading.Event | None = None,
    wakeups: Wakeups | None = None,
) -> AsyncIterator[bytes]:
    """The SSE body: the cursor's events as they settle, heartbeats between, the end after the
    terminal event (or when the server stops: the client resumes elsewhere with `Last-Event-ID`)."""
    with (wakeups or Wakeups()).waiter(cursor.batch_id) as wake:
        async for chunk in _stream(cursor, terminal_at_connect, poll_seconds, heartbeat_seconds, urls, stopping, wake):
            yield chunk


async def _stream(cursor, terminal_at_connect, poll_seconds, heartbeat_seconds, urls, stopping, wake):
    yield f"retry: {RETRY_MS}\n\n".encode()
    last_sent = time.monotonic()
    while True:
        try:
            events = await run_in_threadpool(cursor.poll)
        except Exception:  # noqa: BLE001 - e.g. the database is away: end, the client reconnects and resumes
            logger.warning("event stream ended by a failed read", exc_info=True, extra={"batchId": cursor.batch_id})
            return
        for event in events:
            yield format_event(event, urls)
            last_sent = time.monotonic()
        if any(event.event.terminal for event in events):
            return
        if terminal_at_connect and not cursor.holding:  # replayed everything up to now: nothing more comes
            return
        try:  # the next poll: a NOTIFY of the batch's news (PostgreSQL) or the poll interval
            await asyncio.wait_for(wake.wait(), max(0.0, min(poll_seconds, last_sent + heartbeat_seconds - time.monotonic())))
        except TimeoutError:
            pass
        wake.clear()
        if stopping is not None and stopping.is_set():
            return
        if time.monotonic() - last_sent >= heartbeat_seconds:
            yield HEARTBEAT
            last_sent = time.monotonic()


@router.get(
    "/batches/{batch_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "the batch's events as Server-Sent Events (`id:`, `event:`, `data:` JSON; `: heartbeat` comments)",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **errors(400, *AUTH_ERRORS, 404),
    },
)
async def batch_events(batch_id: str, request: Request) -> StreamingResponse:
    """`GET /video/batches/{batchId}/events`: the batch's state changes as Server-Sent Events."""
    check_id(batch_id, "batchId")
    after = last_event_id(request)
    state = request.app.state
    batch = await run_in_threadpool(state.db.batches.get_batch, batch_id)
    if batch is None or not principal_of(request).can_see(batch.workspace_id):  # another workspace's: as unknown
        raise ApiError(404, ApiErrorCode.NOT_FOUND, f"no batch {batch_id!r}", {"batchId": batch_id})
    settings = state.settings
    body = event_stream(
        EventCursor(state.db.events, batch_id, after=after),
        terminal_at_connect=batch.terminal,
        poll_seconds=settings.events_poll_seconds,
        heartbeat_seconds=settings.events_heartbeat_seconds,
        urls=state.media_urls,
        stopping=getattr(state, "stopping", None),
        wakeups=getattr(state, "wakeups", None),
    )
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering of the stream
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)
