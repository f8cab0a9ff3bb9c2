"""HTTP helpers shared by the paid-API clients (Runway, fal).

Three rules drive this module:

* Retry only what is safe to repeat. Idempotent requests (GET, DELETE, a cancel PUT) may be
  retried on 429/502/503/504 and on transport errors. A request that creates a paid task is
  retried only when it provably never reached the server (`httpx.ConnectError`,
  `httpx.ConnectTimeout`, `httpx.PoolTimeout`), or on a status the caller names as "had no
  effect" (Runway's 429 daily limit). A read timeout, a connection dropped after the request was
  sent or a 5xx after a create POST is ambiguous: the task may exist, and a second POST (or a
  fallback to another provider) could pay twice. `send_create` raises `AnswerLost` for it.
* Back off exponentially with full jitter, within a bounded number of attempts and a bounded
  total time. `sleep`, `rng` and `clock` are injectable so tests never wait.
* Downloads stream to a temporary file beside the destination, stop at a size limit, check that
  the bytes are a complete MP4, and only then `os.replace` the file into place. Given a
  `FetchPolicy` (the generators always pass one), a download goes through
  `net.fetch.safe_client`/`open_stream`: every hop's address is checked and pinned (output
  URLs come from a third party and must not reach our private network), redirects are
  bounded and re-checked, and the whole attempt has a time limit.
* A finished task is paid: a download that fails (expired URL, 5xx, timeout, truncated
  transfer) raises `DownloadFailed` (never fallback-eligible); `fetch_result` then asks the
  provider for a fresh URL and downloads again. Only an output that downloads completely and is
  not a valid MP4 twice (the second time from a fresh URL) is the provider's bad output
  (INVALID_OUTPUT, fallback).
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.mp4index import mp4_problem
from zencourt_pipeline.net.backoff import RetryPolicy
from zencourt_pipeline.net.fetch import FetchError, FetchPolicy, open_stream, safe_client
from zencourt_pipeline.net.sniff import describe, sniff_image_type, sniff_video
from zencourt_pipeline.providers.base import (
    AnswerLost,
    DownloadFailed,
    GenerationError,
    TaskRef,
    VideoGenerator,
)

log = logging.getLogger(__name__)

RETRYABLE_STATUSES: frozenset[int] = frozenset({429, 502, 503, 504})
EXPIRED_URL_STATUSES: frozenset[int] = frozenset({403, 404, 410})
# Transport errors raised before any byte of the request left this process.
NOT_SENT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
DEFAULT_MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024
INVALID_OUTPUT = ErrorCode.INVALID_OUTPUT


def is_retryable(
    *,
    idempotent: bool,
    response: httpx.Response | None = None,
    error: BaseException | None = None,
    retry_statuses: Collection[int] = RETRYABLE_STATUSES,
    no_effect_statuses: Collection[int] = (),
) -> bool:
    """Whether repeating the request is both useful and safe.

    `no_effect_statuses`: statuses that prove a non-idempotent request changed nothing on the
    server (e.g. Runway answers 429 to a create when the daily limit is reached: no task exists).
    """
    if error is not None:
        if isinstance(error, NOT_SENT_ERRORS):
            return True
        return idempotent and isinstance(error, httpx.TransportError)
    if response is None:
        return False
    if response.status_code in no_effect_statuses:
        return True
    return idempotent and response.status_code in retry_statuses


def retry_after_seconds(response: httpx.Response, *, now: float | None = None) -> float | None:
    """The `Retry-After` header as seconds (delta or HTTP date), if present and sane."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def request_with_retry(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    idempotent: bool,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | Any = None,
    clock: Callable[[], float] = time.monotonic,
    retry_statuses: Collection[int] = RETRYABLE_STATUSES,
    no_effect_statuses: Collection[int] = (),
    **kwargs: Any,
) -> httpx.Response:
    """Send one request, retrying only as `is_retryable` allows.

    Returns the last response (which may still carry a retryable status once the budget is
    spent: the caller maps it to an error). Re-raises the last transport error if no response
    was ever received. The response body is read.
    """
    rng = rng if rng is not None else random.Random()
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        response: httpx.Response | None = None
        error: httpx.TransportError | None = None
        try:
            response = client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            error = exc
        retry = is_retryable(
            idempotent=idempotent,
            response=response,
            error=error,
            retry_statuses=retry_statuses,
            no_effect_statuses=no_effect_statuses,
        )
        if not retry or attempt >= policy.max_attempts:
            break
        delay = policy.delay(attempt - 1, rng)
        if response is not None:
            hinted = retry_after_seconds(response)
            if hinted is not None:
                delay = min(max(delay, hinted), policy.max_delay)
        if not policy.allows(attempt, clock() - started, delay):
            break
        what = f"HTTP {response.status_code}" if response is not None else type(error).__name__
        log.info("%s %s: %s, retry %d in %.2f s", method, _redact(url), what, attempt, delay)
        sleep(delay)
    if response is None:
        assert error is not None
        raise error
    return response


