"""Retrying the paid-API calls only as far as it is safe (Runway, fal).

* Retry only what is safe to repeat. Idempotent requests (GET, DELETE, a cancel PUT) may be
  retried on 429/502/503/504 and on transport errors. A request that creates a paid task is
  retried only when it provably never reached the server (`httpx.ConnectError`,
  `httpx.ConnectTimeout`, `httpx.PoolTimeout`), or on a status the caller names as "had no
  effect" (Runway's 429 daily limit). A read timeout, a connection dropped after the request was
  sent or a 5xx after a create POST is ambiguous: the task may exist, and a second POST (or a
  fallback to another provider) could pay twice. `send_create` raises `AnswerLost` for it.
* Back off exponentially with full jitter (`RetryPolicy`, the one formula in `net.backoff`),
  within a bounded number of attempts and a bounded total time, honouring `Retry-After`.
  `sleep`, `rng` and `clock` are injectable so tests never wait.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Collection
from typing import Any

import httpx

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.net.backoff import RetryPolicy
from zencourt_pipeline.net.policy import redact
from zencourt_pipeline.providers.base import AnswerLost, GenerationError

__all__ = [
    "NOT_SENT_ERRORS",
    "RETRYABLE_STATUSES",
    "RetryPolicy",
    "is_retryable",
    "request_with_retry",
    "retry_after_seconds",
    "send_create",
]

log = logging.getLogger(__name__)

RETRYABLE_STATUSES: frozenset[int] = frozenset({429, 502, 503, 504})
# Transport errors raised before any byte of the request left this process.
NOT_SENT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


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
        log.info("%s %s: %s, retry %d in %.2f s", method, redact(url), what, attempt, delay)
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
