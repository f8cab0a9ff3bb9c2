"""What every bench section prints and how it times: `name: value` lines on stdout, notes on
stderr, wall/CPU/peak-RSS timings (shared by runner.py and the sections it calls)."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from zencourt_pipeline.bench.rss import PeakTreeRss


def emit(name: str, value: float | int) -> None:
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    print(f"{name}: {text}", flush=True)


def note(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Timing:
    wall: float  # seconds
    cpu: float  # user + system seconds of the child processes (ffmpeg) plus this process
    peak_mb: float  # peak RSS of this process and its children
    result: object = None


def timed(fn: Callable[[], object]) -> Timing:
    """Wall time, CPU time and peak tree RSS of fn()."""
    with PeakTreeRss() as rss:
        c0, s0 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        result = fn()
        wall = time.perf_counter() - start
        c1, s1 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    cpu = sum(b.ru_utime - a.ru_utime + b.ru_stime - a.ru_stime for a, b in ((c0, c1), (s0, s1)))
    return Timing(wall, cpu, rss.peak_mb, result)
