"""providers/retry.py: what may be retried (and what never: a paid create that may have
arrived), backoff within the budgets, Retry-After, and send_create against real sockets."""

from __future__ import annotations

import socket

import httpx
import pytest

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.providers.base import GenerationError
from zencourt_pipeline.providers.retry import (
    RetryPolicy,
    is_retryable,
    request_with_retry,
    retry_after_seconds,
    send_create,
)
from zencourt_pipeline_tests.fakes.faults import DroppedAnswer
from zencourt_pipeline_tests.fakes.fixtures import FakeClock, MaxJitter
from zencourt_pipeline_tests.fakes.server import AnswerServer


def _response(status: int, **kwargs) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("GET", "https://x.test/"), **kwargs)


def _client(handler) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# ------------------------------------------------------------------------------ classification


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_idempotent_requests_retry_transient_statuses(status):
    assert is_retryable(idempotent=True, response=_response(status))


@pytest.mark.parametrize("status", [200, 400, 401, 404, 405, 500])
def test_other_statuses_are_not_retried(status):
    assert not is_retryable(idempotent=True, response=_response(status))


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_create_is_never_retried_on_a_status_unless_it_proves_no_effect(status):
    assert not is_retryable(idempotent=False, response=_response(status))
    assert is_retryable(idempotent=False, response=_response(status), no_effect_statuses={status})


def test_create_is_retried_only_when_the_request_never_left():
    request = httpx.Request("POST", "https://x.test/")
    assert is_retryable(idempotent=False, error=httpx.ConnectError("refused", request=request))
    assert is_retryable(idempotent=False, error=httpx.ConnectTimeout("slow", request=request))
    for ambiguous in (
        httpx.ReadTimeout("slow", request=request),
        httpx.RemoteProtocolError("closed", request=request),
        httpx.ReadError("reset", request=request),
        httpx.WriteTimeout("slow", request=request),
    ):
        assert not is_retryable(idempotent=False, error=ambiguous)
        assert is_retryable(idempotent=True, error=ambiguous)


def test_retry_after_header():
    assert retry_after_seconds(_response(429, headers={"Retry-After": "3"})) == 3.0
    assert retry_after_seconds(_response(429)) is None
    assert retry_after_seconds(_response(429, headers={"Retry-After": "soon"})) is None


# ------------------------------------------------------------------------------------- retries


def test_get_retries_until_success_with_backoff():
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(503 if len(calls) < 3 else 200, json={"ok": True})

    clock = FakeClock()
    with _client(handler) as client:
        response = request_with_retry(
            client,
            "GET",
            "https://x.test/a",
            idempotent=True,
            sleep=clock.sleep,
            rng=MaxJitter(),
            clock=clock,
        )
    assert response.status_code == 200 and len(calls) == 3
    assert clock.sleeps == [1.0, 2.0]


def test_attempts_are_bounded_and_the_last_response_returned():
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(502)

    clock = FakeClock()
    with _client(handler) as client:
        response = request_with_retry(
            client,
            "GET",
            "https://x.test/a",
            idempotent=True,
            policy=RetryPolicy(max_attempts=4, max_total_seconds=1000),
            sleep=clock.sleep,
            rng=MaxJitter(),
            clock=clock,
        )
    assert response.status_code == 502 and len(calls) == 4 and len(clock.sleeps) == 3


def test_total_time_is_bounded():
    clock = FakeClock()
    with _client(lambda request: httpx.Response(503)) as client:
        request_with_retry(
            client,
            "GET",
            "https://x.test/a",
            idempotent=True,
            policy=RetryPolicy(max_attempts=50, base_delay=1.0, max_delay=8.0, max_total_seconds=20.0),
            sleep=clock.sleep,
            rng=MaxJitter(),
            clock=clock,
        )
    assert sum(clock.sleeps) <= 20.0
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0]  # the next 8 s would pass 20 s


def test_retry_after_is_honoured_within_the_cap():
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(429, headers={"Retry-After": "7"}) if len(calls) == 1 else httpx.Response(200)

    clock = FakeClock()
    with _client(handler) as client:
        request_with_retry(
            client, "GET", "https://x.test/", idempotent=True, sleep=clock.sleep, rng=MaxJitter(), clock=clock
        )
    assert clock.sleeps == [7.0]


def test_post_is_not_resent_after_a_5xx():
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(503)

    clock = FakeClock()
    with _client(handler) as client:
        response = request_with_retry(
            client, "POST", "https://x.test/", idempotent=False, sleep=clock.sleep, clock=clock
        )
    assert response.status_code == 503 and len(calls) == 1 and clock.sleeps == []


def test_post_is_not_resent_after_a_read_timeout():
    calls = []

    def handler(request):
        calls.append(request)
        raise httpx.ReadTimeout("no answer", request=request)

    with _client(handler) as client, pytest.raises(httpx.ReadTimeout):
        request_with_retry(client, "POST", "https://x.test/", idempotent=False, sleep=lambda s: None)
    assert len(calls) == 1


def test_post_is_retried_after_a_real_connect_error():
    clock = FakeClock()
    with httpx.Client() as client, pytest.raises(httpx.ConnectError):
        request_with_retry(
            client,
            "POST",
            f"http://127.0.0.1:{_closed_port()}/v1/create",
            idempotent=False,
            policy=RetryPolicy(max_attempts=3),
            sleep=clock.sleep,
            rng=MaxJitter(),
            clock=clock,
            json={},
        )
    assert clock.sleeps == [1.0, 2.0]


# ---------------------------------------------------------- paid once (issue 11, defect 4), real sockets


def test_send_create_a_dropped_answer_is_answer_lost_and_not_resent():
    with AnswerServer(DroppedAnswer) as server, httpx.Client() as client:
        clock = FakeClock()
        with pytest.raises(GenerationError) as err:
            send_create(
                client, server.url + "/v1/create", provider="P", model="m", unavailable_code=ErrorCode.RUNWAY_UNAVAILABLE,
                policy=RetryPolicy(max_attempts=3), sleep=clock.sleep, clock=clock, json={},
            )  # fmt: skip
    assert err.value.code == "PROVIDER_ANSWER_LOST" and err.value.ambiguous and not err.value.fallback
    assert err.value.model == "m" and server.calls == 1 and clock.sleeps == []


def test_send_create_that_never_left_is_unavailable_and_falls_back():
    clock = FakeClock()
    with httpx.Client() as client, pytest.raises(GenerationError) as err:
        send_create(
            client, f"http://127.0.0.1:{_closed_port()}/v1/create", provider="P", model="m",
            unavailable_code=ErrorCode.RUNWAY_UNAVAILABLE, policy=RetryPolicy(max_attempts=2), sleep=clock.sleep,
            rng=MaxJitter(), clock=clock, json={},
        )  # fmt: skip
    assert err.value.code == "RUNWAY_UNAVAILABLE" and err.value.fallback and not err.value.ambiguous
    assert clock.sleeps == [1.0]
