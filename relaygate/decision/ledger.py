"""Budget ledger: reserve the worst case up front, settle to real usage later.

A budget is checked and reserved atomically across all budgets that apply to a
call (all or nothing), so concurrent calls can never overspend a cap. The
:class:`Ledger` protocol is what the processor uses; :class:`InMemoryLedger`
is the single-process implementation (a lock around plain integers),
:class:`SqliteLedger` is shared by worker processes on one machine, and
:class:`RedisLedger` by every gateway of a fleet (one Lua script per
reservation, so the check-then-reserve is atomic in the Redis server).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Iterable, ParamSpec, Protocol, TypeVar

_P = ParamSpec("_P")
_T = TypeVar("_T")


def window_bounds(window: str, now: datetime) -> tuple[str, datetime]:
    """(window key, window end) for a calendar window in UTC. Every call asks for each of its
    budgets' windows, so they are computed once per day (or month) and time zone."""
    return _window_bounds(window, now.year, now.month, now.day if window == "day" else 1, now.tzinfo)


@lru_cache(maxsize=256)
def _window_bounds(window: str, year: int, month: int, day: int, tz: tzinfo | None) -> tuple[str, datetime]:
    start = datetime(year, month, day, tzinfo=tz)
    if window == "day":
        return start.strftime("%Y-%m-%d"), start + timedelta(days=1)
    nxt = (start + timedelta(days=32)).replace(day=1)
    return start.strftime("%Y-%m"), nxt


class LedgerUnavailable(RuntimeError):
    """The shared ledger cannot be reached: the call is refused (503), never let through unbudgeted."""


@dataclass(frozen=True)
class Hold:
    """One budget's share of a reservation."""

    budget_id: str
    window_key: str
    amount: int
    unit: str
    ref: str = ""  # a lease-bound hold's record in Redis (RedisLedger with a lease), else empty


@dataclass
class Usage:
    spent: int = 0
    reserved: int = 0


class Ledger(Protocol):
    def hold_ref(self) -> str:
        """A fresh ref for one call's holds ("" where holds are not lease-bound)."""

    def used(self, budget_id: str, window_key: str) -> int: ...
    def used_many(self, pairs: list[tuple[str, str]]) -> list[int]:
        """``used`` for several (budget id, window key) pairs at once."""

    def reserve(self, holds: list[Hold], limits: dict[str, int]) -> str | None:
        """Reserve all holds or none. Returns the budget id that would overflow, or None."""

    def settle(self, holds: Iterable[Hold], actual: dict[str, int]) -> None:
        """Release holds and charge the actual amount per unit ('tokens'/'usd')."""

    def settle_many(self, items: list[tuple[list[Hold], dict[str, int]]]) -> None:
        """``settle`` for a batch of calls (the settler's), at once where the ledger can."""

    def charge(self, budget_id: str, window_key: str, amount: int) -> None:
        """Charge spend recorded elsewhere (rebuilding state from the spool)."""


class _Single(Protocol):
    """The one-at-a-time operations :class:`_OneByOne` loops over (its subclasses define them)."""

    def used(self, budget_id: str, window_key: str) -> int: ...
    def settle(self, holds: Iterable[Hold], actual: dict[str, int]) -> None: ...


class _OneByOne:
    """Batch operations as loops, for ledgers where a call costs no round trip."""

    def hold_ref(self) -> str:
        return ""  # one process or one machine: a dead process's holds are settled from its spool

    def used_many(self: _Single, pairs: list[tuple[str, str]]) -> list[int]:
        return [self.used(b, w) for b, w in pairs]

    def settle_many(self: _Single, items: list[tuple[list[Hold], dict[str, int]]]) -> None:
        for holds, actual in items:
            self.settle(holds, actual)


class InMemoryLedger(_OneByOne):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._usage: dict[tuple[str, str], Usage] = {}

    def _get(self, budget_id: str, window_key: str) -> Usage:
        u = self._usage.get((budget_id, window_key))
        if u is None:
            u = self._usage[(budget_id, window_key)] = Usage()
        return u

    def used(self, budget_id: str, window_key: str) -> int:
        with self._lock:
            u = self._usage.get((budget_id, window_key))
            return u.spent + u.reserved if u else 0

    def reserve(self, holds: list[Hold], limits: dict[str, int]) -> str | None:
        with self._lock:
            for h in holds:
                u = self._get(h.budget_id, h.window_key)
                if u.spent + u.reserved + h.amount > limits[h.budget_id]:
                    return h.budget_id
            for h in holds:
                self._get(h.budget_id, h.window_key).reserved += h.amount
            return None

    def settle(self, holds: Iterable[Hold], actual: dict[str, int]) -> None:
        with self._lock:
            for h in holds:
                u = self._get(h.budget_id, h.window_key)
                u.reserved -= h.amount
                u.spent += actual.get(h.unit, 0)

    def charge(self, budget_id: str, window_key: str, amount: int) -> None:
        with self._lock:
            self._get(budget_id, window_key).spent += amount

    def snapshot(self) -> dict[tuple[str, str], tuple[int, int]]:
        with self._lock:
            return {k: (u.spent, u.reserved) for k, u in self._usage.items()}


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


