"""Durable local receipt spool (SQLite in WAL mode).

A call's decision is written here (state ``pending``) before Envoy is told to
forward or block it, and completed with usage, signature and chain position
when the access-log entry for the call arrives. Rows still pending from a
previous process are finalized as ``incomplete`` on start, so a crash leaves
an incomplete receipt, never a missing one. The spool also answers how much of
each budget window is spent, so budgets survive restarts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from relaygate.contract.private_files import private_sqlite

log = logging.getLogger("relaygate.extproc.spool")

SCHEMA = """
CREATE TABLE IF NOT EXISTS receipts (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    id        TEXT NOT NULL UNIQUE,
    state     TEXT NOT NULL CHECK (state IN ('pending', 'complete', 'incomplete')),
    created   REAL NOT NULL,
    draft     TEXT NOT NULL,
    chain_seq INTEGER UNIQUE,
    hash      TEXT,
    envelope  TEXT,
    charges   TEXT
);
CREATE INDEX IF NOT EXISTS receipts_pending ON receipts(state, created);
"""
# Added when receipts started being shipped to a control plane: 0 = not yet,
# 1 = the control plane has it, 2 = the control plane refused it (logged).
MIGRATIONS = [
    (
        "shipped",
        "ALTER TABLE receipts ADD COLUMN shipped INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX IF NOT EXISTS receipts_unshipped ON receipts(shipped, chain_seq)",
    ),
]


# The WAL is wrapped (written again from its start) once it holds this much. Under a steady stream
# of commits the background PASSIVE checkpoint never catches up with the last frame, so SQLite never
# wraps the log on its own: it grew by ~1 GB per 30,000 receipts (issue 13, found by the peer
# benchmark slowing down round after round). A RESTART checkpoint would wrap it but holds writers
# off while it runs (10-40 ms, once 480 ms, measured under load): the event loop would stall. So
# the background thread only copies, and asks; the writer, between two of its own transactions,
# copies the few frames written since (a PASSIVE checkpoint of its own, never waiting) and its next
# transaction starts the log over. journal_size_limit truncates the file back when it does.
WAL_WRAP_BYTES = 64 << 20


_INSERT = "INSERT INTO receipts(id, state, created, draft) VALUES (?, 'pending', ?, ?)"


class Spool:
    def __init__(
        self,
        path: Path,
        synchronous: str = "NORMAL",
        wal_wrap_bytes: int = WAL_WRAP_BYTES,
        checkpoint_every_s: float = 0.5,
    ) -> None:
        path = Path(path)
        private_sqlite(path)  # receipts are evidence: 0600 in a 0700 directory
        self.path = path
        # timeout: several worker processes may share one spool file.
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a committed row survives a process crash (the WAL is written
        # before commit returns); FULL adds an fsync per commit for power loss.
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self.db.executescript(SCHEMA)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(receipts)")}
        for column, *statements in MIGRATIONS:
            if column not in columns:
                for stmt in statements:
                    self.db.execute(stmt)
        # Checkpoint the WAL from a background thread (sqlite releases the GIL)
        # instead of inside whichever commit crosses the threshold: an inline
        # checkpoint stalls the event loop for milliseconds.
        self.db.execute("PRAGMA wal_autocheckpoint=0")
        self.db.execute(f"PRAGMA journal_size_limit={int(wal_wrap_bytes)}")
        self._wal_wrap_bytes = wal_wrap_bytes
        self._checkpoint_every_s = checkpoint_every_s
        # Group commit: drafts written with grouped=True during one event-loop turn are kept here
        # and inserted in one transaction at the start of the next turn (the write lock is held
        # only for that, which matters to workers sharing this file); what waits on them (the
        # replies that let Envoy act on those drafts) runs after the commit, or learns it failed.
        self._rows: list[tuple[str, float, bytes]] = []
        self._wrap_wanted = False  # set by the checkpoint thread, acted on by the writer
        self._waiting: list[tuple[Callable[[], None] | None, Callable[[BaseException], None] | None]] = []
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="spool-checkpoint", daemon=True)
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, timeout=10)
        page = db.execute("PRAGMA page_size").fetchone()[0]
        try:
            while not self._stop.wait(self._checkpoint_every_s):
                try:
                    _, frames, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if frames * page >= self._wal_wrap_bytes:
                        # Catch up close to the last frame first (each pass copies only what the
                        # one before left), so the writer's own copy is a few pages.
                        for _ in range(4):
                            if (frames - copied) * page < 256 << 10:
                                break
                            _, frames, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                        self._wrap_wanted = True
                except sqlite3.Error as e:  # disk full and the like: try again next time
                    log.warning("spool checkpoint: %s", e)
        finally:
            db.close()

    def close(self) -> None:
        self.flush()
        self._stop.set()
        self._checkpointer.join()
        self.db.close()

    def add_pending(self, receipt_id: str, draft: dict, grouped: bool = False) -> None:
        """Write a call's draft. Committed before this returns; with ``grouped`` (inside a running
        event loop), committed with the other grouped drafts of this loop turn by :meth:`flush`,
        and whatever must wait for that goes in :meth:`after_commit`. A grouped draft that cannot
        be written (a duplicate id: Envoy makes every request id itself, so none is expected)
        fails its whole group, closed."""
        row = (receipt_id, time.time(), orjson.dumps(draft))
        if grouped:
            if not self._rows:  # the turn's first: its flush is scheduled once
                asyncio.get_running_loop().call_soon(self.flush)
            self._rows.append(row)
            return
        self.flush()
        self.db.execute(_INSERT, row)

    def after_commit(
        self, then: Callable[[], None] | None, failed: Callable[[BaseException], None] | None = None
    ) -> bool:
        """Run ``then()`` once the open group is committed, or ``failed(error)`` if the commit
        fails (its drafts are gone). False, and nothing queued, when no group is open: what was
        written is committed already."""
        if not self._rows:
            return False
        self._waiting.append((then, failed))
        return True

    def _wrap_wal(self) -> None:
        """Between two transactions of the writer: copy what the checkpoint thread has not yet
        (the frames of the last moments), so the next transaction starts the WAL over."""
        self._wrap_wanted = False
        try:
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")  # never waits; busy: asked again
        except sqlite3.Error as e:
            log.warning("spool checkpoint: %s", e)

    def flush(self) -> None:
        """Commit the open group (one transaction for a loop turn's drafts) and run its waiters."""
        if not self._rows:
            if self._wrap_wanted:
                self._wrap_wal()
            return
        rows, waiting = self._rows, self._waiting
        self._rows, self._waiting = [], []
        error: BaseException | None = None
        try:
            self.db.execute("BEGIN")
            self.db.executemany(_INSERT, rows)
            self.db.execute("COMMIT")
        except sqlite3.Error as e:
            error = e
            log.error("spool commit of %d draft(s) failed: %s; their calls are refused", len(rows), e)
            if self.db.in_transaction:
                try:
                    self.db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
        for then, failed in waiting:
            try:
                if error is None:
                    if then is not None:
                        then()
                elif failed is not None:
                    failed(error)
            except Exception:
                log.exception("after a spool commit")
        if self._wrap_wanted:
            self._wrap_wal()

    def update_pending(self, receipt_id: str, draft: dict) -> bool:
        """Replace a still-pending draft (a sampling summary completed at the end of its window)."""
        self.flush()
        cur = self.db.execute(
            "UPDATE receipts SET draft = ? WHERE id = ? AND state = 'pending'", (orjson.dumps(draft), receipt_id)
        )
        return cur.rowcount == 1

    def draft(self, receipt_id: str) -> tuple[str, dict] | None:
        self.flush()  # a draft of this turn is read like any other
        row = self.db.execute("SELECT state, draft FROM receipts WHERE id = ?", (receipt_id,)).fetchone()
        return (row[0], orjson.loads(row[1])) if row else None

    def drafts(self, receipt_ids: list[str]) -> dict[str, tuple[str, dict]]:
        """``draft`` for many ids at once (one query per 500): what one access-log batch settles."""
        self.flush()
        out: dict[str, tuple[str, dict]] = {}
        for i in range(0, len(receipt_ids), 500):
            chunk = receipt_ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for rid, state, draft in self.db.execute(
                f"SELECT id, state, draft FROM receipts WHERE id IN ({marks})", chunk
            ).fetchall():
                out[rid] = (state, orjson.loads(draft))
        return out

    def pending(self, older_than: float) -> list[tuple[str, dict]]:
        rows = self.db.execute(
            "SELECT id, draft FROM receipts WHERE state = 'pending' AND created < ? ORDER BY seq",
            (older_than,),
        ).fetchall()
        return [(r[0], json.loads(r[1])) for r in rows]

    def chain_head(self) -> tuple[int, str | None]:
        row = self.db.execute(
            "SELECT chain_seq, hash FROM receipts WHERE chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1"
        ).fetchone()
        return (row[0], row[1]) if row else (0, None)

    def finalize_many(self, rows: list[tuple[str, str, int, str, str, list]]) -> None:
        """rows: (receipt id, state, chain_seq, hash, envelope json, charges) in one transaction."""
        self.flush()
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "UPDATE receipts SET state = ?, chain_seq = ?, hash = ?, envelope = ?, charges = ? "
                "WHERE id = ? AND state = 'pending'",
                [(st, cs, h, env, json.dumps(ch), rid) for rid, st, cs, h, env, ch in rows],
            )

    def envelopes(self, after_chain_seq: int = 0, limit: int = 1000) -> list[dict]:
        rows = self.db.execute(
            "SELECT envelope FROM receipts WHERE chain_seq > ? ORDER BY chain_seq LIMIT ?",
            (after_chain_seq, limit),
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def envelope(self, receipt_id: str) -> dict | None:
        row = self.db.execute(
            "SELECT envelope FROM receipts WHERE id = ? AND envelope IS NOT NULL", (receipt_id,)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def unshipped(self, limit: int = 500) -> list[tuple[int, str]]:
        """(chain_seq, envelope JSON) of finalized receipts the control plane does not have yet."""
        return self.db.execute(
            "SELECT chain_seq, envelope FROM receipts WHERE shipped = 0 AND chain_seq IS NOT NULL "
            "ORDER BY chain_seq LIMIT ?",
            (limit,),
        ).fetchall()

    def mark_shipped(self, chain_seqs: list[int], state: int = 1) -> None:
        self.flush()
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("UPDATE receipts SET shipped = ? WHERE chain_seq = ?", [(state, s) for s in chain_seqs])

    def oldest_pending(self) -> float | None:
        """When the oldest call still pending was decided (epoch seconds), else None."""
        self.flush()
        row = self.db.execute("SELECT min(created) FROM receipts WHERE state = 'pending'").fetchone()
        return row[0] if row else None

    def backlog(self) -> int:
        """Receipts not yet at the control plane, pending ones included."""
        return self.db.execute("SELECT count(*) FROM receipts WHERE shipped = 0").fetchone()[0]

    def counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT state, count(*) FROM receipts GROUP BY state").fetchall())

    def window_charges(self, window_keys: set[str]) -> dict[tuple[str, str], int]:
        """Spend per (budget, window) from finalized receipts plus pending holds."""
        out: dict[tuple[str, str], int] = {}
        for charges, draft, state in self.db.execute(
            "SELECT charges, draft, state FROM receipts WHERE state = 'pending' OR charges IS NOT NULL"
        ):
            items = json.loads(draft).get("holds", []) if state == "pending" else json.loads(charges)
            for budget_id, window_key, amount, *_ in items:
                if window_key in window_keys:
                    out[(budget_id, window_key)] = out.get((budget_id, window_key), 0) + amount
        return out
