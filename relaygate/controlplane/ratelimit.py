"""Token buckets: control-plane calls per workspace (60/s by default), 429 with Retry-After.

In-process, so one control-plane replica enforces its own share; behind
several replicas divide the rate or front them with a shared limiter.
"""

from __future__ import annotations

import math
import time


class TokenBuckets:
    def __init__(self, rate: float, burst: float | None = None, max_keys: int = 100_000) -> None:
        self.rate, self.burst, self.max_keys = rate, burst or rate, max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, rate: float | None = None, cost: float = 1.0) -> float:
        """Spend ``cost``; return 0 when allowed, else the seconds until it would be."""
        rate = rate or self.rate
        burst = max(self.burst if rate == self.rate else rate, cost)
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens >= cost:
            self._buckets[key] = (tokens - cost, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:  # forget idle buckets (they would be full anyway)
            for k in list(self._buckets)[: len(self._buckets) // 2]:
                del self._buckets[k]
        return (cost - tokens) / rate

    @staticmethod
    def retry_after(wait: float) -> int:
        return max(1, math.ceil(wait))
