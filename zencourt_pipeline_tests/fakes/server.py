"""Test-server plumbing shared by the fakes.

`ServerThread` runs an ASGI app under uvicorn in a background thread on 127.0.0.1 (a free port);
`FakeService` is a fake's lifecycle over one; `AnswerServer` answers requests from a list;
`RequestRecorder` captures what is sent to it (e.g. webhooks); `sample_mp4` makes a real small
MP4 once per process; `ScriptBook` hands scripted outcomes to newly created tasks.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from zencourt_pipeline.media.ffmpeg import run_ffmpeg


class ServerThread:
    """`with ServerThread(app) as server: httpx.get(server.url + "/path")`."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
        self.app = app
        self.host = host
        self._requested_port = port
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ServerThread:
        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        sock.set_inheritable(True)
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_level=self._log_level,
            access_log=False,
            lifespan="off",
            loop="asyncio",
            http="h11",
            ws="none",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"fake-server-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake server did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():  # pragma: no cover - a stuck handler
            self._server.force_exit = True
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class FakeService:
    """A fake's lifecycle: `app` served by a ServerThread (`url`, `start`, `stop`, a context manager)."""

    def __init__(self, app: Any):
        self.app = app
        self._server = ServerThread(app)

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> Any:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class AnswerServer(FakeService):
    """A loopback server answering each request with the next of `answers` (Response factories;
    the last one answers every request after it) and counting the requests in `calls`."""

    def __init__(self, *answers: Any):
        self.answers = list(answers)
        self.calls = 0

        async def handle(request: Request) -> Response:
            await request.body()
            self.calls += 1
            return self.answers.pop(0)() if len(self.answers) > 1 else self.answers[0]()

        super().__init__(Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST"])]))


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.time)
    status: int = 200  # what the recorder answered
    injected: bool = False  # the status came from `responses` (a fault), not the default

    def json(self) -> Any:
        import json

        return json.loads(self.body)


class RequestRecorder(FakeService):
    """An app that records every request and answers `status` (e.g. a webhook receiver).

    `recorder.responses` can hold statuses to answer the next requests with (then `status`).
    """

    def __init__(self, status: int = 200):
        self.status = status
        self.responses: list[int] = []
        self.received: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        super().__init__(
            Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST", "PUT", "DELETE"])])
        )

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        with self._arrived:
            injected = bool(self.responses)
            status = self.responses.pop(0) if injected else self.status
            self.received.append(
                ReceivedRequest(request.method, request.url.path, dict(request.headers), body, status=status,
                                injected=injected)
            )
            self._arrived.notify_all()
        return JSONResponse({"ok": 200 <= status < 300}, status_code=status)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Block until `count` requests arrived (or the timeout passes); return them all."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._arrived.wait(left)
            return list(self.received)


# --------------------------------------------------------------------------- sample media

_media_dir: Path | None = None
_media_lock = threading.Lock()


def sample_mp4(width: int = 1280, height: int = 720, *, seconds: float = 2.0, fps: int = 30) -> Path:
    """A real H.264 MP4 (ffmpeg lavfi testsrc2), generated once per process and cached in a temp dir."""
    global _media_dir
    with _media_lock:
        if _media_dir is None:
            _media_dir = Path(tempfile.mkdtemp(prefix="zencourt-fake-media-"))
            atexit.register(shutil.rmtree, _media_dir, ignore_errors=True)
        path = _media_dir / f"testsrc2-{width}x{height}-{seconds:g}s-{fps}fps.mp4"
        if not path.exists():
            tmp = path.with_name(f".{path.name}.tmp")
            run_ffmpeg(
                [
                    "-f", "lavfi",
                    "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds:g}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-crf", "32", "-pix_fmt", "yuv420p",
                    "-movflags", "+faststart", "-f", "mp4", str(tmp),
                ],
                timeout=120,
            )  # fmt: skip
            os.replace(tmp, path)
        return path


# ------------------------------------------------------------------------- scripted tasks


class ScriptBook:
    """Which script a newly created task gets: queued ones first, then by prompt text, then the default."""

    def __init__(self, default: Any):
        self.default = default
        self._queue: list[Any] = []
        self._by_prompt: list[tuple[str, Any]] = []
        self._lock = threading.Lock()

    def next(self, script: Any) -> None:
        """Give `script` to the next created task."""
        with self._lock:
            self._queue.append(script)

    def for_prompt(self, text: str, script: Any) -> None:
        """Give `script` to every task whose prompt contains `text`."""
        with self._lock:
            self._by_prompt.append((text, script))

    def pick(self, prompt: str | None) -> Any:
        with self._lock:
            if self._queue:
                return self._queue.pop(0)
            for text, script in self._by_prompt:
                if prompt and text in prompt:
                    return script
            return self.default


def phase_of(elapsed: float, latency: float, phases: list[str]) -> tuple[str | None, float]:
    """Time mode: which of `phases` a task is in after `elapsed` of `latency` seconds (None = done),
    and the progress through the last phase."""
    if elapsed >= latency or not phases:
        return None, 1.0
    share = latency / len(phases)
    index = min(len(phases) - 1, int(elapsed // share)) if share > 0 else len(phases) - 1
    return phases[index], max(0.0, min(1.0, elapsed / latency)) if latency > 0 else 1.0


def image_size_of_data_uri(uri: str) -> tuple[int, int] | None:
    """(width, height) of a `data:image/...;base64,` URI, or None when it is not a decodable image."""
    import base64
    import binascii
    import io

    from PIL import Image

    head, _, data = uri.partition(",")
    if not head.startswith("data:image/") or ";base64" not in head:
        return None
    try:
        raw = base64.b64decode(data, validate=True)
        with Image.open(io.BytesIO(raw)) as img:
            return img.size
    except (binascii.Error, ValueError, OSError):
        return None


class ShortBodyResponse(Response):
    """Declares `declared` bytes, sends only `data`, then drops the connection (a cut transfer)."""

    def __init__(self, data: bytes, declared: int, media_type: str = "video/mp4"):
        super().__init__(status_code=200)
        self._data = data
        self._declared = declared
        self._type = media_type

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", self._type.encode()),
                    (b"content-length", str(self._declared).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": self._data, "more_body": True})
        raise ConnectionAbortedError("fake: connection dropped mid-body")
