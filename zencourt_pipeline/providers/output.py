"""Downloading a finished (paid) task's output, and what each way it can fail means.

The bytes go through the one streaming download (`net.download.download`): given a
`FetchPolicy` (the generators always pass one) every hop's address is checked and pinned
(output URLs come from a third party and must not reach our private network), redirects are
bounded and re-checked and each attempt has a time limit; the body streams to a temporary file
beside the destination, stops at a size limit, must be a complete MP4 (`check_mp4`), and only
then is renamed into place. Transient failures are retried with the one backoff.

A finished task is paid, so a failed download is never a reason to generate again:

* 403/404/410 is `OutputUrlExpired`, anything else that keeps failing (5xx, timeouts, transfers
  cut short, other statuses) `DownloadFailed` (OUTPUT_DOWNLOAD_FAILED): not fallback-eligible,
  the generator asks the provider for a fresh URL and downloads again;
* only an output that arrived complete and is oversized or not an MP4, or a URL the fetch policy
  refuses (a private address, too many redirects), is the provider's bad output:
  GenerationError INVALID_OUTPUT (fallback).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.mp4index import mp4_problem
from zencourt_pipeline.net.backoff import RetryPolicy
from zencourt_pipeline.net.download import TooLarge, download
from zencourt_pipeline.net.fetch import safe_client
from zencourt_pipeline.net.policy import FetchError, FetchPolicy, redact
from zencourt_pipeline.net.sniff import describe, sniff_image_type, sniff_video
from zencourt_pipeline.providers.base import DownloadFailed, GenerationError
from zencourt_pipeline.providers.retry import RETRYABLE_STATUSES

DEFAULT_MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024
EXPIRED_URL_STATUSES: frozenset[int] = frozenset({403, 404, 410})
DOWNLOAD_RETRY = RetryPolicy(max_attempts=3, base_delay=1.0, max_total_seconds=120.0)
INVALID_OUTPUT = ErrorCode.INVALID_OUTPUT


class OutputUrlExpired(DownloadFailed):
    """The output URL answered 403/404/410: ask the provider for a fresh one."""

    def __init__(self, status_code: int, message: str):
        super().__init__(message, code=ErrorCode.OUTPUT_URL_EXPIRED)
        self.status_code = status_code


def check_mp4(path: Path) -> None:
    """Raise GenerationError INVALID_OUTPUT (fallback) unless `path` looks like a complete MP4."""
    problem = mp4_problem(Path(path))
    if problem and sniff_video(Path(path)) is None and Path(path).stat().st_size:
        problem += f" (the bytes are {describe(sniff_image_type(Path(path)))})"
    if problem:
        raise GenerationError(INVALID_OUTPUT, f"downloaded output is not a valid MP4: {problem}", fallback=True)


def _accept_output(response: httpx.Response, final: str) -> None:
    status = response.status_code
    if status in EXPIRED_URL_STATUSES:
        raise OutputUrlExpired(status, f"output URL answered HTTP {status} (expired or gone)")
    if status in RETRYABLE_STATUSES or status >= 500:
        raise FetchError(ErrorCode.STORAGE_DOWNLOAD_FAILED, f"HTTP {status}", retryable=True)
    if status != 200:
        raise DownloadFailed(f"output URL answered HTTP {status}")


def download_to_file(
    client: httpx.Client | None,
    url: str,
    dest: Path,
    *,
    max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    timeout: httpx.Timeout | float | None = None,
    policy: RetryPolicy = DOWNLOAD_RETRY,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | Any = None,
    clock: Callable[[], float] = time.monotonic,
    validate: Callable[[Path], None] | None = check_mp4,
    fetch_policy: FetchPolicy | None = None,
) -> Path:
    """Stream `url` to `dest` atomically; retry transient failures (a GET is idempotent).

    Raises as the module docstring says. No auth headers are sent: output URLs are presigned.
    With `fetch_policy`, `client` must come from `net.fetch.safe_client` (None: one is made for
    this call), and each attempt must end within `fetch_policy.total_seconds`; without it (tests
    with a mock transport) `client` follows redirects itself.
    """
    dest = Path(dest)
    own_client = client is None
    if client is None:
        if fetch_policy is None:
            raise ValueError("download_to_file needs a client or a fetch_policy")
        client = safe_client(fetch_policy)
    try:
        download(
            client, url, dest, accept=_accept_output, max_bytes=max_bytes, retry=policy, validate=validate,
            policy=fetch_policy, timeout=timeout, attempt_seconds=None if fetch_policy is None else fetch_policy.total_seconds,
            sleep=sleep, rng=rng, clock=clock,
        )  # fmt: skip
    except TooLarge as exc:
        size = f"is {exc.declared} bytes, over the {exc.limit} limit" if exc.declared is not None else (
            f"exceeds the {exc.limit}-byte limit"
        )  # fmt: skip
        raise GenerationError(INVALID_OUTPUT, f"output {size}", fallback=True) from exc
    except FetchError as exc:
        if exc.retryable:
            raise DownloadFailed(
                f"download of {redact(url)} failed after {exc.attempts} attempt(s): {exc.message}"
            ) from exc
        raise GenerationError(
            INVALID_OUTPUT, f"output URL {redact(url)} refused: {exc.message}", fallback=True
        ) from exc
    finally:
        if own_client:
            client.close()
    return dest
