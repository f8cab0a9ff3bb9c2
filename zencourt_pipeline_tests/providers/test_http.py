"""The shared HTTP helpers: retry classification, backoff, safe downloads, MP4 checks."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.net.backoff import RetryPolicy
from zencourt_pipeline.providers.base import GenerationError
from zencourt_pipeline.providers.http import (
    OutputUrlExpired,
    check_mp4,
    download_to_file,
    is_retryable,
    request_with_retry,
    retry_after_seconds,
    send_create,
)
from zencourt_pipeline_tests.fakes.faults import DroppedAnswer, download_fault_response
from zencourt_pipeline_tests.fakes.fixtures import FakeClock, MaxJitter, sample_clip  # noqa: F401
from zencourt_pipeline_tests.fakes.server import ServerThread


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


# ----------------------------------------------------------------------------------------- MP4


# what makes a file an incomplete MP4: zencourt_pipeline_tests/media/test_mp4index.py


def test_real_mp4_passes(sample_clip):  # noqa: F811
    check_mp4(sample_clip)


def test_truncated_mp4_is_invalid_output(sample_clip, tmp_path):  # noqa: F811
    data = sample_clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(GenerationError) as err:
        check_mp4(cut)
    assert err.value.code == "INVALID_OUTPUT" and err.value.fallback and "truncated" in err.value.message


def test_non_mp4_bytes_are_invalid_output_and_named(tmp_path):
    html = tmp_path / "page.mp4"
    html.write_bytes(b"<html><body>Access Denied</body></html>")
    with pytest.raises(GenerationError) as err:
        check_mp4(html)
    assert err.value.code == "INVALID_OUTPUT" and "ftyp" in err.value.message and "HTML page" in err.value.message


# ------------------------------------------------------------------------------------ download


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_download_writes_atomically(sample_clip, tmp_path):  # noqa: F811
    data = sample_clip.read_bytes()
    with _client(
        lambda r: httpx.Response(200, content=data, headers={"Content-Type": "video/mp4"})
    ) as client:
        out = download_to_file(client, "https://cdn.test/clip.mp4?sig=secret", tmp_path / "clip.mp4")
    assert out.read_bytes() == data
    assert _leftovers(tmp_path) == ["clip.mp4"]


def test_download_expired_url(tmp_path):
    with (
        _client(lambda r: httpx.Response(403, text="AccessDenied")) as client,
        pytest.raises(OutputUrlExpired) as err,
    ):
        download_to_file(client, "https://cdn.test/clip.mp4", tmp_path / "clip.mp4")
    # a paid output: fetch a fresh URL, never fall back (it used to be fallback=True)
    assert err.value.status_code == 403 and err.value.download_failed and not err.value.fallback
    assert _leftovers(tmp_path) == []


def test_download_size_limit(sample_clip, tmp_path):  # noqa: F811
    data = sample_clip.read_bytes()
    with (
        _client(lambda r: httpx.Response(200, content=data)) as client,
        pytest.raises(GenerationError) as err,
    ):
        download_to_file(client, "https://cdn.test/clip.mp4", tmp_path / "clip.mp4", max_bytes=len(data) - 1)
    assert err.value.code == "INVALID_OUTPUT"
    assert _leftovers(tmp_path) == []


def test_download_retries_5xx_then_succeeds(sample_clip, tmp_path):  # noqa: F811
    data = sample_clip.read_bytes()
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(503) if len(calls) == 1 else httpx.Response(200, content=data)

    clock = FakeClock()
    with _client(handler) as client:
        download_to_file(client, "https://cdn.test/c.mp4", tmp_path / "c.mp4", sleep=clock.sleep, clock=clock)
    assert len(calls) == 2 and len(clock.sleeps) == 1


def test_download_of_a_non_mp4_keeps_no_file(tmp_path):
    with (
        _client(lambda r: httpx.Response(200, text="<html></html>")) as client,
        pytest.raises(GenerationError) as err,
    ):
        download_to_file(client, "https://cdn.test/c.mp4", tmp_path / "c.mp4")
    assert err.value.code == "INVALID_OUTPUT" and err.value.fallback
    assert _leftovers(tmp_path) == []


# ---------------------------------------------------------- paid once (issue 11, defect 4), real sockets


class _Answers:
    """A loopback server answering each request with the next of `answers` (a Response factory)."""

    def __init__(self, *answers):
        from starlette.applications import Starlette
        from starlette.routing import Route

        self.answers = list(answers)
        self.calls = 0

        async def handle(request):
            await request.body()
            self.calls += 1
            return self.answers.pop(0)() if len(self.answers) > 1 else self.answers[0]()

        self.server = ServerThread(Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST"])]))

    def __enter__(self):
        self.server.start()
        return self

    def __exit__(self, *exc):
        self.server.stop()


def test_send_create_a_dropped_answer_is_answer_lost_and_not_resent():
    with _Answers(DroppedAnswer) as server, httpx.Client() as client:
        clock = FakeClock()
        with pytest.raises(GenerationError) as err:
            send_create(
                client, server.server.url + "/v1/create", provider="P", model="m", unavailable_code=ErrorCode.RUNWAY_UNAVAILABLE,
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


@pytest.mark.parametrize("fault", [503, 500, "short_body", "drop"])
def test_a_download_that_keeps_failing_is_a_download_failure_not_a_fallback(tmp_path, fault):
    with _Answers(lambda: download_fault_response(fault)) as server, httpx.Client() as client:
        clock = FakeClock()
        with pytest.raises(GenerationError) as err:
            download_to_file(client, server.server.url + "/c.mp4", tmp_path / "c.mp4", sleep=clock.sleep, clock=clock)
    assert err.value.code == "OUTPUT_DOWNLOAD_FAILED" and err.value.download_failed and not err.value.fallback
    assert server.calls == 3 and _leftovers(tmp_path) == []
