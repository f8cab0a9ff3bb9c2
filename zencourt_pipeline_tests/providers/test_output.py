"""providers/output.py: a paid output's download (atomic, bounded, retried, an MP4 or
INVALID_OUTPUT) and what each failure means: a fresh URL, never a second generation."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from zencourt_pipeline.providers.base import GenerationError
from zencourt_pipeline.providers.output import OutputUrlExpired, check_mp4, download_to_file
from zencourt_pipeline_tests.fakes.faults import download_fault_response
from zencourt_pipeline_tests.fakes.fixtures import FakeClock, sample_clip  # noqa: F401
from zencourt_pipeline_tests.fakes.server import AnswerServer


def _client(handler) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


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


@pytest.mark.parametrize("fault", [503, 500, "short_body", "drop"])
def test_a_download_that_keeps_failing_is_a_download_failure_not_a_fallback(tmp_path, fault):
    with AnswerServer(lambda: download_fault_response(fault)) as server, httpx.Client() as client:
        clock = FakeClock()
        with pytest.raises(GenerationError) as err:
            download_to_file(client, server.url + "/c.mp4", tmp_path / "c.mp4", sleep=clock.sleep, clock=clock)
    assert err.value.code == "OUTPUT_DOWNLOAD_FAILED" and err.value.download_failed and not err.value.fallback
    assert server.calls == 3 and _leftovers(tmp_path) == []
