"""Gateway tier limits per workspace: requests per second and worst-case tokens per minute.

Token buckets in the sidecar, checked before the policy runs: a call spends
one request and its worst-case tokens (input bound + output cap, the same
figure budgets reserve). Over either limit it is refused with 429
``rate.limited`` and a Retry-After of the seconds until it would fit. The
limits come from the workspace's settings in the control plane's bundle;
the buckets outlive bundle swaps.

:class:`TierLimits` keeps the buckets in the sidecar process (the default for
one sidecar: a fleet-wide limit would be the sum over the gateways).
:class:`RedisTierLimits` keeps them in the Redis the budget ledger uses
(``--limits redis``, the default with ``--ledger redis``): every gateway takes
from the same buckets, so the fleet together admits what one gateway would;
Redis unreachable or slow refuses the call (503 ``rate.unavailable``).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Protocol


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


class Limits(Protocol):
    """What admission asks before the policy: :class:`TierLimits` or :class:`RedisTierLimits`."""

    def check(self, workspace: str, rps: float | None, tpm: int | None, tokens: int) -> tuple[int, str] | None: ...


class LimitsUnavailable(RuntimeError):
    """The fleet's shared limits cannot be reached: the call is refused (503 ``rate.unavailable``)."""


# KEYS: one bucket hash per limit (fields level, at: microseconds of Redis's clock).
# ARGV: capacity, rate per second, cost for each bucket, in KEYS order.
# Returns {0, 0} when every bucket had room (all charged), else {index, seconds until it would fit}
# with seconds -1 when the cost exceeds the capacity outright. Redis's own clock (TIME), so the
# gateways' clocks never matter; a bucket left alone expires once it would be full again.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local levels = {}
for i = 1, #KEYS do
  local cap, rate, cost = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
  if cost > cap then return {i, -1} end
  local v = redis.call('HMGET', KEYS[i], 'level', 'at')
  local level, at = tonumber(v[1]), tonumber(v[2])
  if level == nil or at == nil then
    level = cap
  else
    level = math.min(cap, level + math.max(0, now - at) * rate / 1000000)
  end
  if level < cost then return {i, math.max(1, math.ceil((cost - level) / rate))} end
  levels[i] = level - cost
end
for i = 1, #KEYS do
  local cap, rate = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1])
  redis.call('HSET', KEYS[i], 'level', string.format('%.6f', levels[i]), 'at', string.format('%d', now))
  redis.call('PEXPIRE', KEYS[i], math.ceil((cap - levels[i]) / rate * 1000) + 1000)
end
return {0, 0}
"""
BUCKET_SCRIPT = _TAKE  # the same buckets for the control plane's per-workspace rate limits


class RedisTierLimits:
    """The tier limits of a fleet: every gateway on one Redis takes from the same buckets.

    Each workspace's requests-per-second and tokens-per-minute buckets are hashes
    ``{prefix}{workspace}:rps`` / ``:tpm``, checked and charged by one Lua script
    (one round trip, atomic in the Redis server, timed by Redis's clock), so N
    gateways together admit exactly what one would. Redis unreachable or slower
    than the client's timeout raises :class:`LimitsUnavailable` and admission
    refuses the call (503 ``rate.unavailable``, fail closed, like the budget ledger).
    ``client`` is a ``redis.Redis`` (the budget ledger's: same Redis, same timeout).
    """

    def __init__(self, client: Any, prefix: str = "relaygate:limits:") -> None:
        import redis

        self.redis, self.prefix = client, prefix
        self._errors = (redis.RedisError, OSError)
        self._take = client.register_script(_TAKE)

    def check(self, workspace: str, rps: float | None, tpm: int | None, tokens: int) -> tuple[int, str] | None:
        """As :meth:`TierLimits.check`, for the whole fleet."""
        if not rps and not tpm:
            return None
        keys: list[str] = []
        args: list[float] = []
        names: list[tuple[str, float]] = []
        if rps:
            keys.append(f"{self.prefix}{workspace}:rps")
            args += [max(rps, 1.0), rps, 1]
            names.append(("requests_per_second", rps))
        if tpm:
            keys.append(f"{self.prefix}{workspace}:tpm")
            args += [tpm, tpm / 60.0, tokens]
            names.append(("tokens_per_minute", tpm))
        try:
            which, retry = self._take(keys=keys, args=[repr(float(a)) for a in args])
        except self._errors as e:
            raise LimitsUnavailable(f"Redis tier limits: {e}") from None
        if not which:
            return None
        name, limit = names[int(which) - 1]
        if int(retry) < 0:
            return 60, f"the call's worst case ({tokens} tokens) exceeds the workspace's {name} ({limit:g})"
        return int(retry), name
