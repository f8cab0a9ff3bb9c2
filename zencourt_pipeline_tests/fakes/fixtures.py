"""pytest fixtures and helpers for tests that talk to the fakes.

Use them by importing the fixtures into a test module (or a conftest):
    from zencourt_pipeline_tests.fakes.fixtures import fake_fal, fake_runway  # noqa: F401
or, from the root conftest only, `pytest_plugins = ["zencourt_pipeline_tests.fakes.fixtures"]`.
Each fixture starts its server for one test and stops it afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from zencourt_pipeline.providers.base import GenerationRequest, TaskRef, TaskStatus, VideoGenerator
from zencourt_pipeline_tests.fakes.fal import FakeFal
from zencourt_pipeline_tests.fakes.runway import FakeRunway
from zencourt_pipeline_tests.fakes.server import RequestRecorder, sample_mp4


class FakeClock:
    """`clock()` is the fake time; `sleep(s)` records `s` and advances it (nothing really waits).

    Pass the same instance as `clock=`/`sleep=` to a generator and as `clock=` to a fake, so the
    fake's task latency runs on the same fake time.
    """

    def __init__(self, start: float = 1_000.0):
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


class MaxJitter:
    """An rng whose `uniform(a, b)` returns `b`: backoff delays at their cap, deterministic."""

    def uniform(self, low: float, high: float) -> float:
        return high


def make_photo(path: Path, size: tuple[int, int] = (800, 600)) -> Path:
    """A small JPEG with some structure (so it is not trivially compressible)."""
    w, h = size
    img = Image.new("RGB", size, (40, 90, 160))
    for x in range(0, w, 40):
        img.paste((200, 120 + x % 100, 30), (x, 0, min(w, x + 20), h // 2))
    img.save(path, "JPEG", quality=85)
    return path


def make_request(photo: Path, **overrides: Any) -> GenerationRequest:
    fields: dict[str, Any] = {
        "job_id": "job-1",
        "batch_id": "batch-1",
        "photo_path": photo,
        "prompt": "slow push-in through the living room",
        "duration_seconds": 5,
        "orientation": "landscape",
        "seed": 123456,
        "room_name": "Living room",
    }
    fields.update(overrides)
    return GenerationRequest(**fields)


def poll_until_done(
    generator: VideoGenerator, ref: TaskRef, *, max_polls: int = 20
) -> tuple[TaskStatus, list[TaskStatus]]:
    """Poll until a terminal state; returns (final status, every status seen)."""
    seen: list[TaskStatus] = []
    for _ in range(max_polls):
        status = generator.poll(ref)
        seen.append(status)
        if status.state.terminal:
            return status, seen
    raise AssertionError(f"not finished after {max_polls} polls: {[s.state for s in seen]}")


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake_runway() -> Iterator[FakeRunway]:
    """A running fake Runway API: `RunwayGenerator(fake_runway.api_key, base_url=fake_runway.url)`."""
    with FakeRunway() as fake:
        yield fake


@pytest.fixture
def fake_fal() -> Iterator[FakeFal]:
    """A running fake fal queue: `FalGenerator(fake_fal.key, queue_url=fake_fal.url, webhook_url=...)`."""
    with FakeFal() as fake:
        yield fake


@pytest.fixture
def webhook_receiver() -> Iterator[RequestRecorder]:
    """A server recording every request sent to it (answers 200; set `.status` / `.responses`)."""
    with RequestRecorder() as recorder:
        yield recorder


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    """An 800x600 JPEG."""
    return make_photo(tmp_path / "photo.jpg")


@pytest.fixture(scope="session")
def sample_clip() -> Path:
    """A real 2 s 1280x720 30 fps H.264 MP4 (the same file the fakes serve)."""
    return sample_mp4(1280, 720)
