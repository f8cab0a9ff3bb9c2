"""The one backoff formula: exponential, capped, with jitter.

Retry n (0-based) waits `step * uniform(1 - jitter, 1)`, `step = min(max_delay, base_delay * 2**n)`:
`jitter=1.0` is full jitter (anywhere in [0, step], what the paid-API calls and output downloads
use), `jitter=0.5` keeps at least half the step (photo fetches). A retry is only made while
`max_attempts` and `max_total_seconds` (since the first attempt) allow.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4  # total tries, the first included
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_total_seconds: float = 90.0  # no new attempt once this much time has passed since the first
    jitter: float = 1.0  # the share of the step drawn at random

    def delay(self, retry_index: int, rng: random.Random | Any) -> float:
        """The wait before retry `retry_index` (0 for the first retry); `rng.uniform(a, b)` draws."""
        step = min(self.max_delay, self.base_delay * (2**retry_index))
        return step * rng.uniform(1.0 - self.jitter, 1.0)

    def allows(self, attempt: int, elapsed: float, delay: float) -> bool:
        """Whether attempt `attempt + 1` may follow `delay` seconds from now, `elapsed` seconds
        after the first began."""
        return attempt < self.max_attempts and elapsed + delay <= self.max_total_seconds
