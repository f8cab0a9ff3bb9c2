"""net/download.py, the one streaming download (photos and provider outputs), and the one redact."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from zencourt_pipeline.net.backoff import RetryPolicy
from zencourt_pipeline.net.download import TooLarge, download
from zencourt_pipeline.net.policy import FetchError, redact
from zencourt_pipeline_tests.fakes.fixtures import FakeClock, MaxJitter


def _client(handler) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def _accept_200(response: httpx.Response, final: str) -> None:
    if response.status_code != 200:
        raise FetchError("STORAGE_DOWNLOAD_FAILED", f"HTTP {response.status_code}", retryable=response.status_code >= 500)


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://cdn.test/clip.mp4?X-Amz-Signature=abc#t=1", "https://cdn.test/clip.mp4"),
        ("https://user:secret@cdn.test:8443/a/b?x=1", "https://cdn.test:8443/a/b"),
        ("http://token@cdn.test", "http://cdn.test"),
        ("https://cdn.test/a@b", "https://cdn.test/a@b"),  # an @ in the path is no credential
        ("//user:pw@cdn.test/x", "//cdn.test/x"),
        ("not a url?q", "not a url"),
    ],
)
def test_redact_hides_query_fragment_and_credentials(url, shown):
    assert redact(url) == shown


def test_a_validated_body_is_renamed_into_place(tmp_path):
    seen = []
    with _client(lambda r: httpx.Response(200, content=b"abc")) as client:
        final = download(
            client, "https://x.test/f?sig=1", tmp_path / "f", accept=_accept_200, max_bytes=10,
            retry=RetryPolicy(), validate=lambda tmp: seen.append(tmp.read_bytes()),
        )  # fmt: skip
    assert final == "https://x.test/f?sig=1" and seen == [b"abc"]
    assert (tmp_path / "f").read_bytes() == b"abc" and _files(tmp_path) == ["f"]


def test_retryable_failures_are_retried_and_counted(tmp_path):
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(503)

    clock = FakeClock()
    with _client(handler) as client, pytest.raises(FetchError) as err:
        download(
            client, "https://x.test/f", tmp_path / "f", accept=_accept_200, max_bytes=10,
            retry=RetryPolicy(max_attempts=3, base_delay=1.0), sleep=clock.sleep, rng=MaxJitter(), clock=clock,
        )  # fmt: skip
    assert err.value.retryable and err.value.attempts == 3 == len(calls)
    assert clock.sleeps == [1.0, 2.0] and _files(tmp_path) == []


@pytest.mark.parametrize("declared", [True, False])
def test_too_large_is_refused_and_not_retried(tmp_path, declared):
    def handler(request):
        body = b"x" * 50
        return httpx.Response(200, content=body if declared else iter([body[:25], body[25:]]))

    with _client(handler) as client, pytest.raises(TooLarge) as err:
        download(client, "https://x.test/f", tmp_path / "f", accept=_accept_200, max_bytes=40, retry=RetryPolicy())
    assert (err.value.limit, err.value.declared) == (40, 50 if declared else None) and err.value.attempts == 1
    assert "too large" in err.value.message and _files(tmp_path) == []


def test_what_validate_raises_passes_through_and_leaves_nothing(tmp_path):
    def refuse(tmp: Path) -> None:
        raise ValueError("not what was asked for")

    with _client(lambda r: httpx.Response(200, content=b"abc")) as client, pytest.raises(ValueError):
        download(client, "https://x.test/f", tmp_path / "f", accept=_accept_200, max_bytes=10, retry=RetryPolicy(), validate=refuse)
    assert _files(tmp_path) == []
