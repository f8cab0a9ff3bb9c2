"""A fake fal.ai queue API (Kling image-to-video) over real HTTP.

It validates submits like the real model (Key auth, `prompt`/`image_url` required, `duration`
"5"|"10"), answers with status/response/cancel URLs that carry only `owner/app` (and 404s the
model-sub-path form), runs requests IN_QUEUE -> IN_PROGRESS -> COMPLETED, serves real MP4s,
signs webhooks with its own Ed25519 key (JWKS at `/.well-known/jwks.json`) and POSTs them to the
`fal_webhook` URL of the submit, and counts everything.

    with FakeFal() as fake:
        gen = FalGenerator(fake.key, queue_url=fake.url, webhook_url=receiver.url + "/webhooks/fal")
        verifier = FalWebhookVerifier(fake.jwks_url)
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from collections import Counter
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from zencourt_pipeline_tests.fakes.fal_api import (
    MODELS,
    FakeRequest,
    FalScript,
    detail_entry,
    policy_detail,
    validate_kling_input,
)
from zencourt_pipeline_tests.fakes.fal_webhooks import FalWebhooks
from zencourt_pipeline_tests.fakes.faults import (
    DROP,
    AnswerFaults,
    FaultLog,
    OutputFaults,
    OutputToken,
    answer_with_fault,
)
from zencourt_pipeline_tests.fakes.server import FakeService, ScriptBook, image_size_of_data_uri, phase_of

__all__ = ["FakeFal", "FakeRequest", "FalScript", "validate_kling_input"]  # (fal_api.py, fal_webhooks.py: the rest)


class FakeFal(OutputFaults, FalWebhooks, FakeService):
    """The fake queue. Attributes tests read or set:

    counts: Counter of "submit" (POSTs received), "queued", "submit_rejected" (422),
        "submit_fault", "status" (status GETs), "result" (response GETs), "cancel",
        "wrong_url" (model-sub-path URLs, answered 404), "download", "download_fault",
        "download_expired", "submit_answer_dropped", "submit_answer_late", "jwks", "webhook_sent",
        "unauthorized".
    submits_by_prompt, status_by_request, submit_bodies, requests (id -> FakeRequest),
    webhook_deliveries (dicts: request_id, url, status or error, body, headers).
    scripts: ScriptBook of FalScript. submit_faults: answered and popped before the real
        handling: "content_policy" / "invalid" (422s) or an HTTP status (with X-Fal-Error-Type).
        status_faults: HTTP statuses answered (and popped) to the next status GETs. webhook_url_override: deliver here instead of the
        submitted `fal_webhook`. webhook_timestamp_offset: seconds added to the signed timestamp.

    Misbehaviour knobs (each consumed by the next requests, in order; see `fakes/faults.py`):
    drop_answer_next_submits(n): the next n submits ARE queued (they run, complete and call their
        webhook), then the connection is closed without an answer (a transport error).
    answer_late_next_submits(n, delay): queued, answered `delay` seconds late.
    reorder_next_submits(n, max_wait): the next n submits whose request will call its webhook within
        `max_wait` s (time mode, no hold, webhook "deliver") are answered only once that webhook was
        delivered (2xx) or `max_wait` passed: the result overtakes the answer. Other submits pass
        by untouched, so the fault waits for a request it can hit.
    expire_outputs(): every output URL issued so far answers 403 from now on; the next GET of
        the response URL hands out a new, working URL.
    fail_next_downloads(n, status=503): the next n output downloads answer `status` instead of
        the file ("short_body": cut mid-body; "drop": no answer at all).
    """

    def __init__(
        self,
        *,
        key: str = "test-fal-id:test-fal-secret",
        latency: float = 0.05,
        clock: Any = time.monotonic,
        default_script: FalScript | None = None,
        webhook_retries: int = 2,
        webhook_retry_delay: float = 0.1,
    ):
        self.key = key
        self.latency = latency
        self.clock = clock
        self.scripts = ScriptBook(default_script or FalScript())
        self.requests: dict[str, FakeRequest] = {}
        self.tokens: dict[str, OutputToken] = {}
        self.counts: Counter[str] = Counter()
        self.submits_by_prompt: Counter[str] = Counter()
        self.status_by_request: Counter[str] = Counter()
        self.submit_bodies: list[Any] = []
        self.submit_faults: list[int | str] = []
        self.status_faults: list[int] = []
        self.download_faults: list[int | str] = []
        self.answer_faults = AnswerFaults()
        self.reorders_left, self.reorder_max_wait = 0, 0.0
        self.fault_log = FaultLog()
        self.expire_next_outputs = 0
        self._init_webhooks(webhook_retries, webhook_retry_delay)
        self._lock = threading.RLock()
        self._timers: list[threading.Timer] = []
        self._stopping = False
        super().__init__(
            Starlette(
                routes=[
                    Route("/.well-known/jwks.json", self._jwks, methods=["GET"]),
                    Route("/files/{token}.mp4", self._download, methods=["GET", "HEAD"]),
                    Route("/{path:path}", self._dispatch, methods=["GET", "POST", "PUT"]),
                ]
            )
        )

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            for timer in self._timers:
                timer.cancel()
        super().stop()

    # ------------------------------------------------------------------------------- controls

    def drop_answer_next_submits(self, n: int = 1) -> None:
        self.answer_faults.add(DROP, n)

    def answer_late_next_submits(self, n: int, delay: float) -> None:
        self.answer_faults.add(float(delay), n)

    def reorder_next_submits(self, n: int, max_wait: float) -> None:
        with self._lock:
            self.reorders_left += n
            self.reorder_max_wait = max_wait

    def _reorder_pick(self, req: FakeRequest) -> bool:
        """Whether `req` takes a pending reorder (its webhook comes well within the wait)."""
        script = req.script
        latency = self.latency if script.latency is None else script.latency
        if (self.reorders_left <= 0 or not req.webhook_url or script.hold or script.statuses is not None
                or script.webhook != "deliver" or latency > self.reorder_max_wait / 2):
            return False
        self.reorders_left -= 1
        return True

    async def _answer_after_webhook(self, req: FakeRequest, answer: Response) -> Response:
        deadline = self.clock() + self.reorder_max_wait
        while self.clock() < deadline and not self._stopping:
            with self._lock:
                if any(d["request_id"] == req.id and 200 <= d.get("status", 0) < 300 for d in self.webhook_deliveries):
                    break
            await asyncio.sleep(0.1)
        return answer

    def release(self, request_id: str) -> None:
        """Let a `hold` request complete (its webhook is then sent)."""
        with self._lock:
            req = self.requests[request_id]
            req.released = True
            self._state(req)

    def state_of(self, request_id: str) -> str:
        with self._lock:
            return self._state(self.requests[request_id])

    # ------------------------------------------------------------------------------- handlers

    def _authorized(self, request: Request) -> bool:
        if request.headers.get("authorization") == f"Key {self.key}":
            return True
        self.counts["unauthorized"] += 1
        return False

    async def _dispatch(self, request: Request) -> Response:
        path = request.path_params["path"].strip("/")
        if request.method == "POST":
            return await self._submit(request, path)
        match = re.fullmatch(r"(?P<app>.+?)/requests/(?P<id>[^/]+)(?P<suffix>/status|/cancel)?", path)
        if match is None:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        with self._lock:
            app, request_id, suffix = match["app"], match["id"], match["suffix"] or ""
            if app.count("/") != 1:  # the model sub-path form: fal answers 404
                self.counts["wrong_url"] += 1
                return JSONResponse({"detail": "Not Found"}, status_code=404)
            if not self._authorized(request):
                return JSONResponse({"detail": "Invalid authentication"}, status_code=401)
            req = self.requests.get(request_id)
            if req is not None and req.app_id != app:
                req = None
            if suffix == "/status" and request.method == "GET":
                return self._status_response(request, req, request_id)
            if suffix == "/cancel" and request.method == "PUT":
                return self._cancel_response(req)
            if suffix == "" and request.method == "GET":
                return self._result_response(request, req)
        return JSONResponse({"detail": "Method Not Allowed"}, status_code=405)

    async def _submit(self, request: Request, model: str) -> Response:
        raw = await request.body()
        with self._lock:
            self.counts["submit"] += 1
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            self.submit_bodies.append(body)
            prompt = body.get("prompt") if isinstance(body, dict) else None
            self.submits_by_prompt[prompt if isinstance(prompt, str) else ""] += 1
            if not self._authorized(request):
                return JSONResponse({"detail": "Invalid authentication"}, status_code=401)
            if model not in MODELS:
                return JSONResponse({"detail": f"Application {model!r} not found"}, status_code=404)
            if self.submit_faults:
                fault = self.submit_faults.pop(0)
                self.counts["submit_fault"] += 1
                self.fault_log.hit(f"submit_{fault}", str(prompt))
                if fault == "content_policy":
                    return JSONResponse({"detail": [policy_detail()]}, status_code=422)
                if fault == "invalid":
                    detail = detail_entry(["body", "image_url"], "Image dimensions are too small", "value_error")
                    return JSONResponse({"detail": [detail]}, status_code=422)
                if int(fault) == 429:
                    return JSONResponse({"detail": "Rate limit exceeded"}, status_code=429, headers={"Retry-After": "1"})
                return JSONResponse(
                    {"detail": "Service unavailable", "error_type": "runner_unavailable"},
                    status_code=int(fault),
                    headers={"X-Fal-Error-Type": "runner_unavailable"},
                )
        problems = await run_in_threadpool(validate_kling_input, body)
        size = None
        if not problems and isinstance(body.get("image_url"), str) and body["image_url"].startswith("data:"):
            size = await run_in_threadpool(image_size_of_data_uri, body["image_url"])
        with self._lock:
            if problems:
                self.counts["submit_rejected"] += 1
                return JSONResponse({"detail": problems}, status_code=422)
            webhook = request.query_params.get("fal_webhook")
            script = self.scripts.pick(prompt)
            req = FakeRequest(
                id=str(uuid.uuid4()),
                model=model,
                body=body,
                script=script,
                created_at=self.clock(),
                webhook_url=webhook,
                gateway_request_id=str(uuid.uuid4()),
                image_size=size,
                expired_left=script.expired_initially,
            )
            self.requests[req.id] = req
            self.counts["queued"] += 1
            base = f"{str(request.base_url).rstrip('/')}/{req.app_id}/requests/{req.id}"
            answer = {
                "request_id": req.id,
                "response_url": base,
                "status_url": f"{base}/status",
                "cancel_url": f"{base}/cancel",
                "queue_position": 0,
            }
            if webhook:
                answer["gateway_request_id"] = req.gateway_request_id
            if script.statuses is None and not script.hold:
                latency = self.latency if script.latency is None else script.latency
                self._schedule(latency, lambda: self._tick(req.id))
            fault = self.answer_faults.pop()
            if fault is not None:
                kind = "submit_answer_dropped" if fault == DROP else "submit_answer_late"
                self.counts[kind] += 1
                self.fault_log.hit(kind, req.id)
                req.answer_held = fault != DROP
            reorder = fault is None and self._reorder_pick(req)
            if reorder:
                req.answer_held = True
                self.counts["submit_answer_reordered"] += 1
        try:
            if reorder:
                return await self._answer_after_webhook(req, JSONResponse(answer, status_code=200))
            return await answer_with_fault(fault, JSONResponse(answer, status_code=200))
        finally:
            with self._lock:
                req.answer_held = False

    def _tick(self, request_id: str) -> None:
        with self._lock:
            self._state(self.requests[request_id])

    def _state(self, req: FakeRequest) -> str:
        """IN_QUEUE | IN_PROGRESS | COMPLETED; completing fires the webhook (once)."""
        if req.final is None:
            script = req.script
            if script.hold and not req.released:
                return "IN_PROGRESS"
            if script.statuses is not None and not script.hold:
                index = max(req.status_gets - 1, 0)  # the status GET being answered
                if index < len(script.statuses):
                    return script.statuses[index]
            elif not script.hold:
                latency = self.latency if script.latency is None else script.latency
                phase, _ = phase_of(self.clock() - req.created_at, latency, ["IN_QUEUE", "IN_PROGRESS"])
                if phase is not None:
                    return phase
            req.final = script.outcome
            self._on_complete(req)
        return "COMPLETED"

    def _status_response(self, request: Request, req: FakeRequest | None, request_id: str) -> Response:
        self.counts["status"] += 1
        self.status_by_request[request_id] += 1
        if self.status_faults:
            status = self.status_faults.pop(0)
            self.fault_log.hit(f"status_{status}", request_id)
            return JSONResponse(
                {"detail": "Upstream unavailable"},
                status_code=status,
                headers={"X-Fal-Error-Type": "gateway_error"},
            )
        if req is None:
            return JSONResponse({"detail": "Request not found"}, status_code=404)
        req.status_gets += 1
        state = self._state(req)
        logs = (
            [{"message": f"fake log for {req.id}", "level": "INFO"}]
            if request.query_params.get("logs") == "1"
            else None
        )
        base = f"{str(request.base_url).rstrip('/')}/{req.app_id}/requests/{req.id}"
        if state == "IN_QUEUE":
            return JSONResponse({"status": state, "queue_position": 0, "response_url": base}, status_code=202)
        if state == "IN_PROGRESS":
            return JSONResponse({"status": state, "logs": logs, "response_url": base}, status_code=202)
        data: dict[str, Any] = {
            "status": "COMPLETED",
            "logs": logs,
            "metrics": {"inference_time": 1.5},
            "response_url": base,
        }
        if req.final == "fail":
            data.update(error=req.script.error, error_type=req.script.error_type)
        elif req.final == "content_policy":
            data.update(error="Content policy violation", error_type="content_policy_violation")
        elif req.final == "canceled":
            data.update(error="Request was cancelled", error_type="request_cancelled")
        return JSONResponse(data, status_code=200)

    def _result_payload(self, req: FakeRequest, base_url: str) -> dict[str, Any]:
        token = self.current_output(req)
        return {"video": {"url": f"{base_url}/files/{token}.mp4", "content_type": "video/mp4", "file_name": "output.mp4"}}

    def _result_response(self, request: Request, req: FakeRequest | None) -> Response:
        self.counts["result"] += 1
        if req is None:
            return JSONResponse({"detail": "Request not found"}, status_code=404)
        if self._state(req) != "COMPLETED":
            return JSONResponse({"detail": "Request is still in progress"}, status_code=400)
        if req.final == "succeed":
            return JSONResponse(self._result_payload(req, str(request.base_url).rstrip("/")))
        if req.final == "content_policy":
            return JSONResponse({"detail": [policy_detail()]}, status_code=422)
        if req.final == "canceled":
            return JSONResponse({"detail": "Request was cancelled"}, status_code=400)
        return JSONResponse(
            {"detail": req.script.error, "error_type": req.script.error_type},
            status_code=500,
            headers={"X-Fal-Error-Type": req.script.error_type},
        )

    def _cancel_response(self, req: FakeRequest | None) -> Response:
        self.counts["cancel"] += 1
        if req is None:
            return JSONResponse({"status": "NOT_FOUND"}, status_code=404)
        if self._state(req) == "COMPLETED":
            return JSONResponse({"status": "ALREADY_COMPLETED"}, status_code=400)
        req.final = "canceled"
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)

    # -------------------------------------------------------------------------------- outputs

    def _output_owner(self, owner_id: str) -> FakeRequest | None:
        return self.requests.get(owner_id)

    def _output_size(self, owner: FakeRequest) -> tuple[int, int]:
        w, h = owner.image_size or (1280, 720)
        return (1280, 720) if w >= h else (720, 1280)

    async def _download(self, request: Request) -> Response:
        return await self.serve_output(request.path_params["token"])
