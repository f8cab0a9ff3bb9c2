"""Fake Runway and fal servers speaking the documented HTTP contracts over real sockets.

Start them with the context managers (`FakeRunway()`, `FakeFal()`, `RequestRecorder()`) or the
pytest fixtures in `zencourt_pipeline_tests.fakes.fixtures` (load it with
`pytest_plugins = ["zencourt_pipeline_tests.fakes.fixtures"]`).
"""

from zencourt_pipeline_tests.fakes.fal import FakeFal, FalScript
from zencourt_pipeline_tests.fakes.runway import FakeRunway, RunwayScript
from zencourt_pipeline_tests.fakes.server import RequestRecorder, ServerThread, sample_mp4

__all__ = [
    "FakeFal",
    "FakeRunway",
    "FalScript",
    "RequestRecorder",
    "RunwayScript",
    "ServerThread",
    "sample_mp4",
]
