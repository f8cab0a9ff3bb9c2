"""fal.ai queue API, Kling image-to-video.

A thin client over the documented queue API (the `fal-client` SDK reads its host at import time
and polls every 0.1 s). Kling has no aspect-ratio input: the output follows the image, so the
photo is centre-cropped to the job's orientation and sent as a JPEG data URI.

The status/result/cancel URLs returned by the submit are stored in `TaskRef.meta` and used as
given: they carry only `owner/app`, not the model's sub-path.

A submit whose answer was lost (read timeout, connection dropped after sending, any 5xx, a 2xx
without a request id) raises `AnswerLost` (PROVIDER_ANSWER_LOST): the request may be queued and
paid, so it is neither re-sent nor fallen back.
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.photos import crop_to_aspect, jpeg_data_uri
from zencourt_pipeline.net.backoff import RetryPolicy
from zencourt_pipeline.net.fetch import FetchPolicy
from zencourt_pipeline.providers.base import (
    AnswerLost,
    GenerationError,
    GenerationRequest,
    SubmittedTask,
    TaskRef,
    TaskState,
    TaskStatus,
)
from zencourt_pipeline.providers.http import (
    DEFAULT_MAX_DOWNLOAD_BYTES,
    HttpVideoGenerator,
    error_text,
    json_or_none,
    request_with_retry,
    send_create,
)

log = logging.getLogger(__name__)

DEFAULT_QUEUE_URL = "https://queue.fal.run"
DEFAULT_MODEL = "fal-ai/kling-video/v2.1/standard/image-to-video"
NEGATIVE_PROMPT = "blur, distort, and low quality"
CFG_SCALE = 0.5
DURATIONS = (5, 10)
PROMPT_MAX_CHARS = 2500
DATA_URI_MAX_CHARS = 5_000_000

CONTENT_POLICY = ErrorCode.FAL_CONTENT_POLICY
GENERATION_FAILED = ErrorCode.FAL_GENERATION_FAILED
UNAVAILABLE = ErrorCode.FAL_UNAVAILABLE
AUTH_FAILED = ErrorCode.FAL_AUTH_FAILED
REQUEST_NOT_FOUND = ErrorCode.FAL_REQUEST_NOT_FOUND
CONTENT_POLICY_TYPE = "content_policy_violation"


def fal_duration(seconds: float) -> str:
    """The allowed Kling duration ("5" or "10") nearest to `seconds` (ties go to the shorter)."""
    return str(min(DURATIONS, key=lambda allowed: (abs(allowed - seconds), allowed)))


def is_content_policy(body: Any) -> bool:
    """Whether a fal error body (`{"detail": [...]}`, `{"error_type"}`, ...) is a content-policy refusal."""
    if isinstance(body, dict):
        if body.get("error_type") == CONTENT_POLICY_TYPE or body.get("type") == CONTENT_POLICY_TYPE:
            return True
        return is_content_policy(body.get("detail"))
    if isinstance(body, list):
        return any(is_content_policy(item) for item in body)
    if isinstance(body, str):
        return CONTENT_POLICY_TYPE in body
    return False


def detail_message(body: Any, limit: int = 500) -> str:
    """A readable message out of fal's `detail` (a string or a list of `{loc, msg, type}`)."""
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) or [])
                parts.append(f"{loc}: {item.get('msg', '')} ({item.get('type', '')})".strip())
            else:
                parts.append(str(item))
        return "; ".join(parts)[:limit]
    if detail:
        return str(detail)[:limit]
    if isinstance(body, dict) and body.get("error"):
        return str(body["error"])[:limit]
    return ""