class SqliteLedger(_OneByOne):
    """A ledger shared by several worker processes on one machine (one SQLite file).

    Each reservation is one ``BEGIN IMMEDIATE`` transaction, so SQLite's write
    lock serializes competing workers and the check-then-reserve stays exact.
    Use it when running several ext_proc workers; a Redis ledger is the
    equivalent across machines.
    """

    def __init__(self, path: Path) -> None:
        import sqlite3
        from relaygate.contract.private_files import private_sqlite

        private_sqlite(path)  # 0600 in a 0700 directory
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS budget_usage (budget_id TEXT NOT NULL, window_key TEXT NOT NULL,"
            " spent INTEGER NOT NULL DEFAULT 0, reserved INTEGER NOT NULL DEFAULT 0,"
            " PRIMARY KEY (budget_id, window_key))"
        )
        self._lock = threading.Lock()

    def used(self, budget_id: str, window_key: str) -> int:
        with self._lock:
            row = self.db.execute(
                "SELECT spent + reserved FROM budget_usage WHERE budget_id = ? AND window_key = ?",
                (budget_id, window_key),
            ).fetchone()
        return row[0] if row else 0

    def _add(self, budget_id: str, window_key: str, spent: int, reserved: int) -> None:
        self.db.execute(
            "INSERT INTO budget_usage(budget_id, window_key, spent, reserved) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(budget_id, window_key) DO UPDATE SET spent = spent + excluded.spent, "
            "reserved = reserved + excluded.reserved",
            (budget_id, window_key, spent, reserved),
        )

    def reserve(self, holds: list[Hold], limits: dict[str, int]) -> str | None:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for h in holds:
                    row = self.db.execute(
                        "SELECT spent + reserved FROM budget_usage WHERE budget_id = ? AND window_key = ?",
                        (h.budget_id, h.window_key),
                    ).fetchone()
                    if (row[0] if row else 0) + h.amount > limits[h.budget_id]:
                        self.db.execute("ROLLBACK")
                        return h.budget_id
                for h in holds:
                    self._add(h.budget_id, h.window_key, 0, h.amount)
                self.db.execute("COMMIT")
                return None
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def settle(self, holds: Iterable[Hold], actual: dict[str, int]) -> None:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for h in holds:
                    self._add(h.budget_id, h.window_key, actual.get(h.unit, 0), -h.amount)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def charge(self, budget_id: str, window_key: str, amount: int) -> None:
        with self._lock:
            self._add(budget_id, window_key, amount, 0)


@lru_cache(maxsize=64)
def window_expiry(window_key: str) -> int:
    """Unix time after which a window's usage can go: its end plus two days for late settlements.

    Cached: every reservation and settlement asks, and a process sees a handful of windows.
    """
    window, fmt = ("day", "%Y-%m-%d") if len(window_key) == 10 else ("month", "%Y-%m")
    start = datetime.strptime(window_key, fmt).replace(tzinfo=timezone.utc)
    return int((window_bounds(window, start)[1] + timedelta(days=2)).timestamp())


# KEYS: one usage hash per hold. ARGV: amount, limit, expire-at for each hold, in KEYS order.
# Returns 0 when every hold was reserved, else the 1-based index of the hold that would overflow.
_RESERVE = """
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'spent', 'reserved')
  if (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0) + tonumber(ARGV[3 * i - 2]) > tonumber(ARGV[3 * i - 1]) then
    return i
  end
end
for i = 1, #KEYS do
  redis.call('HINCRBY', KEYS[i], 'reserved', ARGV[3 * i - 2])
  redis.call('EXPIREAT', KEYS[i], ARGV[3 * i])
end
return 0
"""
# KEYS: one usage hash per hold. ARGV: change of reserved (minus the hold), amount spent, expire-at, per hold.
_SETTLE = """
for i = 1, #KEYS do
  redis.call('HINCRBY', KEYS[i], 'reserved', ARGV[3 * i - 2])
  redis.call('HINCRBY', KEYS[i], 'spent', ARGV[3 * i - 1])
  redis.call('EXPIREAT', KEYS[i], ARGV[3 * i])
end
return 0
"""

