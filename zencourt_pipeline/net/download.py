"""The one streaming download: photos (`net.fetch.fetch_url`) and provider outputs
(`providers.output.download_to_file`) both go through `download`.

One attempt GETs the URL (with a `FetchPolicy`: through `open_stream`, every hop's URL checked
and its connection pinned by a `net.fetch.safe_client`, redirects bounded, a deadline over the
whole attempt), lets the caller's `accept` judge the final answer's status, then streams the body
to a temporary file beside the destination (`stream_to_file`): the declared and the counted size
against the limit, the deadline on every read, the received length against the declared one, the
caller's `validate`, and only then an atomic rename. Failures are `FetchError`s; the retryable
ones are retried with the one backoff (`net.backoff.RetryPolicy`). What `accept` and `validate`
raise passes through untouched, and no temporary file is ever left behind.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.net.backoff import RetryPolicy
from zencourt_pipeline.net.policy import FetchError, FetchPolicy, check_url, redact

log = logging.getLogger(__name__)

# The caller's judgement of the final answer (the response, its URL): raise to refuse it.
Accept = Callable[[httpx.Response, str], None]


class TooLarge(FetchError):
    """The body is over the byte limit: `declared` (its Content-Length) or counted while streaming
    (`declared` None)."""

    def __init__(self, limit: int, declared: int | None = None):
        detail = f"{declared} bytes > {limit}" if declared is not None else f"over {limit} bytes"
        super().__init__(ErrorCode.INVALID_INPUT, f"file too large ({detail})")
        self.limit = limit
        self.declared = declared


def timed_out() -> FetchError:
    return FetchError(ErrorCode.STORAGE_DOWNLOAD_FAILED, "download timed out", retryable=True)


def _remaining(deadline: float) -> httpx.Timeout:
    left = deadline - time.monotonic()
    if left <= 0:
        raise timed_out()
    return httpx.Timeout(min(left, 30.0), connect=min(left, 10.0))


@contextmanager
def open_stream(
    client: httpx.Client, url: str, policy: FetchPolicy, deadline: float
) -> Iterator[tuple[httpx.Response, str]]:
    """GET `url` with `client` (from `safe_client`), following at most `policy.max_redirects`
    redirects, each hop's URL checked (`check_url`) and its connection pinned and checked by
    the transport. Yields (the final response, unread, and its URL). Raises FetchError for
    policy violations; httpx errors are the caller's to map."""
    current = url
    for _hop in range(policy.max_redirects + 1):
        check_url(current, policy)
        with client.stream("GET", current, timeout=_remaining(deadline)) as response:
            if response.is_redirect:
                current = urljoin(current, response.headers["location"])
                continue
            yield response, current
            return
    raise FetchError(ErrorCode.INVALID_INPUT, f"too many redirects (more than {policy.max_redirects})")


def stream_to_file(
    response: httpx.Response,
    dest: Path,
    *,
    max_bytes: int,
    deadline: float | None,
    validate: Callable[[Path], object] | None = None,
) -> Path:
    """Stream an accepted response's body to `dest` atomically (see the module docstring)."""
    declared_header = response.headers.get("content-length")
    declared = int(declared_header) if declared_header and declared_header.isdigit() else None
    if declared is not None and declared > max_bytes:
        raise TooLarge(max_bytes, declared)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        received = 0
        with os.fdopen(fd, "wb") as out:
            # iter_bytes() without a chunk size yields as data arrives, so the deadline is
            # checked on every read of a server that drips its body.
            for chunk in response.iter_bytes():
                received += len(chunk)
                if received > max_bytes:
                    raise TooLarge(max_bytes)
                if deadline is not None and time.monotonic() > deadline:
                    raise timed_out()
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        wire = response.num_bytes_downloaded or received  # on-the-wire bytes, as declared
        if declared is not None and wire != declared:
            raise FetchError(
                ErrorCode.STORAGE_DOWNLOAD_FAILED, f"truncated: received {wire} of {declared} bytes", retryable=True
            )
        if validate is not None:
            validate(Path(tmp))
        os.replace(tmp, dest)
        return dest
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _get(
    client: httpx.Client, url: str, policy: FetchPolicy | None, deadline: float | None, timeout: Any
) -> Iterator[tuple[httpx.Response, str]]:
    """`open_stream` with a policy; without one (a test's mock transport) the client's own redirects."""
    if policy is not None:
        assert deadline is not None, "a fetch policy needs a deadline"
        with open_stream(client, url, policy, deadline) as answer:
            yield answer
        return
    kwargs: dict[str, Any] = {"follow_redirects": True} | ({"timeout": timeout} if timeout is not None else {})
    with client.stream("GET", url, **kwargs) as response:
        yield response, str(response.url)


def download_once(
    client: httpx.Client,
    url: str,
    dest: Path,
    *,
    accept: Accept,
    max_bytes: int,
    deadline: float | None,
    validate: Callable[[Path], object] | None = None,
    policy: FetchPolicy | None = None,
    timeout: Any = None,
) -> str:
    """One attempt: the final URL once `dest` holds the body. Raises FetchError."""
    try:
        with _get(client, url, policy, deadline, timeout) as (response, final):
            accept(response, final)
            stream_to_file(response, Path(dest), max_bytes=max_bytes, deadline=deadline, validate=validate)
            return final
    except httpx.TimeoutException as exc:
        raise timed_out() from exc
    except httpx.UnsupportedProtocol as exc:
        raise FetchError(ErrorCode.INVALID_INPUT, f"malformed URL: {exc}") from exc
    except httpx.HTTPError as exc:  # a transfer cut short, a reset, an undecodable body, ...
        raise FetchError(
            ErrorCode.STORAGE_DOWNLOAD_FAILED, f"download failed: {type(exc).__name__}", retryable=True
        ) from exc


def download(
    client: httpx.Client,
    url: str,
    dest: Path,
    *,
    accept: Accept,
    max_bytes: int,
    retry: RetryPolicy,
    validate: Callable[[Path], object] | None = None,
    policy: FetchPolicy | None = None,
    timeout: Any = None,
    deadline: float | None = None,
    attempt_seconds: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | Any = None,
    clock: Callable[[], float] = time.monotonic,
    label: str = "download",
) -> str:
    """`download_once`, retried while the FetchError is retryable and `retry` allows; the last
    FetchError carries the number of `attempts`. Each attempt ends by `deadline` (one for them
    all) and within `attempt_seconds` of its start, whichever comes first (None: no limit)."""
    rng = rng if rng is not None else random.Random()
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        limits = [] if deadline is None else [deadline]
        if attempt_seconds is not None:
            limits.append(time.monotonic() + attempt_seconds)
        try:
            return download_once(
                client, url, dest, accept=accept, max_bytes=max_bytes, deadline=min(limits, default=None),
                validate=validate, policy=policy, timeout=timeout,
            )  # fmt: skip
        except FetchError as exc:
            exc.attempts = attempt
            if not exc.retryable or attempt >= retry.max_attempts:
                raise
            delay = retry.delay(attempt - 1, rng)
            if not retry.allows(attempt, clock() - started, delay):
                raise
            log.info("%s %s: %s; retry %d in %.2f s", label, redact(url), exc.message, attempt, delay)
            sleep(delay)