def send_create(
    client: httpx.Client, url: str, *, provider: str, model: str | None, unavailable_code: ErrorCode, **kwargs: Any
) -> httpx.Response:
    """POST a paid create through `request_with_retry(idempotent=False)`.

    A transport error raised before the request left (`NOT_SENT_ERRORS`, already retried within
    the policy) is GenerationError `unavailable_code` (fallback: nothing was created). Any other
    transport error (a read timeout, the connection dropped after the request was sent) is
    `AnswerLost`: the task may exist, so it is neither re-sent nor fallen back.
    """
    try:
        return request_with_retry(client, "POST", url, idempotent=False, **kwargs)
    except NOT_SENT_ERRORS as exc:
        raise GenerationError(
            unavailable_code, f"cannot reach {provider}: {type(exc).__name__}: {exc}", fallback=True, retryable=True
        ) from exc
    except httpx.TransportError as exc:
        raise AnswerLost(
            f"the {provider} create was sent and its answer lost ({type(exc).__name__}: {exc}); the task may "
            "exist and be paid: not re-sent, not fallen back",
            model=model,
        ) from exc


def _redact(url: str) -> str:
    """A URL without its query string (presigned URLs carry credentials there)."""
    return url.split("?", 1)[0]


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


# ----------------------------------------------------------------------------------------- MP4


def check_mp4(path: Path) -> None:
    """Raise GenerationError INVALID_OUTPUT (fallback) unless `path` looks like a complete MP4."""
    problem = mp4_problem(Path(path))
    if problem and sniff_video(Path(path)) is None and Path(path).stat().st_size:
        problem += f" (the bytes are {describe(sniff_image_type(Path(path)))})"
    if problem:
        raise GenerationError(
            INVALID_OUTPUT, f"downloaded output is not a valid MP4: {problem}", fallback=True
        )


# ------------------------------------------------------------------------------------ download


class OutputUrlExpired(DownloadFailed):
    """The output URL answered 403/404/410: ask the provider for a fresh one."""

    def __init__(self, status_code: int, message: str):
        super().__init__(message, code=ErrorCode.OUTPUT_URL_EXPIRED)
        self.status_code = status_code


def download_to_file(
    client: httpx.Client | None,
    url: str,
    dest: Path,
    *,
    max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    timeout: httpx.Timeout | float | None = None,
    policy: RetryPolicy = RetryPolicy(max_attempts=3, base_delay=1.0, max_total_seconds=120.0),
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | Any = None,
    clock: Callable[[], float] = time.monotonic,
    validate: Callable[[Path], None] | None = check_mp4,
    fetch_policy: FetchPolicy | None = None,
) -> Path:
    """Stream `url` to `dest` atomically; retry transient failures (a GET is idempotent).

    Raises `OutputUrlExpired` for 403/404/410, `DownloadFailed` (OUTPUT_DOWNLOAD_FAILED, not
    fallback) when the server keeps failing (5xx, timeouts, transfers cut short, other statuses),
    and GenerationError INVALID_OUTPUT (fallback) for an oversized or non-MP4 body that arrived
    complete, or a URL the fetch policy refuses (a private address, too many redirects). No auth
    headers are sent: output URLs are presigned.

    With `fetch_policy`, `client` must come from `net.fetch.safe_client` (None: one is made for
    this call); without it (tests with a mock transport) `client` follows redirects itself.
    """
    rng = rng if rng is not None else random.Random()
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    own_client = client is None
    if client is None:
        if fetch_policy is None:
            raise ValueError("download_to_file needs a client or a fetch_policy")
        client = safe_client(fetch_policy)
    started = clock()
    try:
        return _download_with_retries(
            client, url, dest, max_bytes=max_bytes, timeout=timeout, validate=validate,
            fetch_policy=fetch_policy, policy=policy, sleep=sleep, rng=rng, clock=clock, started=started,
        )  # fmt: skip
    finally:
        if own_client:
            client.close()


