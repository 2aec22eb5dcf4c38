"""Token buckets: control-plane calls per workspace (60/s by default), 429 with Retry-After.

Where the buckets live decides what "60/s" means behind several replicas:

- :class:`RedisBuckets` (``redis_url`` set): one bucket per key in Redis, checked and charged by
  the gateway tier limits' Lua script (relaygate/decision/limits.py) on Redis's clock, so every
  replica takes from the same bucket;
- :class:`PostgresBuckets` (PostgreSQL, no Redis): one row per key, refilled and charged in one
  statement on the database's clock (the row lock orders concurrent calls);
- :class:`TokenBuckets` (SQLite: one replica): in the process.

A shared store that cannot be reached refuses the call: :class:`RateLimitUnavailable`, answered
503 ``rate.unavailable`` with Retry-After (fail closed, as the gateways' shared limits do).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import sqlalchemy as sa

from relaygate.decision.limits import BUCKET_SCRIPT

log = logging.getLogger("relaygate.controlplane.ratelimit")
REDIS_TIMEOUT = 0.5  # seconds; slower than this counts as unreachable


class RateLimitUnavailable(RuntimeError):
    """The shared buckets cannot be reached: the call is refused (503 ``rate.unavailable``)."""


class TokenBuckets:
    def __init__(self, rate: float, burst: float | None = None, max_keys: int = 100_000) -> None:
        self.rate, self.burst, self.max_keys = rate, burst or rate, max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    def capacity(self, rate: float, cost: float) -> float:
        """The configured burst for the default rate; a workspace's own rate is its own burst."""
        return max(self.burst if rate == self.rate else rate, cost)

    def take(self, key: str, rate: float | None = None, cost: float = 1.0) -> float:
        """Spend ``cost``; return 0 when allowed, else the seconds until it would be."""
        rate = rate or self.rate
        burst = self.capacity(rate, cost)
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

    async def charge(self, key: str, rate: float | None = None, cost: float = 1.0) -> float:
        return self.take(key, rate, cost)

    async def close(self) -> None:
        pass

    @staticmethod
    def retry_after(wait: float) -> int:
        return max(1, math.ceil(wait))


class RedisBuckets(TokenBuckets):
    def __init__(self, url: str, rate: float, burst: float | None = None, prefix: str = "relaygate:cp:rate:") -> None:
        import redis
        import redis.asyncio

        super().__init__(rate, burst)
        self.prefix = prefix
        self.redis: Any = redis.asyncio.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
        )
        self._errors = (redis.RedisError, OSError, TimeoutError)
        self._take = self.redis.register_script(BUCKET_SCRIPT)

    async def charge(self, key: str, rate: float | None = None, cost: float = 1.0) -> float:
        rate = rate or self.rate
        args = [repr(float(a)) for a in (self.capacity(rate, cost), rate, cost)]
        try:
            which, retry = await self._take(keys=[self.prefix + key], args=args)
        except self._errors as e:
            raise RateLimitUnavailable(f"Redis rate limits: {e}") from None
        return float(retry) if int(which) else 0.0

    async def close(self) -> None:
        await self.redis.aclose()


# One statement: refill the row's bucket by the time since it was last charged (the database's
# clock), charge it if the call fits, and say whether it did. ON CONFLICT takes the row lock, so
# concurrent calls from every replica are charged one after another.
_PG_TAKE = sa.text(
    """
    INSERT INTO cp_rate_buckets AS b (key, level, at, granted)
    VALUES (:key, :cap - :cost, extract(epoch FROM clock_timestamp())::float8, true)
    ON CONFLICT (key) DO UPDATE SET
      level = CASE WHEN least(:cap, b.level + greatest(0, excluded.at - b.at) * :rate) >= :cost
                   THEN least(:cap, b.level + greatest(0, excluded.at - b.at) * :rate) - :cost
                   ELSE least(:cap, b.level + greatest(0, excluded.at - b.at) * :rate) END,
      at = excluded.at,
      granted = least(:cap, b.level + greatest(0, excluded.at - b.at) * :rate) >= :cost
    RETURNING granted, level
    """
).bindparams(
    sa.bindparam("key", type_=sa.String),
    sa.bindparam("cap", type_=sa.Float),
    sa.bindparam("rate", type_=sa.Float),
    sa.bindparam("cost", type_=sa.Float),
)


# A bucket left alone for an hour is full again (a burst of at most an hour's rate), so its row
# can go; every PRUNE_EVERY charges one replica deletes those (Redis expires its keys itself).
_PG_PRUNE = sa.text("DELETE FROM cp_rate_buckets WHERE at < extract(epoch FROM clock_timestamp())::float8 - 3600")
PRUNE_EVERY = 1000


class PostgresBuckets(TokenBuckets):
    def __init__(self, engine: Any, rate: float, burst: float | None = None) -> None:
        super().__init__(rate, burst)
        self.engine = engine
        self._charges = 0

    async def charge(self, key: str, rate: float | None = None, cost: float = 1.0) -> float:
        rate = rate or self.rate
        cap = self.capacity(rate, cost)
        try:
            async with self.engine.begin() as c:
                granted, level = (
                    await c.execute(_PG_TAKE, {"key": key[:300], "cap": cap, "rate": rate, "cost": cost})
                ).one()
                self._charges += 1
                if self._charges % PRUNE_EVERY == 0:
                    await c.execute(_PG_PRUNE)
        except (sa.exc.SQLAlchemyError, OSError) as e:
            raise RateLimitUnavailable(f"PostgreSQL rate limits: {e.__class__.__name__}") from None
        return 0.0 if granted else (cost - level) / rate


def buckets_for(settings: Any, engine: Any) -> TokenBuckets:
    """Redis when configured, else the PostgreSQL database, else (SQLite) this process."""
    rate, burst = settings.rate_limit_rps, settings.rate_limit_burst or None
    if settings.redis_url:
        return RedisBuckets(settings.redis_url, rate, burst)
    if engine is not None and engine.dialect.name == "postgresql":
        return PostgresBuckets(engine, rate, burst)
    return TokenBuckets(rate, burst)
