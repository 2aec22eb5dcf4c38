"""Change feed between control-plane replicas: PostgreSQL ``LISTEN/NOTIFY``.

Every replica keeps state in memory that a change through another replica makes stale: the
workspace cache (and the per-workspace rate it carries), the bundles' generation (long polls),
the xDS generation and pushed resources, the receipt-signing keys the ingestor caches and the
tree-head key. A replica that changes any of it invalidates its own copy and sends one
notification on channel :data:`CHANNEL`; every other replica, listening on a dedicated asyncpg
connection, runs the same local invalidation (never notifying again).

A notification carries no data that is trusted: only the origin replica's id (to skip its own)
and a *kind* naming what to invalidate. The receiver always rereads the database, so a peer that
can NOTIFY on the database (anyone with a database login) can at most cause invalidations and
rebuilds. A payload that does not parse, or names an unknown kind, invalidates everything.

When the listening connection is lost the feed reconnects with backoff and then invalidates
everything (notifications sent while it was away are lost). SQLite: one replica, no feed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("relaygate.controlplane.changefeed")

CHANNEL = "relaygate_changes"
# config: workspaces, keys, upstreams, budgets, secrets, policies (bundles + xDS + workspace cache)
# fleet: sidecars registered or changed (xDS addresses); bundles: sessions (bundle only);
# keys: signing keys registered, rotated or retired (ingestor cache, tree-head key)
KINDS = frozenset({"config", "fleet", "bundles", "keys"})
ALL = KINDS
APP_NAME_PREFIX = "relaygate-cp-listen:"  # pg_stat_activity.application_name of a replica's feed
HEALTH_INTERVAL = 5.0  # seconds between checks that the listening connection is alive
MAX_BACKOFF = 5.0

Apply = Callable[[frozenset[str]], Awaitable[None]]


def payload(origin: str, kind: str) -> str:
    return json.dumps({"origin": origin[:200], "kind": kind}, separators=(",", ":"))


def parse(raw: str, me: str) -> frozenset[str]:
    """What a notification asks this replica to invalidate: empty for its own, every kind for one
    that does not parse or names an unknown kind."""
    try:
        doc = json.loads(raw)
        origin, kind = doc["origin"], doc["kind"]
        if not isinstance(origin, str) or not isinstance(kind, str):
            raise TypeError("origin and kind must be strings")
    except (ValueError, TypeError, KeyError) as e:
        log.warning("change notification not understood (%s); invalidating everything", e)
        return ALL
    if origin == me:
        return frozenset()
    if kind not in KINDS:
        log.warning("change notification of unknown kind %.40r; invalidating everything", kind)
        return ALL
    return frozenset({kind})


def asyncpg_dsn(database_url: str) -> str:
    """``postgresql+asyncpg://...`` or ``postgres://...`` as asyncpg's connect() takes it."""
    scheme, sep, rest = database_url.partition("://")
    return f"postgresql://{rest}" if sep and scheme.startswith("postgres") else database_url


class ChangeFeed:
    def __init__(self, database_url: str, replica_id: str, apply: Apply) -> None:
        self.dsn, self.replica_id, self.apply = asyncpg_dsn(database_url), replica_id, apply
        self.app_name = (APP_NAME_PREFIX + replica_id)[:63]
        self.connected = asyncio.Event()
        self.reconnects = 0
        self._queue: asyncio.Queue[frozenset[str]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._conn = None
        self._lost = asyncio.Event()
        self._stopping = False

    async def start(self) -> None:
        """Connect and LISTEN before returning (changes made after it are seen), then keep it."""
        conn = await self._connect()
        self._tasks.append(asyncio.create_task(self._consume()))
        self._tasks.append(asyncio.create_task(self._run(conn)))

    async def stop(self) -> None:
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()

    async def _connect(self):
        import asyncpg

        conn = await asyncpg.connect(self.dsn, server_settings={"application_name": self.app_name}, timeout=5)
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        await conn.add_listener(CHANNEL, self._on_notify)
        self._conn, self._lost = conn, lost
        self.connected.set()
        return conn

    def _on_notify(self, _conn, _pid, _channel, raw: str) -> None:
        kinds = parse(raw, self.replica_id)
        if kinds:
            self._queue.put_nowait(kinds)

    async def _consume(self) -> None:
        """Apply invalidations one batch at a time: a burst of notifications is one rebuild."""
        while True:
            kinds = set(await self._queue.get())
            while not self._queue.empty():
                kinds |= self._queue.get_nowait()
            try:
                await self.apply(frozenset(kinds))
            except Exception:
                log.exception("applying a change notification (%s) failed", ",".join(sorted(kinds)))

    async def _alive(self, conn) -> bool:
        try:
            await asyncio.wait_for(self._lost.wait(), HEALTH_INTERVAL)
            return False
        except asyncio.TimeoutError:
            pass
        try:  # a half-open connection (a peer that vanished) only shows when used
            await asyncio.wait_for(conn.fetchval("SELECT 1"), HEALTH_INTERVAL)
        except Exception:  # timeout, closed, or any error of a broken connection
            return False
        return True

    async def _run(self, conn) -> None:
        while not self._stopping:
            while await self._alive(conn):
                pass
            self.connected.clear()
            log.warning("change feed: the LISTEN connection to PostgreSQL was lost; reconnecting")
            conn.terminate()
            backoff = 0.1
            while not self._stopping:
                try:
                    conn = await self._connect()
                    break
                except Exception as e:  # refused, timed out, authentication: keep trying
                    log.warning("change feed: reconnect failed (%s); retrying in %.1fs", e, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(MAX_BACKOFF, backoff * 2)
            self.reconnects += 1
            log.warning("change feed: reconnected; invalidating everything (notifications may have been missed)")
            self._queue.put_nowait(ALL)
