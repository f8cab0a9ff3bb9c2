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
* `OutputFaults`: the output URLs both fakes hand out (`current_output`), their download route
  (`serve_output`) and its knobs (`expire_outputs()`, `fail_next_downloads(n)`).
* `FaultLog`: every fault a fake actually applied to a request (kind, target, time), as opposed
  to a knob that was armed: a test or the soak counts a fault only when it hit.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from zencourt_pipeline_tests.fakes.server import ShortBodyResponse, sample_mp4

DROP = "drop"
REPLAY = "replay"  # a create answered with the id an earlier create got


@dataclass(frozen=True)
class FaultHit:
    """One fault applied to one request: `kind` (e.g. `create_429`, `create_answer_dropped`,
    `download_expired`), `target` (the request, task or token it hit), `at` (time.monotonic())."""

    kind: str
    target: str
    at: float


class FaultLog:
    """The faults a fake applied, in order; thread-safe. `count("create_5")` counts by prefix."""

    def __init__(self) -> None:
        self._hits: list[FaultHit] = []
        self._lock = threading.Lock()

    def hit(self, kind: str, target: str = "") -> None:
        with self._lock:
            self._hits.append(FaultHit(kind, target, time.monotonic()))

    def hits(self, *prefixes: str) -> list[FaultHit]:
        """The hits whose kind starts with one of `prefixes` (all hits without any)."""
        with self._lock:
            return [h for h in self._hits if not prefixes or h.kind.startswith(prefixes)]

    def count(self, *prefixes: str) -> int:
        return len(self.hits(*prefixes))


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


@dataclass
class OutputToken:
    """One output URL handed out (`/…/{token}.mp4`): whose output it is, when it was issued."""

    owner: str  # the task or request id
    issued_at: float
    dead: bool = False
    downloads: int = 0
    killed: bool = False  # dead by `expire_outputs()` (a fault), not by its script


class OutputFaults:
    """The output URLs and their download route, shared by both fakes.

    The fake holds `_lock`, `clock`, `counts`, `tokens` (URL token -> OutputToken) and
    `download_faults` (what the next downloads answer instead of the file), and defines
    `_output_owner(id)` (the task or request, with `id`, `script`, `tokens`, `expired_left`;
    None once gone) and `_output_size(owner)`. Its answers to a missing or expired output, and
    its `not_mp4` body, are the class attributes below.
    """

    _lock: threading.RLock
    clock: Callable[[], float]
    counts: Counter[str]
    fault_log: FaultLog
    tokens: dict[str, OutputToken]
    download_faults: list[int | str]
    expire_next_outputs: int
    output_missing: tuple[str, str | None] = ("Not Found", None)  # (body, media type) of the 404
    output_expired: tuple[str, str | None] = ("Forbidden", None)  # ... of the 403
    not_mp4_body = "<html>oops</html>"

    def _output_owner(self, owner_id: str) -> Any: ...

    def _output_size(self, owner: Any) -> tuple[int, int]: ...

    def expire_outputs(self, next_outputs: int = 0) -> None:
        """Every output URL issued so far answers 403 from now on, and so does each of the next
        `next_outputs` URLs handed out (issued already expired); fresh ones after that work."""
        with self._lock:
            for token in self.tokens.values():
                token.dead = token.killed = True
            self.expire_next_outputs += next_outputs

    def fail_next_downloads(self, n: int, status: int | str = 503) -> None:
        """The next n downloads answer `status` ("short_body": cut mid-body; "drop": no answer)."""
        with self._lock:
            self.download_faults.extend([status] * n)

    def current_output(self, owner: Any) -> str:
        """The token of `owner`'s output URL: its last one, or a new one when it has none yet,
        when the last is dead, or always once its script expires URLs; each of the script's first
        `expired_initially` URLs is dead when it is handed out. Call with `_lock` held."""
        script = owner.script
        fresh_each_time = script.expire is not None or script.expired_initially > 0
        if not owner.tokens or fresh_each_time or self.tokens[owner.tokens[-1]].dead:
            token = uuid.uuid4().hex
            dead = owner.expired_left > 0
            owner.expired_left -= 1 if dead else 0
            killed = not dead and self.expire_next_outputs > 0
            self.expire_next_outputs -= 1 if killed else 0
            self.tokens[token] = OutputToken(owner.id, self.clock(), dead=dead or killed, killed=killed)
            owner.tokens.append(token)
        return owner.tokens[-1]

    async def serve_output(self, token_id: str) -> Response:
        """The download route: a fault, 404, 403 or the output as the owner's script says
        ("ok", "truncated", "short_body", "wrong_size" (640x360), "not_mp4")."""
        with self._lock:
            self.counts["download"] += 1
            token = self.tokens.get(token_id)
            owner = self._output_owner(token.owner) if token else None
            # an expired URL answers 403 whatever else goes wrong meanwhile
            if token is not None and owner is not None and token_expired(token, owner.script.expire, self.clock()):
                self.counts["download_expired"] += 1
                if token.killed:
                    self.fault_log.hit("download_expired", token_id)
                return Response(self.output_expired[0], 403, media_type=self.output_expired[1])
            if self.download_faults:
                self.counts["download_fault"] += 1
                fault = self.download_faults.pop(0)
                self.fault_log.hit(f"download_fault_{fault}", token_id)
                return download_fault_response(fault)
            if token is None or owner is None:
                return Response(self.output_missing[0], 404, media_type=self.output_missing[1])
            token.downloads += 1
            mode = owner.script.output
            size = (640, 360) if mode == "wrong_size" else self._output_size(owner)
            if mode != "ok":
                self.fault_log.hit(f"output_{mode}", token_id)  # the script's bad output was served
        if mode == "not_mp4":
            return Response(self.not_mp4_body, 200, media_type="text/html")
        path: Path = await run_in_threadpool(sample_mp4, *size)
        data = path.read_bytes()
        if mode == "truncated":
            return Response(data[: int(len(data) * 0.6)], 200, media_type="video/mp4")
        if mode == "short_body":
            return ShortBodyResponse(data[: int(len(data) * 0.6)], len(data))
        return Response(data, 200, media_type="video/mp4")
