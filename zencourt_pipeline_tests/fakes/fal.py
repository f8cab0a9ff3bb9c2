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

import base64
import hashlib
import json
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from zencourt_pipeline_tests.fakes.faults import (
    DROP,
    AnswerFaults,
    OutputFaults,
    answer_with_fault,
    download_fault_response,
    token_expired,
)
from zencourt_pipeline_tests.fakes.server import (
    ScriptBook,
    ServerThread,
    ShortBodyResponse,
    image_size_of_data_uri,
    phase_of,
    sample_mp4,
)

MODELS = {
    "fal-ai/kling-video/v2.1/standard/image-to-video",
    "fal-ai/kling-video/v2.1/pro/image-to-video",
    "fal-ai/kling-video/v2.5-turbo/pro/image-to-video",
}
INPUT_FIELDS = {"prompt", "image_url", "duration", "negative_prompt", "cfg_scale", "tail_image_url"}
USER_ID = "fake-fal-user"


@dataclass
class FalScript:
    """How one request behaves.

    outcome: "succeed" | "fail" (COMPLETED with `error`/`error_type`, result 500 with
        X-Fal-Error-Type) | "content_policy" (COMPLETED with error, result 422
        content_policy_violation).
    statuses: step mode: the n-th status GET answers statuses[n] ("IN_QUEUE"/"IN_PROGRESS");
        then the request is completed. None = time mode (`latency`).
    latency: seconds from submit to completion in time mode (None = the fake's default).
    hold: stay IN_PROGRESS until `fake.release(request_id)`.
    output / expire / expired_initially: as for the Runway fake (URL forms of the result).
    webhook: "deliver" | "lost" (never called back) | "payload_error" (OK with a null payload).
    webhook_copies: how many times the same webhook is delivered (duplicates).
    """

    outcome: str = "succeed"
    error: str = "Internal error while generating the video"
    error_type: str = "runner_disconnected"
    statuses: list[str] | None = None
    latency: float | None = None
    hold: bool = False
    output: str = "ok"
    expire: str | float | None = None
    expired_initially: int = 0
    webhook: str = "deliver"
    webhook_copies: int = 1


@dataclass
class FakeRequest:
    id: str
    model: str
    body: dict[str, Any]
    script: FalScript
    created_at: float
    webhook_url: str | None
    gateway_request_id: str
    image_size: tuple[int, int] | None = None
    status_gets: int = 0
    released: bool = False
    final: str | None = None  # "succeed" | "fail" | "content_policy" | "canceled"
    tokens: list[str] = field(default_factory=list)
    expired_left: int = 0
    webhook_sent: bool = False

    @property
    def app_id(self) -> str:
        return "/".join(self.model.split("/")[:2])