# Lease-bound holds. KEYS: the n usage hashes, then the owner's holds hash, its lease key and the
# registry of owners. ARGV: amount, limit, expire-at per hold, then the ref, the owner, the lease
# TTL (ms). As _RESERVE, and on success records {usage key, amount} pairs under the ref in the
# owner's holds hash; a process that reserves is alive, so its lease is renewed here too (a slow
# process whose holds were reaped cannot record new ones under a lapsed lease).
_RESERVE_LEASED = """
local n = #KEYS - 3
for i = 1, n do
  local v = redis.call('HMGET', KEYS[i], 'spent', 'reserved')
  if (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0) + tonumber(ARGV[3 * i - 2]) > tonumber(ARGV[3 * i - 1]) then
    return i
  end
end
local record = {}
for i = 1, n do
  redis.call('HINCRBY', KEYS[i], 'reserved', ARGV[3 * i - 2])
  redis.call('EXPIREAT', KEYS[i], ARGV[3 * i])
  record[i] = {KEYS[i], tonumber(ARGV[3 * i - 2])}
end
redis.call('HSET', KEYS[n + 1], ARGV[3 * n + 1], cjson.encode(record))
redis.call('SET', KEYS[n + 2], '1', 'PX', ARGV[3 * n + 3])
redis.call('SADD', KEYS[n + 3], ARGV[3 * n + 2])
return 0
"""
# KEYS: the n usage hashes, then the owner's holds hash. ARGV: as _SETTLE per hold, then the ref.
# The record is the token: only a settlement that removes it releases the reservation; one whose
# record a reaper already released (its lease had lapsed) adds the spend alone.
_SETTLE_LEASED = """
local n = #KEYS - 1
local held = redis.call('HDEL', KEYS[n + 1], ARGV[3 * n + 1]) == 1
for i = 1, n do
  if held then redis.call('HINCRBY', KEYS[i], 'reserved', ARGV[3 * i - 2]) end
  redis.call('HINCRBY', KEYS[i], 'spent', ARGV[3 * i - 1])
  redis.call('EXPIREAT', KEYS[i], ARGV[3 * i])
end
return held and 1 or 0
"""
# KEYS: the registry of owners. ARGV: the lease key prefix, the holds hash prefix. Every owner
# whose lease expired has its recorded holds released (reserved decremented; a usage hash that
# has expired meanwhile is left alone) and its record deleted, in one script: several reapers
# at once release each hold exactly once. Returns the number of calls whose holds it released.
_REAP = """
local released = 0
for _, owner in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. owner) == 0 then
    local holds = ARGV[2] .. owner
    local all = redis.call('HGETALL', holds)
    for j = 2, #all, 2 do
      for _, kv in ipairs(cjson.decode(all[j])) do
        if redis.call('EXISTS', kv[1]) == 1 then redis.call('HINCRBY', kv[1], 'reserved', -kv[2]) end
      end
      released = released + 1
    end
    redis.call('DEL', holds)
    redis.call('SREM', KEYS[1], owner)
  end
end
return released
"""


