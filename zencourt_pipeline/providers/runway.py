"""Runway image-to-video (gen4_turbo) over its REST API (version 2024-11-06).

A thin client of our own rather than the `runwayml` SDK: the SDK re-POSTs a create after a 5xx
or a timeout with no idempotency key (a second paid task), and its waiter never stops on
CANCELLED. Here a create is retried only when it provably had no effect (connect errors, and
Runway's 429 daily limit, which creates nothing); a create whose answer was lost (read timeout,
connection dropped after sending, any 5xx, a 2xx without a task id) raises `AnswerLost`
(PROVIDER_ANSWER_LOST): the task may be live and paid, so it is neither re-sent nor fallen back.
Reads are retried with backoff; each task is polled at most once every `min_poll_interval` s.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from zencourt_pipeline.domain import GenerationRatio, clamp_clip_seconds
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.photos import jpeg_data_uri
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
from zencourt_pipeline.providers.rates import reported_credits

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.dev.runwayml.com"
DEFAULT_API_VERSION = "2024-11-06"
DEFAULT_MODEL = "gen4_turbo"

# Constraints of POST /v1/image_to_video (gen4_turbo) in the 2024-11-06 API.
RATIOS = frozenset(GenerationRatio)  # all six: 1280:720 720:1280 1104:832 832:1104 960:960 1584:672
PROMPT_TEXT_MAX_UTF16 = 1000
SEED_MAX = 4_294_967_295
HTTPS_URL_MIN, HTTPS_URL_MAX = 13, 2048
DATA_URI_MAX_CHARS = 5_000_000  # the API allows 5,242,880; keep a margin

SAFETY_REJECTED = ErrorCode.RUNWAY_SAFETY_REJECTED
GENERATION_FAILED = ErrorCode.RUNWAY_GENERATION_FAILED
TASK_NOT_FOUND = ErrorCode.RUNWAY_TASK_NOT_FOUND
RATE_LIMITED = ErrorCode.RUNWAY_RATE_LIMITED
UNAVAILABLE = ErrorCode.RUNWAY_UNAVAILABLE
AUTH_FAILED = ErrorCode.RUNWAY_AUTH_FAILED

_STATE = {
    "PENDING": TaskState.PENDING,
    "THROTTLED": TaskState.PENDING,
    "RUNNING": TaskState.RUNNING,
    "SUCCEEDED": TaskState.SUCCEEDED,
    "FAILED": TaskState.FAILED,
    "CANCELLED": TaskState.CANCELED,
    "CANCELED": TaskState.CANCELED,
}

# Codes for which another provider is worth trying.
_FALLBACK_CODES = {
    GENERATION_FAILED: True,
    RATE_LIMITED: True,
    UNAVAILABLE: True,
    AUTH_FAILED: True,
    TASK_NOT_FOUND: True,
    ErrorCode.RUNWAY_INSUFFICIENT_CREDITS: True,
    ErrorCode.INVALID_OUTPUT: True,
    SAFETY_REJECTED: False,
    ErrorCode.INVALID_INPUT: False,
}


def classify_failure(
    status: TaskStatus | Mapping[str, Any] | GenerationError | str | None,
) -> tuple[ErrorCode, bool]:
    """(error code, whether another provider may be tried) for a failed Runway task.

    Accepts a Runway `failureCode` string, the raw task JSON, a `TaskStatus` from `poll`, or a
    `GenerationError`. `SAFETY.*` (input or output moderation) is final: the same input must not
    be retried anywhere. `INTERNAL.*`, unknown codes, rate limits and outages fall back.
    """
    if isinstance(status, GenerationError):
        return status.code, status.fallback
    if isinstance(status, TaskStatus):
        raw_code = (status.raw or {}).get("failureCode") if isinstance(status.raw, Mapping) else None
        if raw_code:
            return classify_failure(str(raw_code))
        code = status.error_code or GENERATION_FAILED
        return code, _FALLBACK_CODES.get(code, True)
    if isinstance(status, Mapping):
        return classify_failure(status.get("failureCode"))
    code = (status or "").strip().upper()
    if "SAFETY" in code.split("."):
        return SAFETY_REJECTED, False
    return GENERATION_FAILED, True


def trim_utf16(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-16 code units (how Runway measures promptText)."""
    if len(text.encode("utf-16-le")) // 2 <= limit:
        return text
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return text[:index]
    return text


def _https_url_ok(url: str | None) -> bool:
    if not url or not (HTTPS_URL_MIN <= len(url) <= HTTPS_URL_MAX):
        return False
    parts = urlsplit(url)
    host = parts.hostname or ""
    # Runway fetches the URL itself: HTTPS with a domain name, not an IP address.
    return parts.scheme == "https" and "." in host and not host.replace(".", "").isdigit() and ":" not in host