@dataclass
class _Token:
    request_id: str
    issued_at: float
    dead: bool = False
    downloads: int = 0


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _detail(loc: list[Any], msg: str, type_: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": type_}


def validate_kling_input(body: Any) -> list[dict[str, Any]]:
    """422 `detail` entries for a Kling image-to-video input; [] when valid."""
    if not isinstance(body, dict):
        return [_detail(["body"], "Input should be a valid dictionary", "dict_type")]
    problems = []
    for key in sorted(set(body) - INPUT_FIELDS):
        problems.append(_detail(["body", key], "Extra inputs are not permitted", "extra_forbidden"))
    prompt = body.get("prompt")
    if prompt is None:
        problems.append(_detail(["body", "prompt"], "Field required", "missing"))
    elif not isinstance(prompt, str) or not 1 <= len(prompt) <= 2500:
        problems.append(_detail(["body", "prompt"], "String should have 1 to 2500 characters", "string_type"))
    image = body.get("image_url")
    if image is None:
        problems.append(_detail(["body", "image_url"], "Field required", "missing"))
    elif not isinstance(image, str) or not image.startswith(("https://", "http://", "data:image/")):
        problems.append(
            _detail(["body", "image_url"], "Input should be a valid URL or data URI", "url_parsing")
        )
    elif image.startswith("data:") and image_size_of_data_uri(image) is None:
        problems.append(_detail(["body", "image_url"], "Could not decode the image", "image_load_error"))
    if "duration" in body and body["duration"] not in ("5", "10"):
        problems.append(_detail(["body", "duration"], "Input should be '5' or '10'", "literal_error"))
    if "negative_prompt" in body and not isinstance(body["negative_prompt"], str):
        problems.append(_detail(["body", "negative_prompt"], "Input should be a valid string", "string_type"))
    if "cfg_scale" in body:
        cfg = body["cfg_scale"]
        if isinstance(cfg, bool) or not isinstance(cfg, int | float) or not 0 <= cfg <= 1:
            problems.append(
                _detail(["body", "cfg_scale"], "Input should be between 0 and 1", "less_than_equal")
            )
    return problems


class FakeFal(OutputFaults):
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
        self.tokens: dict[str, _Token] = {}
        self.counts: Counter[str] = Counter()
        self.submits_by_prompt: Counter[str] = Counter()
        self.status_by_request: Counter[str] = Counter()
        self.submit_bodies: list[Any] = []
        self.submit_faults: list[int | str] = []
        self.status_faults: list[int] = []
        self.download_faults: list[int | str] = []
        self.answer_faults = AnswerFaults()
        self.webhook_deliveries: list[dict[str, Any]] = []
        self.webhook_url_override: str | None = None
        self.webhook_timestamp_offset = 0
        self.webhook_retries = webhook_retries
        self.webhook_retry_delay = webhook_retry_delay
        self.user_id = USER_ID
        self.signing_keys: list[tuple[str, Ed25519PrivateKey]] = []
        self.rotate_key()
        self._lock = threading.RLock()
        self._timers: list[threading.Timer] = []
        self._stopping = False
        self.app = Starlette(
            routes=[
                Route("/.well-known/jwks.json", self._jwks, methods=["GET"]),
                Route("/files/{token}.mp4", self._download, methods=["GET", "HEAD"]),
                Route("/{path:path}", self._dispatch, methods=["GET", "POST", "PUT"]),
            ]
        )
        self._server = ServerThread(self.app)

    # ------------------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/.well-known/jwks.json"

    def start(self) -> FakeFal:
        self._server.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            for timer in self._timers:
                timer.cancel()
        self._server.stop()

    def __enter__(self) -> FakeFal:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ----------------------------------------------------------------------------- signatures

    def rotate_key(self, *, keep_old: bool = False) -> str:
        """A new signing key (the JWKS then lists it, plus the old ones with `keep_old`); its kid."""
        kid = uuid.uuid4().hex[:16]
        entry = (kid, Ed25519PrivateKey.generate())
        self.signing_keys = [entry, *self.signing_keys] if keep_old else [entry]
        return kid

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, private in self.signing_keys:
            raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            keys.append(
                {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw), "kid": kid, "use": "sig", "alg": "EdDSA"}
            )
        return {"keys": keys}

    def sign_headers(
        self,
        body: bytes,
        request_id: str,
        *,
        user_id: str | None = None,
        timestamp: int | None = None,
        private_key: Ed25519PrivateKey | None = None,
    ) -> dict[str, str]:
        """The four X-Fal-Webhook-* headers for `body`, signed like fal does."""
        user = user_id or self.user_id
        ts = str(int(time.time()) + self.webhook_timestamp_offset if timestamp is None else timestamp)
        message = f"{request_id}\n{user}\n{ts}\n{hashlib.sha256(body).hexdigest()}".encode()
        key = private_key or self.signing_keys[0][1]
        return {
            "X-Fal-Webhook-Request-Id": request_id,
            "X-Fal-Webhook-User-Id": user,
            "X-Fal-Webhook-Timestamp": ts,
            "X-Fal-Webhook-Signature": key.sign(message).hex(),
        }

    # ------------------------------------------------------------------------------- controls

    def drop_answer_next_submits(self, n: int = 1) -> None:
        self.answer_faults.add(DROP, n)

    def answer_late_next_submits(self, n: int, delay: float) -> None:
        self.answer_faults.add(float(delay), n)

    def release(self, request_id: str) -> None:
        """Let a `hold` request complete (its webhook is then sent)."""
        with self._lock:
            req = self.requests[request_id]
            req.released = True
            self._state(req)

    def state_of(self, request_id: str) -> str:
        with self._lock:
            return self._state(self.requests[request_id])

    def webhook_body(self, req: FakeRequest, base_url: str | None = None) -> dict[str, Any]:
        base: dict[str, Any] = {"request_id": req.id, "gateway_request_id": req.gateway_request_id}
        if req.final == "succeed":
            if req.script.webhook == "payload_error":
                return {
                    **base,
                    "status": "OK",
                    "payload": None,
                    "payload_error": "Response payload is not JSON serializable.",
                }
            return {**base, "status": "OK", "payload": self._result_payload(req, base_url or self.url)}
        if req.final == "content_policy":
            return {
                **base,
                "status": "ERROR",
                "error": "Invalid status code: 422",
                "payload": {"detail": [self._policy_detail()]},
            }
        return {
            **base,
            "status": "ERROR",
            "error": "Invalid status code: 500",
            "payload": {"detail": req.script.error, "error_type": req.script.error_type},
        }

    # ------------------------------------------------------------------------------- handlers

    @staticmethod
    def _policy_detail() -> dict[str, Any]:
        return _detail(
            ["body", "image_url"],
            "The content could not be processed because it contained material flagged by a content checker.",
            "content_policy_violation",
        )

    def _authorized(self, request: Request) -> bool:
        if request.headers.get("authorization") == f"Key {self.key}":
            return True
        self.counts["unauthorized"] += 1
        return False

    async def _jwks(self, request: Request) -> Response:
        with self._lock:
            self.counts["jwks"] += 1
            return JSONResponse(self.jwks())

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
                if fault == "content_policy":
                    return JSONResponse({"detail": [self._policy_detail()]}, status_code=422)
                if fault == "invalid":
                    detail = _detail(["body", "image_url"], "Image dimensions are too small", "value_error")
                    return JSONResponse({"detail": [detail]}, status_code=422)
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
                self.counts["submit_answer_dropped" if fault == DROP else "submit_answer_late"] += 1
        return await answer_with_fault(fault, JSONResponse(answer, status_code=200))

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
        fresh_each_time = req.script.expire is not None or req.script.expired_initially > 0
        if not req.tokens or fresh_each_time or self.tokens[req.tokens[-1]].dead:
            token = uuid.uuid4().hex
            dead = req.expired_left > 0
            req.expired_left -= 1 if dead else 0
            self.tokens[token] = _Token(req.id, self.clock(), dead=dead)
            req.tokens.append(token)
        return {
            "video": {
                "url": f"{base_url}/files/{req.tokens[-1]}.mp4",
                "content_type": "video/mp4",
                "file_name": "output.mp4",
            }
        }

    def _result_response(self, request: Request, req: FakeRequest | None) -> Response:
        self.counts["result"] += 1
        if req is None:
            return JSONResponse({"detail": "Request not found"}, status_code=404)
        if self._state(req) != "COMPLETED":
            return JSONResponse({"detail": "Request is still in progress"}, status_code=400)
        if req.final == "succeed":
            return JSONResponse(self._result_payload(req, str(request.base_url).rstrip("/")))
        if req.final == "content_policy":
            return JSONResponse({"detail": [self._policy_detail()]}, status_code=422)
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

    async def _download(self, request: Request) -> Response:
        with self._lock:
            self.counts["download"] += 1
            if self.download_faults:
                self.counts["download_fault"] += 1
                return download_fault_response(self.download_faults.pop(0))
            token = self.tokens.get(request.path_params["token"])
            req = self.requests.get(token.request_id) if token else None
            if token is None or req is None:
                return Response("Not Found", 404)
            if token_expired(token, req.script.expire, self.clock()):
                self.counts["download_expired"] += 1
                return Response("Forbidden", 403)
            token.downloads += 1
            mode = req.script.output
            w, h = req.image_size or (1280, 720)
        if mode == "not_mp4":
            return Response("<html>oops</html>", 200, media_type="text/html")
        size = (640, 360) if mode == "wrong_size" else ((1280, 720) if w >= h else (720, 1280))
        path: Path = await run_in_threadpool(sample_mp4, *size)
        data = path.read_bytes()
        if mode == "truncated":
            return Response(data[: int(len(data) * 0.6)], 200, media_type="video/mp4")
        if mode == "short_body":
            return ShortBodyResponse(data[: int(len(data) * 0.6)], len(data))
        return Response(data, 200, media_type="video/mp4")

    # ------------------------------------------------------------------------------- webhooks

    def _schedule(self, delay: float, fn: Any) -> None:
        if self._stopping:
            return
        timer = threading.Timer(max(0.0, delay), fn)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _on_complete(self, req: FakeRequest) -> None:
        if req.webhook_sent or req.final == "canceled" or req.script.webhook == "lost":
            return
        url = self.webhook_url_override or req.webhook_url
        if not url:
            return
        req.webhook_sent = True
        body = json.dumps(self.webhook_body(req)).encode()
        for _ in range(max(1, req.script.webhook_copies)):
            self._schedule(0.0, lambda: self._deliver(url, req.id, body))

    def _deliver(self, url: str, request_id: str, body: bytes) -> None:
        for attempt in range(self.webhook_retries + 1):
            if self._stopping:
                return
            headers = {"Content-Type": "application/json", **self.sign_headers(body, request_id)}
            record: dict[str, Any] = {"request_id": request_id, "url": url, "body": body, "headers": headers}
            try:
                response = httpx.post(url, content=body, headers=headers, timeout=5.0)
                record["status"] = response.status_code
            except httpx.HTTPError as exc:
                record["error"] = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self.webhook_deliveries.append(record)
                self.counts["webhook_sent"] += 1
            if 200 <= record.get("status", 0) < 300:
                return
            if attempt < self.webhook_retries:
                time.sleep(self.webhook_retry_delay)
