"""Polling many provider tasks at once (issue 13 point 6: a completion path whose poll cycle does not
grow with the tasks in flight).

Runway has no webhooks, so every one of its tasks in flight is polled, each no faster than every 5 s,
and it has no per-minute request limit (its concurrency limit shows as `THROTTLED` tasks, not as
refused requests). Polled one after another, a tick of `n` polls takes `n` round trips, and with
50 listings of 6 clips in flight (300 tasks) each task would wait for the others' round trips:
the cycle grows with the burst. `poll_tasks` keeps up to `workers` polls in flight on one shared
client (httpx clients may be shared between threads; the providers guard their own per-task poll
slots with a lock), so a tick's wall time is about `n / workers` round trips. The answers are
handed back on the caller's thread, where they are recorded: the threads only do HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from zencourt_pipeline.providers.base import GenerationError, TaskRef, TaskStatus, VideoGenerator

DEFAULT_POLL_WORKERS = 16  # polls in flight per provider and tick


def poll_tasks(
    generator: VideoGenerator, refs: Sequence[TaskRef], *, workers: int = DEFAULT_POLL_WORKERS,
    deadline: float | None = None,
) -> Iterator[tuple[TaskRef, TaskStatus | GenerationError]]:
    """Poll every task of `refs` at `generator`, up to `workers` at a time, yielding each task's
    status (or the GenerationError its poll raised) as it arrives, on the caller's thread. No poll
    starts after `deadline` (a `time.monotonic()` value); the ones started are still answered.
    Leaving the iteration early waits for the polls in flight and starts no others."""
    if not refs:
        return
    pending, size = iter(refs), max(1, min(workers, len(refs)))
    with ThreadPoolExecutor(max_workers=size, thread_name_prefix="poll") as pool:
        running: dict[Future, TaskRef] = {}

        def start_next() -> None:
            if deadline is not None and time.monotonic() > deadline:
                return
            ref = next(pending, None)
            if ref is not None:
                running[pool.submit(generator.poll, ref)] = ref

        for _ in range(size):
            start_next()
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                ref = running.pop(future)
                start_next()
                try:
                    yield ref, future.result()
                except GenerationError as exc:
                    yield ref, exc
