"""What the paid-API clients (Runway, fal) share: `HttpVideoGenerator`, their base.

It owns the plumbing: the API client (or a transport for tests), the injectable `sleep`/`clock`/
`rng`, the create and read retry policies (`providers.retry`: a paid create is never re-sent once
it may have arrived), and the output downloads (`providers.output`: SSRF-checked through
`fetch_policy`, which also admits the configured API host and MEDIA_ALLOWED_PRIVATE_HOSTS, on a
download client made at the first download). A subclass passes what differs: its API URL and
key, its headers (`_headers`), and as class attributes its `label`, codes, `default_timeout` and
`default_create_policy`; its constructor takes the base's keyword arguments as `**options`.

A finished task is paid: a download that fails (expired URL, 5xx, timeout, truncated transfer)
raises `DownloadFailed` (never fallback-eligible); `fetch_result` then asks the provider for a
fresh URL and downloads again. Only an output that downloads completely and is not a valid MP4
twice (the second time from a fresh URL) is the provider's bad output (INVALID_OUTPUT, fallback).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.net.backoff import RetryPolicy
from zencourt_pipeline.net.fetch import safe_client
from zencourt_pipeline.net.policy import FetchPolicy
from zencourt_pipeline.providers.base import (
    AnswerLost,
    DownloadFailed,
    GenerationError,
    TaskRef,
    VideoGenerator,
)
from zencourt_pipeline.providers.output import DEFAULT_MAX_DOWNLOAD_BYTES, INVALID_OUTPUT, download_to_file
from zencourt_pipeline.providers.retry import request_with_retry, send_create

log = logging.getLogger(__name__)

READ_POLICY = RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=15.0, max_total_seconds=60.0)
_DEFAULT: Any = object()  # "the provider's own default" (None is a timeout: none)


def json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def error_text(response: httpx.Response, limit: int = 500) -> str:
    """A short, log-safe description of an error response."""
    body = json_or_none(response)
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            if body.get(key):
                text = body[key] if isinstance(body[key], str) else str(body[key])
                return f"HTTP {response.status_code}: {text[:limit]}"
    text = response.text.strip() if response.content else ""
    return f"HTTP {response.status_code}" + (f": {text[:limit]}" if text else "")


class HttpVideoGenerator(VideoGenerator):
    """The base of the HTTP providers (see the module docstring)."""

    label: str  # how messages name the provider: "Runway", "fal"
    unavailable_code: ErrorCode  # the provider cannot be reached or answers 5xx to a read
    cancel_failed_code: ErrorCode
    default_timeout: httpx.Timeout | float = httpx.Timeout(30.0, connect=10.0)  # of each API call
    default_create_policy: RetryPolicy = RetryPolicy()
    model: str

    def __init__(
        self,
        *,
        api_url: str,
        timeout: httpx.Timeout | float | None = _DEFAULT,
        create_policy: RetryPolicy = _DEFAULT,
        read_policy: RetryPolicy = READ_POLICY,
        download_timeout: httpx.Timeout | float = httpx.Timeout(120.0, connect=10.0),
        client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        allowed_private_hosts: Iterable[str] = (),
        download_total_seconds: float = 600.0,
    ):
        self.timeout = self.default_timeout if timeout is _DEFAULT else timeout
        self.download_timeout = download_timeout
        self._owns_client = client is None
        self._client = client or httpx.Client(transport=transport, timeout=self.timeout)
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self.create_policy = self.default_create_policy if create_policy is _DEFAULT else create_policy
        self.read_policy = read_policy
        self.max_download_bytes = max_download_bytes
        # Output URLs come from the provider's answers: downloaded SSRF-safe (checked, pinned
        # addresses, bounded redirects, size and time limits). The configured API host itself
        # (an operator's choice, e.g. a test double on loopback) may serve them too.
        self.fetch_policy = FetchPolicy.from_hosts(
            [*allowed_private_hosts, urlsplit(api_url).hostname or ""],
            max_bytes=max_download_bytes,
            total_seconds=download_total_seconds,
        )
        self._download_client: httpx.Client | None = None  # made at the first download

    def _required_key(self, key: str, variable: str) -> str:
        if not key:
            raise ValueError(f"a {self.label} API key is required ({variable})")
        return key

    # ------------------------------------------------------------------------------- plumbing

    def _headers(self) -> dict[str, str]:  # pragma: no cover - each provider defines it
        raise NotImplementedError

    def _read(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """An idempotent API call: retried on 429/5xx/transport errors within `read_policy`."""
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
                self.unavailable_code, f"{method} {url}: {type(exc).__name__}: {exc}", fallback=True, retryable=True
            ) from exc

    def _create(self, url: str, **kwargs: Any) -> httpx.Response:
        """POST the paid create (`send_create`: retried only while it provably had no effect)."""
        return send_create(
            self._client,
            url,
            provider=self.label,
            model=self.model,
            unavailable_code=self.unavailable_code,
            policy=self.create_policy,
            sleep=self._sleep,
            rng=self._rng,
            clock=self._clock,
            # a fresh connection for the paid create: a pooled keep-alive connection the server
            # has just closed is the classic way a POST fails after it may have been received
            headers={**self._headers(), "Connection": "close"},
            timeout=self.timeout,
            **kwargs,
        )

    def _created_id(self, response: httpx.Response, key: str, missing: str) -> tuple[str, dict[str, Any]]:
        """The id under `key` of a 2xx answer to the create, and the answer. Without one the task
        may exist all the same: AnswerLost (`missing` says what is missing and what may exist)."""
        data = json_or_none(response)
        task_id = data.get(key) if isinstance(data, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise AnswerLost(f"{self.label} answered {response.status_code} to the {missing}", model=self.model)
        return task_id, data

    def _cancel(self, ref: TaskRef, method: str, url: str, done: Callable[[int], bool]) -> None:
        """Cancel `ref` with an idempotent call; `done(status)`: canceled, or nothing to cancel."""
        response = self._read(method, url)
        if done(response.status_code):
            return
        raise GenerationError(
            self.cancel_failed_code, f"cancel of {ref.task_id}: {error_text(response)}", retryable=True
        )

    # ---------------------------------------------------------------------------------- fetch

    def _fresh_output_url(self, ref: TaskRef) -> str:  # pragma: no cover - each provider defines it
        raise NotImplementedError

    def fetch_result(self, ref: TaskRef, dest: Path, output_url: str | None = None) -> Path:
        """Download the finished task's output: from `output_url` (else a fresh URL), and once
        more from a fresh URL if that fails. Raises `DownloadFailed` (with `downloads`, the URLs
        tried) when the output could not be fetched: the task is paid, download it again later;
        GenerationError INVALID_OUTPUT (fallback) only when both downloads arrived complete and
        were not a valid MP4; the provider's own error when it says the task is gone or failed."""
        errors: list[GenerationError] = []
        for attempt in range(2):
            try:
                url = output_url if attempt == 0 and output_url else self._fresh_output_url(ref)
            except GenerationError as exc:
                if not exc.retryable:
                    raise  # the provider says the task failed, was canceled or is gone
                errors.append(DownloadFailed(f"no fresh output URL: {exc.message}"))
                continue
            try:
                return self._download(url, dest)
            except GenerationError as exc:
                if not (exc.download_failed or exc.code == INVALID_OUTPUT):
                    raise
                log.info("%s output of %s: %s (download %d of 2)", self.name, ref.task_id, exc.message, attempt + 1)
                errors.append(exc)
        if all(error.code == INVALID_OUTPUT for error in errors):
            raise errors[-1]  # complete, and not a valid MP4, twice: the provider's bad output
        messages = "; ".join(f"{error.code}: {error.message}" for error in errors)
        raise DownloadFailed(f"output of {self.name} task {ref.task_id} not downloaded: {messages}", downloads=len(errors))

    def _download(self, url: str, dest: Path) -> Path:
        if self._download_client is None:
            self._download_client = safe_client(self.fetch_policy, timeout=self.download_timeout)
        return download_to_file(
            self._download_client,
            url,
            Path(dest),
            max_bytes=self.max_download_bytes,
            timeout=self.download_timeout,
            sleep=self._sleep,
            rng=self._rng,
            clock=self._clock,
            fetch_policy=self.fetch_policy,
        )

    def close(self) -> None:
        if self._download_client is not None:
            self._download_client.close()
        if self._owns_client:
            self._client.close()