class RedisLedger:
    """Budgets shared by every gateway that points at the same Redis (``--ledger-url redis://...``).

    Each budget window is a hash ``{prefix}{budget_id}:{window_key}`` with
    ``spent`` and ``reserved``; it expires two days after its window ends.
    Reserve and settle are Lua scripts, so concurrent gateways can never
    overspend a cap between the check and the reservation. Redis unreachable
    or slower than ``timeout`` means the reservation raises, and the call is
    refused (fail closed); a script that timed out may still have run, which
    can only leave a hold reserved (the budget under-used, never overspent).
    Give Redis persistence (AOF) in production: its data is the budgets' state.

    With ``owner`` (a name unique to this process) holds are lease-bound: each call's holds are
    recorded in ``{lease_prefix}holds:{owner}`` under a ref (:meth:`hold_ref`, carried in the
    spool's draft), the process keeps ``{lease_prefix}live:{owner}`` alive (:meth:`renew`, and
    every reservation), and any process's :meth:`reap` releases the recorded holds of owners
    whose lease expired (a sidecar that died for good) instead of leaving them reserved until the
    window ends. Settling removes a call's record; a settlement whose record was already reaped
    (the process was only slow, or is replaying its spool after a restart) adds the real spend
    but does not release the reservation a second time.
    """

    def __init__(
        self,
        url: str,
        prefix: str = "relaygate:budget:",
        timeout: float = 0.5,
        owner: str | None = None,
        lease_ttl: float = 10.0,
        lease_prefix: str = "relaygate:lease:",
    ) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # One immediate retry on a broken connection (Redis restarted); none on a timeout, where
        # the script may still run: a second try could reserve twice.
        self.redis = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
            retry_on_timeout=False,
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        )
        self.redis.ping()  # a wrong URL or a Redis that is down fails at start, clearly
        self.prefix = prefix
        self._errors = (redis.RedisError, OSError)
        self._reserve = self.redis.register_script(_RESERVE)
        self._settle = self.redis.register_script(_SETTLE)
        self.owner, self.lease_ttl_ms, self.lease_prefix = owner, int(lease_ttl * 1000), lease_prefix
        self._registry = f"{lease_prefix}owners"
        self._settle_leased = self.redis.register_script(_SETTLE_LEASED)  # a spool's holds may be lease-bound
        if owner is not None:
            self._reserve_leased = self.redis.register_script(_RESERVE_LEASED)
            self._reap = self.redis.register_script(_REAP)
            self.renew()

    def hold_ref(self) -> str:
        import secrets

        return f"{self.owner}#{secrets.token_hex(8)}" if self.owner is not None else ""

    def _holds_key(self, ref: str) -> str:
        return f"{self.lease_prefix}holds:{ref.rpartition('#')[0]}"

    def renew(self) -> None:
        """Keep this process's lease alive (every couple of seconds, and with every reservation)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(f"{self.lease_prefix}live:{self.owner}", "1", px=self.lease_ttl_ms)
        pipe.sadd(self._registry, str(self.owner))
        self._call(pipe.execute)

    def reap(self) -> int:
        """Release the recorded holds of every owner whose lease expired; the number of calls."""
        prefixes = [f"{self.lease_prefix}live:", f"{self.lease_prefix}holds:"]
        return int(self._call(self._reap, keys=[self._registry], args=prefixes))

    def _key(self, budget_id: str, window_key: str) -> str:
        return f"{self.prefix}{budget_id}:{window_key}"

    def _call(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return fn(*args, **kwargs)
        except self._errors as e:
            raise LedgerUnavailable(f"Redis budget ledger: {e}") from None

    def used(self, budget_id: str, window_key: str) -> int:
        return self.used_many([(budget_id, window_key)])[0]

    def used_many(self, pairs: list[tuple[str, str]]) -> list[int]:
        pipe = self.redis.pipeline(transaction=False)
        for budget_id, window_key in pairs:
            pipe.hmget(self._key(budget_id, window_key), "spent", "reserved")
        rows = self._call(pipe.execute)
        return [int(spent or 0) + int(reserved or 0) for spent, reserved in rows]

    def reserve(self, holds: list[Hold], limits: dict[str, int]) -> str | None:
        if not holds:
            return None
        args: list[int | str] = []
        for h in holds:
            args += [int(h.amount), int(limits[h.budget_id]), window_expiry(h.window_key)]
        keys = [self._key(h.budget_id, h.window_key) for h in holds]
        ref = holds[0].ref
        if ref and self.owner is not None:
            keys += [self._holds_key(ref), f"{self.lease_prefix}live:{self.owner}", self._registry]
            over = self._call(self._reserve_leased, keys=keys, args=[*args, ref, self.owner, self.lease_ttl_ms])
        else:
            over = self._call(self._reserve, keys=keys, args=args)
        return holds[int(over) - 1].budget_id if over else None

    def _settle_args(self, holds: list[Hold], actual: dict[str, int]) -> tuple[list[str], list[int | str]]:
        args: list[int | str] = []
        for h in holds:
            args += [-int(h.amount), int(actual.get(h.unit, 0)), window_expiry(h.window_key)]
        keys = [self._key(h.budget_id, h.window_key) for h in holds]
        if holds[0].ref:
            keys.append(self._holds_key(holds[0].ref))
            args.append(holds[0].ref)
        return keys, args

    def settle(self, holds: Iterable[Hold], actual: dict[str, int]) -> None:
        self.settle_many([(list(holds), actual)])

    def settle_many(self, items: list[tuple[list[Hold], dict[str, int]]]) -> None:
        """One round trip for the whole batch; each call's settlement is still its own script."""
        items = [(holds, actual) for holds, actual in items if holds]
        if not items:
            return
        pipe = self.redis.pipeline(transaction=False)
        for holds, actual in items:
            keys, args = self._settle_args(holds, actual)
            # Lease-bound holds settle by their record whoever settles them (the spool of a
            # restarted process names its previous owner); the script needs no lease of its own.
            script = self._settle_leased if holds[0].ref else self._settle
            script(keys=keys, args=args, client=pipe)
        self._call(pipe.execute)

    def charge(self, budget_id: str, window_key: str, amount: int) -> None:
        self._call(
            self._settle, keys=[self._key(budget_id, window_key)], args=[0, int(amount), window_expiry(window_key)]
        )