class FalGenerator(HttpVideoGenerator):
    name = "fal"
    poll_interval_seconds = 5.0

    def __init__(
        self,
        key: str,
        *,
        queue_url: str = DEFAULT_QUEUE_URL,
        model: str = DEFAULT_MODEL,
        webhook_url: str | None = None,
        timeout: httpx.Timeout | float = httpx.Timeout(60.0, connect=10.0),
        download_timeout: httpx.Timeout | float = httpx.Timeout(120.0, connect=10.0),
        client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        create_policy: RetryPolicy = RetryPolicy(
            max_attempts=3, base_delay=1.0, max_delay=10.0, max_total_seconds=30.0
        ),
        read_policy: RetryPolicy = RetryPolicy(
            max_attempts=4, base_delay=1.0, max_delay=15.0, max_total_seconds=60.0
        ),
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        allowed_private_hosts: Iterable[str] = (),
        download_total_seconds: float = 600.0,
        work_dir: Path | None = None,
    ):
        if not key:
            raise ValueError("a fal API key is required (FAL_KEY)")
        parts = model.strip("/").split("/")
        if len(parts) < 2:
            raise ValueError(f"fal model id must be owner/app[/path], got {model!r}")
        self._key = key
        self.queue_url = queue_url.rstrip("/")
        self.model = model.strip("/")
        self.app_id = "/".join(parts[:2])  # owner/app: what status/result/cancel URLs carry
        self.webhook_url = webhook_url
        self.timeout = timeout
        self.download_timeout = download_timeout
        self._owns_client = client is None
        self._client = client or httpx.Client(transport=transport, timeout=timeout)
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self.create_policy = create_policy
        self.read_policy = read_policy
        self.max_download_bytes = max_download_bytes
        # Output URLs come from the provider's answers: downloaded SSRF-safe (checked, pinned
        # addresses, bounded redirects, size and time limits). The configured API host itself
        # (an operator's choice, e.g. a test double on loopback) may serve them too.
        self.fetch_policy = FetchPolicy.from_hosts(
            [*allowed_private_hosts, urlsplit(self.queue_url).hostname or ""],
            max_bytes=max_download_bytes,
            total_seconds=download_total_seconds,
        )
        self._download_client: httpx.Client | None = None  # made at the first download
        self.work_dir = work_dir

    def __repr__(self) -> str:
        return f"FalGenerator(queue_url={self.queue_url!r}, model={self.model!r})"

    # ------------------------------------------------------------------------------- plumbing

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self._key}", "Accept": "application/json"}

    def request_urls(self, request_id: str) -> dict[str, str]:
        """Fallback status/response/cancel URLs (`{queue}/{owner}/{app}/requests/{id}...`)."""
        base = f"{self.queue_url}/{self.app_id}/requests/{quote(request_id, safe='')}"
        return {"status_url": f"{base}/status", "response_url": base, "cancel_url": f"{base}/cancel"}

    def _url(self, ref: TaskRef, kind: str) -> str:
        return ref.meta.get(kind) or self.request_urls(ref.task_id)[kind]

    def _read(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return request_with_retry(
                self._client,
                method,
                url,
                idempotent=True,
                policy=self.read_policy,
                sleep=self._sleep,
                rng=self._rng,
                clock=self._clock,
                headers=self._headers(),
                timeout=self.timeout,
                **kwargs,
            )
        except httpx.TransportError as exc:
            raise GenerationError(
                UNAVAILABLE, f"{method} {url}: {type(exc).__name__}: {exc}", fallback=True, retryable=True
            ) from exc

    # --------------------------------------------------------------------------------- submit

    def build_input(self, request: GenerationRequest) -> dict[str, Any]:
        """The Kling model input for `request` (crops the photo to the orientation's aspect)."""
        width, height = request.size
        try:
            with tempfile.TemporaryDirectory(prefix="zencourt-fal-", dir=self.work_dir) as tmp:
                cropped = crop_to_aspect(Path(request.photo_path), Path(tmp) / "cropped.jpg", width, height)
                image_url = jpeg_data_uri(cropped, max_chars=DATA_URI_MAX_CHARS)
        except MediaError as exc:
            raise GenerationError(ErrorCode.INVALID_INPUT, exc.message) from exc
        prompt = (request.prompt or "").strip()[:PROMPT_MAX_CHARS]
        if not prompt:
            raise GenerationError(ErrorCode.INVALID_INPUT, "fal/Kling needs a non-empty prompt")
        return {
            "prompt": prompt,
            "image_url": image_url,
            "duration": fal_duration(request.duration_seconds),
            "negative_prompt": NEGATIVE_PROMPT,
            "cfg_scale": CFG_SCALE,
        }

    def submit(self, request: GenerationRequest) -> SubmittedTask:
        body = self.build_input(request)
        params = {"fal_webhook": self.webhook_url} if self.webhook_url else None
        # only connect errors are retried: a lost answer may hide a queued request
        response = send_create(
            self._client,
            f"{self.queue_url}/{self.model}",
            provider="fal",
            model=self.model,
            unavailable_code=UNAVAILABLE,
            policy=self.create_policy,
            sleep=self._sleep,
            rng=self._rng,
            clock=self._clock,
            headers={**self._headers(), "Connection": "close"},  # fresh connection for the paid submit
            params=params,
            json=body,
            timeout=self.timeout,
        )
        if response.status_code in (200, 201, 202) and not response.headers.get("x-fal-error-type"):
            data = json_or_none(response)
            request_id = data.get("request_id") if isinstance(data, dict) else None
            if not isinstance(request_id, str) or not request_id:
                raise AnswerLost(
                    f"fal answered {response.status_code} to the submit without a request_id: it may be queued",
                    model=self.model,
                )
            meta: dict[str, Any] = {"model": self.model}
            defaults = self.request_urls(request_id)
            for kind in ("status_url", "response_url", "cancel_url"):
                value = data.get(kind)
                meta[kind] = value if isinstance(value, str) and value.startswith("http") else defaults[kind]
            if data.get("gateway_request_id"):
                meta["gateway_request_id"] = data["gateway_request_id"]
            log.info("fal request %s queued for job %s", request_id, request.job_id)
            return SubmittedTask(ref=TaskRef(self.name, request_id, meta))
        raise self._submit_error(response, self.model)

    @staticmethod
    def _submit_error(response: httpx.Response, model: str | None = None) -> GenerationError:
        status = response.status_code
        body = json_or_none(response)
        message = detail_message(body) or error_text(response)
        if status in (400, 422) and is_content_policy(body):
            return GenerationError(CONTENT_POLICY, f"fal content policy: {message}", fallback=False)
        infra = response.headers.get("x-fal-error-type")
        if status >= 500 or (infra and 200 <= status < 300):
            return AnswerLost(
                f"fal answered {status}{f' ({infra})' if infra else ''} to the submit; the request may or may "
                f"not be queued (and paid): not re-sent, not fallen back: {message}",
                model=model,
            )
        if infra and status not in (401, 403, 429):
            return GenerationError(
                UNAVAILABLE, f"fal refused the submit ({status}, {infra}): {message}", fallback=True, retryable=True
            )
        if status in (401, 403):
            return GenerationError(AUTH_FAILED, f"fal refused the key: {message}", fallback=True)
        if status == 429:
            return GenerationError(ErrorCode.FAL_RATE_LIMITED, message, fallback=True, retryable=True)
        if status in (400, 422):
            return GenerationError(ErrorCode.INVALID_INPUT, f"fal rejected the input: {message}", fallback=False)
        return GenerationError(ErrorCode.FAL_REQUEST_FAILED, f"unexpected answer to submit: {message}", fallback=True)

    # ----------------------------------------------------------------------------------- poll

    def poll(self, ref: TaskRef) -> TaskStatus:
        response = self._read("GET", self._url(ref, "status_url"), params={"logs": "1"})
        status = response.status_code
        if status == 404:
            return TaskStatus(
                TaskState.FAILED,
                error_code=REQUEST_NOT_FOUND,
                error_message=f"fal request {ref.task_id} is unknown",
                raw=json_or_none(response),
            )
        if status in (401, 403):
            raise GenerationError(AUTH_FAILED, error_text(response), fallback=True)
        data = json_or_none(response)
        if status not in (200, 202) or not isinstance(data, dict):
            raise GenerationError(
                UNAVAILABLE, f"request status: {error_text(response)}", fallback=True, retryable=True
            )
        state = str(data.get("status", "")).upper()
        if state == "IN_QUEUE":
            return TaskStatus(TaskState.PENDING, raw=data)
        if state == "IN_PROGRESS":
            return TaskStatus(TaskState.RUNNING, raw=data)
        if state in ("CANCELLED", "CANCELED"):
            return TaskStatus(TaskState.CANCELED, raw=data)
        if state != "COMPLETED":
            log.warning("unknown fal status %r: treated as pending", state)
            return TaskStatus(TaskState.PENDING, raw=data)
        if data.get("error") or data.get("error_type"):
            error_type = str(data.get("error_type") or "")
            message = str(data.get("error") or error_type)
            if "cancel" in error_type.lower():
                return TaskStatus(TaskState.CANCELED, error_message=message, raw=data)
            code = CONTENT_POLICY if is_content_policy(data) else GENERATION_FAILED
            return TaskStatus(TaskState.FAILED, error_code=code, error_message=message, raw=data)
        return self._result(ref)

    def _result(self, ref: TaskRef) -> TaskStatus:
        """GET the response URL of a completed request."""
        response = self._read("GET", self._url(ref, "response_url"))
        status = response.status_code
        body = json_or_none(response)
        if status == 200 and isinstance(body, dict):
            video = body.get("video")
            url = video.get("url") if isinstance(video, dict) else None
            if isinstance(url, str) and url:
                return TaskStatus(TaskState.SUCCEEDED, progress=1.0, output_url=url, raw=body)
            return TaskStatus(
                TaskState.FAILED,
                error_code=GENERATION_FAILED,
                error_message="result has no video.url",
                raw=body,
            )
        message = detail_message(body) or error_text(response)
        if is_content_policy(body):
            return TaskStatus(TaskState.FAILED, error_code=CONTENT_POLICY, error_message=message, raw=body)
        if status in (401, 403):
            raise GenerationError(AUTH_FAILED, message, fallback=True)
        if status >= 500 and not (response.headers.get("x-fal-error-type") or isinstance(body, dict)):
            raise GenerationError(UNAVAILABLE, f"request result: {message}", fallback=True, retryable=True)
        if status == 400 and "progress" in message.lower():
            return TaskStatus(TaskState.RUNNING, raw=body if isinstance(body, dict) else None)
        return TaskStatus(
            TaskState.FAILED,
            error_code=GENERATION_FAILED,
            error_message=message,
            raw=body if isinstance(body, dict) else None,
        )

    # --------------------------------------------------------------------------------- cancel

    def cancel(self, ref: TaskRef) -> None:
        # Answers: OK / CANCELLATION_REQUESTED (2xx), ALREADY_COMPLETED (400), NOT_FOUND (404).
        response = self._read("PUT", self._url(ref, "cancel_url"))
        if 200 <= response.status_code < 300 or response.status_code in (400, 404):
            return
        raise GenerationError(
            ErrorCode.FAL_CANCEL_FAILED, f"cancel of {ref.task_id}: {error_text(response)}", retryable=True
        )

    # ---------------------------------------------------------------------------------- fetch

    def _fresh_output_url(self, ref: TaskRef) -> str:
        status = self._result(ref)
        if status.state is TaskState.SUCCEEDED and status.output_url:
            return status.output_url
        if status.state is TaskState.RUNNING:
            raise GenerationError(
                ErrorCode.OUTPUT_NOT_READY, f"fal request {ref.task_id} is not done", retryable=True
            )
        raise GenerationError(
            status.error_code or GENERATION_FAILED,
            status.error_message or "no result",
            fallback=status.error_code != CONTENT_POLICY,
        )

