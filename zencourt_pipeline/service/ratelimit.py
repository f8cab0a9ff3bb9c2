"""Per-key rate limits of the HTTP service: a token bucket per workspace API key, in this process.

Each key may make `per_minute` requests in a burst and then one every `60 / per_minute` seconds
(`ZENCOURT_API_KEY_REQUESTS_PER_MINUTE`; 0 = unlimited). A request over the limit is answered 429
`RATE_LIMITED` with `Retry-After` (whole seconds until a token is back). The buckets live in the
service process: N service replicas allow N times the limit. The admin key is not limited.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class Bucket:
    tokens: float
    updated: float


class KeyRateLimiter:
    """Token buckets keyed by API key id; `take(key_id)` is None when allowed, else seconds to wait."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens per second
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """False when the limit is 0 (unlimited)."""
        return self.capacity > 0

    def take(self, key_id: str) -> int | None:
        """Spend one token of the key: None when there was one, else the `Retry-After` seconds."""
        if not self.enabled:
            return None
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key_id)
            if bucket is None:
                if len(self._buckets) >= self.max_keys:  # forget full buckets first: they are at rest
                    self._prune(now)
                bucket = self._buckets[key_id] = Bucket(self.capacity, now)
            bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return None
            return max(1, math.ceil((1 - bucket.tokens) / self.rate))

    def _prune(self, now: float) -> None:
        full = [key for key, b in self._buckets.items() if b.tokens + (now - b.updated) * self.rate >= self.capacity]
        for key in full or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[key]
