"""Gateway tier limits per workspace: requests per second and worst-case tokens per minute.

Token buckets in the sidecar, checked before the policy runs: a call spends
one request and its worst-case tokens (input bound + output cap, the same
figure budgets reserve). Over either limit it is refused with 429
``rate.limited`` and a Retry-After of the seconds until it would fit. The
limits come from the workspace's settings in the control plane's bundle;
the buckets outlive bundle swaps. They are per sidecar process: a fleet-wide
limit is the sum over the gateways serving the workspace.
"""

from __future__ import annotations

import math
import threading
import time


class TierLimits:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def _level(self, key: tuple[str, str], capacity: float, rate: float, now: float) -> float:
        level, at = self._buckets.get(key, (capacity, now))
        return min(capacity, level + (now - at) * rate)

    def check(self, workspace: str, rps: float | None, tpm: int | None, tokens: int) -> tuple[int, str] | None:
        """None when the call fits (and it is charged); else (retry-after seconds, which limit)."""
        if not rps and not tpm:
            return None
        now = time.monotonic()
        with self._lock:
            wants = []
            if rps:
                wants.append(((workspace, "rps"), max(rps, 1.0), rps, 1.0, "requests_per_second"))
            if tpm:
                wants.append(((workspace, "tpm"), float(tpm), tpm / 60.0, float(tokens), "tokens_per_minute"))
            levels = []
            for key, cap, rate, cost, name in wants:
                level = self._level(key, cap, rate, now)
                if cost > cap:
                    return 60, f"the call's worst case ({tokens} tokens) exceeds the workspace's {name} ({tpm})"
                if level < cost:
                    return max(1, math.ceil((cost - level) / rate)), name
                levels.append(level)
            for (key, _, _, cost, _), level in zip(wants, levels):
                self._buckets[key] = (level - cost, now)
        return None