def _download_with_retries(
    client: httpx.Client,
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    timeout: httpx.Timeout | float | None,
    validate: Callable[[Path], None] | None,
    fetch_policy: FetchPolicy | None,
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    rng: random.Random | Any,
    clock: Callable[[], float],
    started: float,
) -> Path:
    attempt = 0
    while True:
        attempt += 1
        try:
            return _download_once(
                client, url, dest, max_bytes=max_bytes, timeout=timeout, validate=validate, fetch_policy=fetch_policy
            )
        except _TransientDownloadError as exc:
            delay = policy.delay(attempt - 1, rng)
            if not policy.allows(attempt, clock() - started, delay):
                raise DownloadFailed(f"download of {_redact(url)} failed after {attempt} attempt(s): {exc}") from exc
            log.info("download %s: %s, retry %d in %.2f s", _redact(url), exc, attempt, delay)
            sleep(delay)


class _TransientDownloadError(Exception):
    """A download attempt failed in a way a retry of the same URL may fix."""


@contextmanager
def _get(
    client: httpx.Client,
    url: str,
    timeout: httpx.Timeout | float | None,
    fetch_policy: FetchPolicy | None,
    deadline: float | None,
) -> Iterator[httpx.Response]:
    """The final response of a GET of `url`: through `open_stream` (checked, pinned, bounded
    redirects, time limit) with a fetch policy, else the client's own redirect handling."""
    if fetch_policy is None:
        kwargs: dict[str, Any] = {"follow_redirects": True}
        if timeout is not None:
            kwargs["timeout"] = timeout
        with client.stream("GET", url, **kwargs) as response:
            yield response
        return
    try:
        assert deadline is not None
        with open_stream(client, url, fetch_policy, deadline) as (response, _):
            yield response
    except FetchError as exc:
        if exc.retryable:
            raise _TransientDownloadError(exc.message) from exc
        raise GenerationError(
            INVALID_OUTPUT, f"output URL {_redact(url)} refused: {exc.message}", fallback=True
        ) from exc


def _download_once(
    client: httpx.Client,
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    timeout: httpx.Timeout | float | None,
    validate: Callable[[Path], None] | None,
    fetch_policy: FetchPolicy | None = None,
) -> Path:
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.part")
    deadline = time.monotonic() + fetch_policy.total_seconds if fetch_policy is not None else None
    try:
        with _get(client, url, timeout, fetch_policy, deadline) as response:
            status = response.status_code
            if status in EXPIRED_URL_STATUSES:
                raise OutputUrlExpired(status, f"output URL answered HTTP {status} (expired or gone)")
            if status in RETRYABLE_STATUSES or status >= 500:
                raise _TransientDownloadError(f"HTTP {status}")
            if status != 200:
                raise DownloadFailed(f"output URL answered HTTP {status}")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise GenerationError(
                    INVALID_OUTPUT,
                    f"output is {int(declared)} bytes, over the {max_bytes} limit",
                    fallback=True,
                )
            received = 0
            with tmp.open("wb") as fh:
                for chunk in response.iter_bytes(1024 * 1024 if deadline is None else None):
                    received += len(chunk)
                    if received > max_bytes:
                        raise GenerationError(
                            INVALID_OUTPUT, f"output exceeds the {max_bytes}-byte limit", fallback=True
                        )
                    if deadline is not None and time.monotonic() > deadline:
                        raise _TransientDownloadError("download took longer than the time limit")
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            # Compare on-the-wire bytes (compressed, if so) with the declared length.
            wire = response.num_bytes_downloaded or received
            if declared is not None and declared.isdigit() and wire != int(declared):
                raise _TransientDownloadError(f"output truncated: received {wire} of {declared} bytes")
        if validate is not None:
            validate(tmp)
        os.replace(tmp, dest)
        return dest
    except httpx.RemoteProtocolError as exc:
        # The server closed the connection mid-body: a truncated transfer.
        raise _TransientDownloadError(f"truncated transfer: {exc}") from exc
    except httpx.TransportError as exc:
        raise _TransientDownloadError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


class HttpVideoGenerator(VideoGenerator):
    """What the HTTP providers share: downloading a finished clip through the SSRF-checked
    client, asking the provider for a fresh URL when a download fails."""

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
            from zencourt_pipeline.net.fetch import safe_client

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
