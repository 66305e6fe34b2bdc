"""Per-token rate limits: an in-memory token bucket for each (limit, API token).

In memory on purpose: the API is one process, and a restart forgetting a minute of history
is harmless. A refused request answers 429 with ``Retry-After`` in whole seconds.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from baton.api.errors import ApiError


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class RateLimiter:
    """``per_minute`` requests per key and minute, with a burst of ``per_minute``."""

    name: str
    per_minute: int
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[object, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key: object) -> float:
        """Take one request for ``key``; returns 0 if allowed, else seconds until it would be."""
        rate = self.per_minute / 60.0
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(float(self.per_minute), now)
            bucket.tokens = min(self.per_minute, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / rate

    def check(self, key: object) -> None:
        """Take one request for ``key``.

        Raises:
            ApiError: 429 with Retry-After when the bucket is empty.
        """
        wait = self.take(key)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise ApiError(
                429,
                "rate_limited",
                f"too many {self.name} requests for this token "
                f"(limit {self.per_minute} per minute); retry in {seconds} s",
                headers={"Retry-After": str(seconds)},
            )
