"""Fault machinery the fake providers share: answers that never arrive, late answers, failing
and expiring output downloads.

* `DroppedAnswer`: the request was received and acted on (the task exists), then the connection
  is closed without a byte of an answer: the client sees a transport error
  (`httpx.RemoteProtocolError`, "server disconnected without sending a response"), not HTTP.
* `AnswerFaults`: a thread-safe queue of what happens to the answers of the next creates:
  `"drop"` (DroppedAnswer) or a delay in seconds (answered late: past a client's read timeout the
  answer is lost, and the task exists all the same).
* `download_fault_response`: an HTTP status (answered instead of the file), `"short_body"` (the
  transfer is cut mid-body) or `"drop"` (no answer at all).
* `token_expired`: whether an output URL token is dead (expired by `expire_outputs()`, served
  once, or past its time to live).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from starlette.responses import Response

from zencourt_pipeline_tests.fakes.server import ShortBodyResponse

DROP = "drop"


def _transport_of(receive: Any) -> Any:
    """The asyncio transport behind uvicorn's h11 request cycle (`receive` is its bound method)."""
    return getattr(getattr(receive, "__self__", None), "transport", None)


class DroppedAnswer(Response):
    """Close the connection without answering (the request itself was handled)."""

    def __init__(self) -> None:
        super().__init__(status_code=599)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        transport = _transport_of(receive)
        if transport is None:  # not uvicorn's h11 cycle: hold the answer until the client gives up
            while (await receive()).get("type") != "http.disconnect":
                pass
            return
        transport.close()
        await asyncio.sleep(0.05)  # uvicorn sees the disconnect: it writes no 500, logs nothing


class AnswerFaults:
    """What happens to the answers of the next creates (FIFO): `"drop"` or a delay in seconds."""

    def __init__(self) -> None:
        self._queue: list[str | float] = []
        self._lock = threading.Lock()

    def add(self, fault: str | float, n: int = 1) -> None:
        with self._lock:
            self._queue.extend([fault] * n)

    def pop(self) -> str | float | None:
        with self._lock:
            return self._queue.pop(0) if self._queue else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._queue)


async def answer_with_fault(fault: str | float | None, answer: Response) -> Response:
    """`answer`, or no answer at all (`"drop"`), or `answer` after `fault` seconds."""
    if fault == DROP:
        return DroppedAnswer()
    if isinstance(fault, int | float) and fault > 0:
        await asyncio.sleep(fault)
    return answer


def download_fault_response(fault: int | str) -> Response:
    if fault == DROP:
        return DroppedAnswer()
    if fault == "short_body":
        return ShortBodyResponse(b"\x00\x00\x00\x18ftypisom" + bytes(4000), 400_000)
    status = int(fault)
    text = "<Error><Code>SlowDown</Code></Error>" if status >= 500 else "<Error><Code>AccessDenied</Code></Error>"
    return Response(text, status, media_type="application/xml")


def token_expired(token: Any, expire: str | float | None, now: float) -> bool:
    """`token` (with `dead`, `downloads`, `issued_at`) under a script's `expire` setting."""
    return bool(
        token.dead
        or (expire == "first_download" and token.downloads >= 1)
        or (isinstance(expire, int | float) and now - token.issued_at > expire)
    )


class OutputFaults:
    """The output-URL knobs both fakes share; the fake holds `_lock`, `tokens` (URL token ->
    object with `dead`) and `download_faults` (statuses popped by the download route)."""

    _lock: threading.Lock
    tokens: dict[str, Any]
    download_faults: list[int | str]

    def expire_outputs(self) -> None:
        """Every output URL issued so far answers 403 from now on; fresh ones work."""
        with self._lock:
            for token in self.tokens.values():
                token.dead = True

    def fail_next_downloads(self, n: int, status: int | str = 503) -> None:
        """The next n downloads answer `status` ("short_body": cut mid-body; "drop": no answer)."""
        with self._lock:
            self.download_faults.extend([status] * n)
