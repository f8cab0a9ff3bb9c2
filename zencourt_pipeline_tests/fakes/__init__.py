"""Fake Runway and fal servers speaking the documented HTTP contracts over real sockets.

Start them with the context managers (`FakeRunway()`, `FakeFal()`, `RequestRecorder()`) or the
pytest fixtures in `zencourt_pipeline_tests.fakes.fixtures` (load it with
`pytest_plugins = ["zencourt_pipeline_tests.fakes.fixtures"]`).

Layout: `runway.py` / `fal.py` are the fakes' HTTP handlers (`runway_api.py` / `fal_api.py` what
each API accepts, its scripts and task state; `fal_webhooks.py` fal's signed webhooks);
`faults.py` the misbehaviour and the output URLs both share; `server.py` the server plumbing.
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
