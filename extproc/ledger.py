"""Budget ledger: reserve the worst case up front, settle to real usage later.

A budget is checked and reserved atomically across all budgets that apply to a
call (all or nothing), so concurrent calls can never overspend a cap. The
:class:`Ledger` protocol is what the processor uses; :class:`InMemoryLedger`
is the single-process implementation (a lock around plain integers). A shared
implementation (Redis) plugs in behind the same protocol.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable, Protocol


def window_bounds(window: str, now: datetime) -> tuple[str, datetime]:
    """(window key, window end) for a calendar window in UTC."""
    if window == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.strftime("%Y-%m-%d"), start + timedelta(days=1)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    nxt = (start + timedelta(days=32)).replace(day=1)
    return start.strftime("%Y-%m"), nxt


@dataclass(frozen=True)
class Hold:
    """One budget's share of a reservation."""
    budget_id: str
    window_key: str
    amount: int
    unit: str


@dataclass
class Usage:
    spent: int = 0
    reserved: int = 0


class Ledger(Protocol):
    def used(self, budget_id: str, window_key: str) -> int: ...
    def reserve(self, holds: list[Hold], limits: dict[str, int]) -> str | None:
        """Reserve all holds or none. Returns the budget id that would overflow, or None."""
    def settle(self, holds: Iterable[Hold], actual: dict[str, int]) -> None:
        """Release holds and charge the actual amount per unit ('tokens'/'usd')."""
    def charge(self, budget_id: str, window_key: str, amount: int) -> None:
        """Charge spend recorded elsewhere (rebuilding state from the spool)."""


class InMemoryLedger:
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


class SqliteLedger:
    """A ledger shared by several worker processes on one machine (one SQLite file).

    Each reservation is one ``BEGIN IMMEDIATE`` transaction, so SQLite's write
    lock serializes competing workers and the check-then-reserve stays exact.
    Use it when running several ext_proc workers; a Redis ledger is the
    equivalent across machines.
    """

    def __init__(self, path) -> None:
        import sqlite3
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS budget_usage (budget_id TEXT NOT NULL, window_key TEXT NOT NULL,"
                        " spent INTEGER NOT NULL DEFAULT 0, reserved INTEGER NOT NULL DEFAULT 0,"
                        " PRIMARY KEY (budget_id, window_key))")
        self._lock = threading.Lock()

    def used(self, budget_id: str, window_key: str) -> int:
        with self._lock:
            row = self.db.execute("SELECT spent + reserved FROM budget_usage WHERE budget_id = ? AND window_key = ?",
                                  (budget_id, window_key)).fetchone()
        return row[0] if row else 0

    def _add(self, budget_id: str, window_key: str, spent: int, reserved: int) -> None:
        self.db.execute(
            "INSERT INTO budget_usage(budget_id, window_key, spent, reserved) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(budget_id, window_key) DO UPDATE SET spent = spent + excluded.spent, "
            "reserved = reserved + excluded.reserved", (budget_id, window_key, spent, reserved))

    def reserve(self, holds: list[Hold], limits: dict[str, int]) -> str | None:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for h in holds:
                    row = self.db.execute("SELECT spent + reserved FROM budget_usage "
                                          "WHERE budget_id = ? AND window_key = ?",
                                          (h.budget_id, h.window_key)).fetchone()
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
