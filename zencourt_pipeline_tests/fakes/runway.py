"""A fake Runway API (2024-11-06) over real HTTP: validates requests like the real one, runs
tasks through PENDING -> THROTTLED -> RUNNING -> SUCCEEDED/FAILED, serves real MP4 outputs,
injects faults and counts every request.

    with FakeRunway() as fake:
        gen = RunwayGenerator(fake.api_key, base_url=fake.url)
        fake.fail_next_creates(2, status=429)
        fake.scripts.next(RunwayScript(outcome="fail", failure_code="SAFETY.INPUT.IMAGE"))
        ...
        assert fake.counts["create"] == 1
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from zencourt_pipeline_tests.fakes.faults import (
    DROP,
    REPLAY,
    AnswerFaults,
    FaultLog,
    OutputFaults,
    OutputToken,
    answer_with_fault,
)
from zencourt_pipeline_tests.fakes.runway_api import (
    API_VERSION,
    UUID_RE,
    FakeTask,
    RunwayScript,
    validate_image_to_video,
)
from zencourt_pipeline_tests.fakes.server import FakeService, ScriptBook, phase_of

__all__ = ["FakeRunway", "FakeTask", "RunwayScript", "validate_image_to_video"]  # (runway_api.py holds the API's constraints)


class FakeRunway(OutputFaults, FakeService):
    """The fake API. Attributes tests read or set:

    counts: Counter of "create" (every POST received), "created" (tasks made), "create_rejected"
        (400), "create_fault" (injected failures), "create_answer_dropped", "create_answer_late",
        "poll" (task GETs), "delete", "download", "download_fault", "download_expired",
        "unauthorized".
    creates_by_prompt: Counter of promptText per create POST received.
    polls_by_task, poll_times (server clock per task GET), create_bodies (received JSON bodies).
    scripts: a ScriptBook of RunwayScript (`scripts.next(...)`, `scripts.for_prompt(...)`,
        `scripts.default`).
    create_faults / get_faults / delete_faults / download_faults: lists of HTTP statuses answered
        (and popped) before the real handling; `create_fault_creates_task` makes a 5xx create
        fault still create the task (the ambiguous case).
    create_delay: seconds a create waits (after creating the task) before answering, to make a
        client's read timeout fire on a request that did create a task.
    create_pre_delay: seconds a create waits BEFORE creating the task; a client that disconnects
        meanwhile creates nothing (counted as `create_aborted`).

    Misbehaviour knobs (each consumed by the next requests, in order; see `fakes/faults.py`):
    drop_answer_next_creates(n): the next n creates DO create their task, then the connection is
        closed without an answer (the client sees a transport error, not HTTP).
    answer_late_next_creates(n, delay): the next n creates create their task and answer `delay`
        seconds late (past a client's read timeout the answer is lost).
    expire_outputs(): every output URL issued so far answers 403 from now on; the next GET of a
        task hands out a new, working URL.
    fail_next_downloads(n, status=503): the next n output downloads answer `status` instead of
        the file ("short_body": the transfer is cut mid-body; "drop": no answer at all).
    """

    def __init__(
        self,
        *,
        api_key: str = "test-runway-key",
        latency: float = 0.05,
        clock: Any = time.monotonic,
        default_script: RunwayScript | None = None,
    ):
        self.api_key = api_key
        self.latency = latency
        self.clock = clock
        self.scripts = ScriptBook(default_script or RunwayScript())
        self.tasks: dict[str, FakeTask] = {}
        self.tokens: dict[str, OutputToken] = {}
        self.counts: Counter[str] = Counter()
        self.creates_by_prompt: Counter[str] = Counter()
        self.polls_by_task: Counter[str] = Counter()
        self.poll_times: dict[str, list[float]] = {}
        self.create_bodies: list[Any] = []
        self.create_faults: list[int] = []
        self.create_fault_creates_task = False
        self.create_delay = 0.0
        self.create_pre_delay = 0.0
        self.get_faults: list[int] = []
        self.poll_delay = 0.0  # seconds each GET of a task takes to answer (a slow API)
        self.polls_in_flight = 0
        self.max_polls_in_flight = 0  # the most GETs of tasks answered at once
        self.delete_faults: list[int] = []
        self.download_faults: list[int | str] = []
        self.answer_faults = AnswerFaults()
        self.last_answered_id: str | None = None  # what a replayed create answer names
        self.fault_log = FaultLog()
        self.expire_next_outputs = 0
        # credits per second of a finished task's `cost: {"credits": N}` (None: no cost field, as
        # in Runway's published spec; servers that bill per task report it)
        self.report_credits_per_second: float | None = None
        self._lock = threading.RLock()
        super().__init__(
            Starlette(
                routes=[
                    Route("/v1/image_to_video", self._create, methods=["POST"]),
                    Route("/v1/tasks/{task_id}", self._task, methods=["GET", "DELETE"]),
                    Route("/outputs/{token}.mp4", self._download, methods=["GET", "HEAD"]),
                ]
            )
        )

    # ------------------------------------------------------------------------------- controls

    def fail_next_creates(self, n: int, status: int = 429) -> None:
        with self._lock:
            self.create_faults.extend([status] * n)

    def drop_answer_next_creates(self, n: int = 1) -> None:
        self.answer_faults.add(DROP, n)

    def answer_late_next_creates(self, n: int, delay: float) -> None:
        self.answer_faults.add(float(delay), n)

    def replay_answer_next_creates(self, n: int = 1) -> None:
        """The next n creates make their task but answer with the id an earlier create got (a
        duplicate create answer, as from a caching hop): the client never learns its own task."""
        self.answer_faults.add(REPLAY, n)

    def fail_next_gets(self, n: int, status: int = 503) -> None:
        with self._lock:
            self.get_faults.extend([status] * n)

    def release(self, task_id: str) -> None:
        """Let a `hold` task finish."""
        with self._lock:
            self.tasks[task_id].released = True

    def status_of(self, task_id: str) -> str:
        with self._lock:
            return self._status(self.tasks[task_id])[0]

    # ------------------------------------------------------------------------------- handlers

    @staticmethod
    def _error(status: int, message: str, **extra: Any) -> JSONResponse:
        return JSONResponse({"error": message, **extra}, status_code=status)

    def _check_headers(self, request: Request) -> JSONResponse | None:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            self.counts["unauthorized"] += 1
            return self._error(401, "Invalid API key")
        version = request.headers.get("x-runway-version")
        if version is None:
            return self._error(400, "The X-Runway-Version header is required")
        if version != API_VERSION:
            return self._error(400, f"Unsupported API version {version!r}")
        return None

    async def _create(self, request: Request) -> Response:
        raw = await request.body()
        with self._lock:
            self.counts["create"] += 1
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            self.create_bodies.append(body)
            prompt = body.get("promptText") if isinstance(body, dict) else None
            self.creates_by_prompt[prompt if isinstance(prompt, str) else ""] += 1
            refused = self._check_headers(request)
            if refused is not None:
                return refused
            if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
                return self._error(400, "Expected a JSON body")
            fault = self.create_faults.pop(0) if self.create_faults else None
            if fault is not None and not (fault >= 500 and self.create_fault_creates_task):
                self.counts["create_fault"] += 1
                self.fault_log.hit(f"create_{fault}", str(prompt))
                message = "You have exceeded the daily task limit" if fault == 429 else "Service unavailable"
                return self._error(fault, message)
        issues = await run_in_threadpool(validate_image_to_video, body)
        waited, pre_delay = 0.0, self.create_pre_delay  # fixed when the request arrives
        while waited < pre_delay:  # slow to accept; a client that hangs up creates nothing
            await asyncio.sleep(0.05)
            waited += 0.05
            if await request.is_disconnected():
                self.counts["create_aborted"] += 1
                return Response(status_code=499)
        with self._lock:
            if issues:
                self.counts["create_rejected"] += 1
                return self._error(400, "Validation of body failed", issues=issues)
            now = self.clock()
            script = self.scripts.pick(prompt)
            task = FakeTask(
                id=str(uuid.uuid4()),
                body=body,
                script=script,
                created_at=now,
                created_iso=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                expired_left=script.expired_initially,
            )
            self.tasks[task.id] = task
            self.counts["created"] += 1
            if fault is not None:  # the ambiguous case: created, but answered with a 5xx
                self.counts["create_fault"] += 1
                self.fault_log.hit(f"create_{fault}_after_create", task.id)
                return self._error(fault, "Bad gateway")
            delay = self.create_delay
            answered_id = task.id
            answer_fault = self.answer_faults.pop()
            if answer_fault == REPLAY:
                if self.last_answered_id is None:  # nothing to replay yet: the fault waits for the next create
                    self.answer_faults.add(REPLAY)
                    answer_fault = None
                else:
                    answered_id, answer_fault = self.last_answered_id, None
                    self.counts["create_answer_replayed"] += 1
                    self.fault_log.hit("create_answer_replayed", task.id)
            elif answer_fault is not None:
                kind = "create_answer_dropped" if answer_fault == DROP else "create_answer_late"
                self.counts[kind] += 1
                self.fault_log.hit(kind, task.id)
        if delay > 0:
            await asyncio.sleep(delay)
        answer = await answer_with_fault(answer_fault, JSONResponse({"id": answered_id}, status_code=200))
        if answer_fault is None and answered_id == task.id:
            with self._lock:  # a replay names an id its client already got (not a dropped or held answer)
                self.last_answered_id = task.id
        return answer

    def _status(self, task: FakeTask) -> tuple[str, float]:
        """Current (status, progress) of `task`; records the terminal state when reached."""
        script = task.script
        if task.final is not None:
            return task.final, 1.0
        if script.hold and not task.released:
            return "RUNNING", 0.5
        if script.statuses is not None:
            index = max(task.gets - 1, 0)  # the GET being answered (0-based)
            if index < len(script.statuses):
                return script.statuses[index], (index + 1) / (len(script.statuses) + 1)
            phase = None
            progress = 1.0
        else:
            latency = self.latency if script.latency is None else script.latency
            phases = ["PENDING", "THROTTLED", "RUNNING"] if script.throttled else ["PENDING", "RUNNING"]
            phase, progress = phase_of(self.clock() - task.created_at, latency, phases)
        if phase is not None:
            return phase, progress
        task.final = {"succeed": "SUCCEEDED", "fail": "FAILED", "cancel": "CANCELLED"}[script.outcome]
        return task.final, 1.0

    def _task_json(self, task: FakeTask, base_url: str) -> dict[str, Any]:
        status, progress = self._status(task)
        data: dict[str, Any] = {"id": task.id, "createdAt": task.created_iso, "status": status}
        if status == "RUNNING":
            data["progress"] = round(progress, 3)
        elif status == "FAILED":
            data["failure"] = task.script.failure
            if task.script.failure_code:
                data["failureCode"] = task.script.failure_code
        elif status == "SUCCEEDED":
            data["output"] = [f"{base_url}/outputs/{self.current_output(task)}.mp4"]
            if self.report_credits_per_second is not None:
                data["cost"] = {"credits": self.report_credits_per_second * int(task.body.get("duration", 10))}
        return data

    async def _task(self, request: Request) -> Response:
        if request.method == "GET" and self.poll_delay:
            with self._lock:
                self.polls_in_flight += 1
                self.max_polls_in_flight = max(self.max_polls_in_flight, self.polls_in_flight)
            try:
                await asyncio.sleep(self.poll_delay)
            finally:
                with self._lock:
                    self.polls_in_flight -= 1
        return self._task_answer(request)

    def _task_answer(self, request: Request) -> Response:
        task_id = request.path_params["task_id"]
        with self._lock:
            if request.method == "DELETE":
                self.counts["delete"] += 1
            else:
                self.counts["poll"] += 1
                self.polls_by_task[task_id] += 1
                self.poll_times.setdefault(task_id, []).append(self.clock())
            refused = self._check_headers(request)
            if refused is not None:
                return refused
            faults = self.delete_faults if request.method == "DELETE" else self.get_faults
            if faults:
                status = faults.pop(0)
                self.fault_log.hit(f"{request.method.lower()}_{status}", task_id)
                return self._error(status, "Too many requests" if status == 429 else "Service unavailable")
            if not re.match(UUID_RE, task_id):
                return self._error(400, "Invalid task id")
            task = self.tasks.get(task_id)
            if task is None or task.deleted:
                return self._error(404, "Task not found")
            if request.method == "DELETE":
                status, _ = self._status(task)
                if status in ("SUCCEEDED", "FAILED", "CANCELLED"):
                    task.deleted = True
                else:
                    task.final = "CANCELLED"
                return Response(status_code=204)
            task.gets += 1
            return JSONResponse(self._task_json(task, str(request.base_url).rstrip("/")))

    # -------------------------------------------------------------------------------- outputs

    output_missing = ("<Error><Code>NoSuchKey</Code></Error>", "application/xml")
    output_expired = (
        "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
        "application/xml",
    )
    not_mp4_body = "<html><body>502 Bad Gateway</body></html>"

    def _output_owner(self, owner_id: str) -> FakeTask | None:
        task = self.tasks.get(owner_id)
        return None if task is None or task.deleted else task

    def _output_size(self, owner: FakeTask) -> tuple[int, int]:
        width, height = str(owner.body.get("ratio", "1280:720")).split(":")
        return int(width), int(height)

    async def _download(self, request: Request) -> Response:
        return await self.serve_output(request.path_params["token"])
