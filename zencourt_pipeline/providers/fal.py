"""fal.ai queue API, Kling image-to-video.

A thin client over the documented queue API (the `fal-client` SDK reads its host at import time
and polls every 0.1 s). Kling has no aspect-ratio input: the output follows the image, so the
photo is centre-cropped to the request's generation ratio (`GenerationRequest.generation_ratio`,
the same six frames as Runway's `ratio`) and sent as a JPEG data URI.

The status/result/cancel URLs returned by the submit are stored in `TaskRef.meta` and used as
given: they carry only `owner/app`, not the model's sub-path.

A submit whose answer was lost (read timeout, connection dropped after sending, any 5xx, a 2xx
without a request id) raises `AnswerLost` (PROVIDER_ANSWER_LOST): the request may be queued and
paid, so it is neither re-sent nor fallen back.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from zencourt_pipeline.domain import kling_seconds
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.photos import crop_to_aspect, jpeg_data_uri
from zencourt_pipeline.net.backoff import RetryPolicy
from zencourt_pipeline.providers.base import (
    AnswerLost,
    GenerationError,
    GenerationRequest,
    SubmittedTask,
    TaskRef,
    TaskState,
    TaskStatus,
)
from zencourt_pipeline.providers.http import HttpVideoGenerator, error_text, json_or_none

log = logging.getLogger(__name__)

DEFAULT_QUEUE_URL = "https://queue.fal.run"
DEFAULT_MODEL = "fal-ai/kling-video/v2.1/standard/image-to-video"
NEGATIVE_PROMPT = "blur, distort, and low quality"
CFG_SCALE = 0.5
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
    return str(kling_seconds(seconds))


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
    label = "fal"
    unavailable_code = UNAVAILABLE
    cancel_failed_code = ErrorCode.FAL_CANCEL_FAILED
    default_timeout = httpx.Timeout(60.0, connect=10.0)
    default_create_policy = RetryPolicy(max_attempts=3, base_delay=1.0, max_delay=10.0, max_total_seconds=30.0)
    poll_interval_seconds = 5.0

    def __init__(
        self, key: str, *, queue_url: str = DEFAULT_QUEUE_URL, webhook_url: str | None = None,
        model: str = DEFAULT_MODEL, work_dir: Path | None = None, **options: Any,
    ):  # fmt: skip
        """`options`: HttpVideoGenerator's (timeout, create_policy, read_policy, client, ...)."""
        self._api_key = self._required_key(key, "FAL_KEY")
        parts = model.strip("/").split("/")
        if len(parts) < 2:
            raise ValueError(f"fal model id must be owner/app[/path], got {model!r}")
        self.queue_url = queue_url.rstrip("/")
        self.model = model.strip("/")
        self.app_id = "/".join(parts[:2])  # owner/app: what status/result/cancel URLs carry
        self.webhook_url = webhook_url
        self.work_dir = work_dir
        super().__init__(api_url=self.queue_url, **options)

    def __repr__(self) -> str:
        return f"FalGenerator(queue_url={self.queue_url!r}, model={self.model!r})"

    # ------------------------------------------------------------------------------- plumbing

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self._api_key}", "Accept": "application/json"}

    def request_urls(self, request_id: str) -> dict[str, str]:
        """Fallback status/response/cancel URLs (`{queue}/{owner}/{app}/requests/{id}...`)."""
        base = f"{self.queue_url}/{self.app_id}/requests/{quote(request_id, safe='')}"
        return {"status_url": f"{base}/status", "response_url": base, "cancel_url": f"{base}/cancel"}

    def _url(self, ref: TaskRef, kind: str) -> str:
        return ref.meta.get(kind) or self.request_urls(ref.task_id)[kind]

    # --------------------------------------------------------------------------------- submit

    def build_input(self, request: GenerationRequest) -> dict[str, Any]:
        """The Kling model input for `request`. Kling's image-to-video has no aspect input (its clip
        follows the photo), so the photo is centre-cropped to the request's generation ratio."""
        try:
            width, height = request.generation_ratio.size
        except ValueError as exc:  # an unknown orientation or ratio
            raise GenerationError(ErrorCode.INVALID_INPUT, f"no Kling aspect for this request: {exc}") from exc
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
        # 429: refused, nothing queued: retried within the create policy, honouring Retry-After
        response = self._create(f"{self.queue_url}/{self.model}", no_effect_statuses={429}, params=params, json=body)
        if response.status_code in (200, 201, 202) and not response.headers.get("x-fal-error-type"):
            request_id, data = self._created_id(response, "request_id", "submit without a request_id: it may be queued")
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
        self._cancel(ref, "PUT", self._url(ref, "cancel_url"), lambda status: 200 <= status < 300 or status in (400, 404))

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

