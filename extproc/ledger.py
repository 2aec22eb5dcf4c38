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