class RunwayGenerator(HttpVideoGenerator):
    name = "runway"
    label = "Runway"
    unavailable_code = UNAVAILABLE
    cancel_failed_code = ErrorCode.RUNWAY_CANCEL_FAILED
    default_create_policy = RetryPolicy(max_attempts=3, base_delay=2.0, max_delay=20.0, max_total_seconds=45.0)
    min_poll_interval = 5.0
    poll_interval_seconds = 5.0

    def __init__(
        self, api_key: str, *, base_url: str = DEFAULT_BASE_URL, api_version: str = DEFAULT_API_VERSION,
        model: str = DEFAULT_MODEL, **options: Any,
    ):  # fmt: skip
        """`options`: HttpVideoGenerator's (timeout, create_policy, read_policy, client, ...)."""
        self._api_key = self._required_key(api_key, "RUNWAY_API_KEY")
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.model = model
        super().__init__(api_url=self.base_url, **options)
        self._poll_lock = threading.Lock()
        self._last_poll: OrderedDict[str, float] = OrderedDict()

    def __repr__(self) -> str:
        return f"RunwayGenerator(base_url={self.base_url!r}, model={self.model!r})"

    # ------------------------------------------------------------------------------- plumbing

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._api_key}",
            "X-Runway-Version": self.api_version,
            "Accept": "application/json",
        }

    def _task_url(self, task_id: str) -> str:
        return f"{self.base_url}/v1/tasks/{quote(task_id, safe='')}"

    def _await_poll_slot(self, task_id: str) -> None:
        """Never GET one task more often than every `min_poll_interval` seconds."""
        with self._poll_lock:
            now = self._clock()
            last = self._last_poll.get(task_id)
            wait = 0.0 if last is None else max(0.0, self.min_poll_interval - (now - last))
            self._last_poll[task_id] = now + wait  # reserve the slot before sleeping
            self._last_poll.move_to_end(task_id)
            while len(self._last_poll) > 10_000:
                self._last_poll.popitem(last=False)
        if wait > 0:
            self._sleep(wait)

    # --------------------------------------------------------------------------------- submit

    def build_body(self, request: GenerationRequest) -> dict[str, Any]:
        """The JSON body of POST /v1/image_to_video for `request`."""
        try:
            ratio = request.generation_ratio
        except ValueError as exc:  # an unknown orientation or ratio
            raise GenerationError(ErrorCode.INVALID_INPUT, f"no Runway ratio for this request: {exc}") from exc
        if ratio not in RATIOS:
            raise GenerationError(ErrorCode.INVALID_INPUT, f"Runway has no ratio {ratio!r}")
        if request.photo_https_url and _https_url_ok(request.photo_https_url):
            prompt_image = request.photo_https_url
        else:
            try:
                prompt_image = jpeg_data_uri(Path(request.photo_path), max_chars=DATA_URI_MAX_CHARS)
            except MediaError as exc:
                raise GenerationError(ErrorCode.INVALID_INPUT, exc.message) from exc
        body: dict[str, Any] = {
            "model": self.model,
            "promptImage": prompt_image,
            "ratio": str(ratio),
            "duration": clamp_clip_seconds(request.duration_seconds),
            "seed": int(request.seed) % (SEED_MAX + 1),
        }
        prompt = trim_utf16((request.prompt or "").strip(), PROMPT_TEXT_MAX_UTF16)
        if prompt:
            body["promptText"] = prompt
        return body

    def submit(self, request: GenerationRequest) -> SubmittedTask:
        body = self.build_body(request)
        url = f"{self.base_url}/v1/image_to_video"
        response = self._create(url, no_effect_statuses={429}, json=body)  # 429: the daily limit, no task
        if response.status_code in (200, 201):
            task_id, data = self._created_id(response, "id", "create without a task id: the task may exist")
            cost = data.get("estimatedCost")
            log.info("runway task %s created for job %s", task_id, request.job_id)
            return SubmittedTask(
                ref=TaskRef(self.name, task_id, {"model": self.model, "ratio": body["ratio"]}),
                cost_credits=float(cost)
                if isinstance(cost, int | float) and not isinstance(cost, bool)
                else None,
            )
        raise self._create_error(response, self.model)

    @staticmethod
    def _create_error(response: httpx.Response, model: str | None = None) -> GenerationError:
        status = response.status_code
        text = error_text(response)
        body = json_or_none(response)
        if isinstance(body, dict) and body.get("issues"):
            text += f" issues={str(body['issues'])[:500]}"
        if status == 429:
            return GenerationError(RATE_LIMITED, f"Runway rate limit: {text}", fallback=True, retryable=True)
        if status in (401, 403):
            return GenerationError(AUTH_FAILED, f"Runway refused the API key: {text}", fallback=True)
        if status == 400 and "credit" in text.lower():
            return GenerationError(ErrorCode.RUNWAY_INSUFFICIENT_CREDITS, text, fallback=True)
        if status in (400, 422):
            return GenerationError(ErrorCode.INVALID_INPUT, f"Runway rejected the request: {text}", fallback=False)
        if status >= 500:
            return AnswerLost(
                f"Runway answered {status} to the create; the task may or may not exist (and be paid): "
                f"not re-sent, not fallen back: {text}",
                model=model,
            )
        return GenerationError(ErrorCode.RUNWAY_REQUEST_FAILED, f"unexpected answer to create: {text}", fallback=True)

    # ----------------------------------------------------------------------------------- poll

    def poll(self, ref: TaskRef) -> TaskStatus:
        self._await_poll_slot(ref.task_id)
        response = self._read("GET", self._task_url(ref.task_id))
        if response.status_code == 404:
            return TaskStatus(
                TaskState.FAILED,
                error_code=TASK_NOT_FOUND,
                error_message=f"Runway task {ref.task_id} does not exist (deleted or canceled)",
                raw=json_or_none(response),
            )
        if response.status_code in (401, 403):
            raise GenerationError(AUTH_FAILED, error_text(response), fallback=True)
        if response.status_code != 200:
            raise GenerationError(
                UNAVAILABLE, f"task status: {error_text(response)}", fallback=True, retryable=True
            )
        task = json_or_none(response)
        if not isinstance(task, dict):
            raise GenerationError(
                UNAVAILABLE, "task status answer is not a JSON object", fallback=True, retryable=True
            )
        status = self._status_from_task(task)
        credits = reported_credits(task)  # optional: `cost: {"credits": N}` or a numeric cost
        return status if credits is None else dataclasses.replace(status, cost_credits=credits)

    @staticmethod
    def _status_from_task(task: dict[str, Any]) -> TaskStatus:
        status = str(task.get("status", "")).upper()
        state = _STATE.get(status)
        if state is None:
            log.warning("unknown Runway task status %r: treated as pending", status)
            return TaskStatus(TaskState.PENDING, raw=task)
        if state is TaskState.RUNNING:
            progress = task.get("progress")
            value = (
                float(progress)
                if isinstance(progress, int | float) and not isinstance(progress, bool)
                else None
            )
            return TaskStatus(state, progress=None if value is None else min(1.0, max(0.0, value)), raw=task)
        if state is TaskState.SUCCEEDED:
            output = task.get("output")
            url = output[0] if isinstance(output, list) and output and isinstance(output[0], str) else None
            if not url:
                return TaskStatus(
                    TaskState.FAILED,
                    error_code=ErrorCode.INVALID_OUTPUT,
                    error_message="task succeeded without output",
                    raw=task,
                )
            return TaskStatus(state, progress=1.0, output_url=url, raw=task)
        if state is TaskState.FAILED:
            failure_code = task.get("failureCode")
            code, _ = classify_failure(failure_code if isinstance(failure_code, str) else None)
            message = str(task.get("failure") or "generation failed")
            if failure_code:
                message += f" [{failure_code}]"
            return TaskStatus(state, error_code=code, error_message=message, raw=task)
        return TaskStatus(state, raw=task)

    # --------------------------------------------------------------------------------- cancel

    def cancel(self, ref: TaskRef) -> None:
        self._cancel(ref, "DELETE", self._task_url(ref.task_id), lambda status: status in (200, 202, 204, 404))

    # ---------------------------------------------------------------------------------- fetch

    def _fresh_output_url(self, ref: TaskRef) -> str:
        status = self.poll(ref)
        if status.state is TaskState.SUCCEEDED and status.output_url:
            return status.output_url
        if status.state is TaskState.FAILED:
            code, fallback = classify_failure(status)
            raise GenerationError(code, status.error_message or "task failed", fallback=fallback)
        if status.state is TaskState.CANCELED:
            raise GenerationError(ErrorCode.RUNWAY_TASK_CANCELED, f"task {ref.task_id} was canceled")
        raise GenerationError(
            ErrorCode.OUTPUT_NOT_READY, f"task {ref.task_id} is still {status.state.value}", retryable=True
        )

