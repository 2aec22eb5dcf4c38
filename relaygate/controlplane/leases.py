"""Leases in the database: background work (a deployment, an evidence job) run by one replica at a time.

Several control-plane replicas share one database; each unfinished deployment and evidence job
has a row in ``work_leases`` (kind, id, owner, epoch, expires_ms). A replica *claims* it with one
statement that succeeds only when nobody holds it or the holder's lease lapsed, judged on the
database's clock (replicas' clocks may disagree; the database's is the one they share), and
every claim raises the epoch. The holder renews every ``ttl / 3`` and releases on finish or a
clean stop; a replica that crashed or froze loses it ``ttl`` seconds after its last renewal and
another replica's periodic scan takes the work over, resuming at the stage stored last.

Every stage write is *fenced*: it runs in a transaction that first moves the lease's expiry
forward ``WHERE owner = me AND epoch = my epoch``. Zero rows means another replica claimed the
work since (its claim raised the epoch): :class:`LeaseLost` is raised, the transaction rolls
back, and the old holder stops. On PostgreSQL the fence's row lock is held until the stage
commits, so a claim waiting on it sees the renewed expiry and fails; on SQLite (one replica)
writes are serialised anyway and the same code runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relaygate.controlplane import schema
from relaygate.controlplane.db import insert_ignore, is_postgres

log = logging.getLogger("relaygate.controlplane.leases")
L = schema.work_leases


class LeaseLost(Exception):
    """Another replica holds the work now: stop it without writing anything more."""


def db_now_ms(engine: AsyncEngine) -> sa.ColumnElement[int]:
    """The database's clock in milliseconds since the epoch, as an SQL expression."""
    if is_postgres(engine):
        return sa.cast(sa.func.floor(sa.extract("epoch", sa.func.clock_timestamp()) * 1000), sa.BigInteger)
    return sa.cast((sa.func.julianday("now") - 2440587.5) * 86400000.0, sa.BigInteger)


class Lease:
    """One held lease: renewed in the background until released; ``lost`` once another took it."""

    def __init__(self, leases: Leases, kind: str, key: str, epoch: int) -> None:
        self.leases, self.kind, self.key, self.epoch = leases, kind, key, epoch
        self.lost = False
        self._renewer: asyncio.Task[None] | None = None

    def keep(self, on_lost: Callable[[], None]) -> None:
        """Renew every ttl/3 until released; call ``on_lost`` (once) if the lease was taken."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(self.leases.ttl / 3)
                try:
                    held = await self.leases.renew(self)
                except Exception:  # the database is unreachable: the fence decides at the next write
                    log.warning("could not renew the %s lease on %s", self.kind, self.key, exc_info=True)
                    continue
                if not held:
                    self.lost = True
                    log.warning(
                        "lost the %s lease on %s (epoch %d): another replica took it over; stopping",
                        self.kind,
                        self.key,
                        self.epoch,
                    )
                    on_lost()
                    return

        self._renewer = asyncio.create_task(renew())

    @contextlib.asynccontextmanager
    async def fenced(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that commits only while this lease is still ours (else :class:`LeaseLost`)."""
        async with self.leases.engine.begin() as c:
            if not await self.leases.extend(c, self):
                self.lost = True
                raise LeaseLost(f"{self.kind} {self.key}: lease epoch {self.epoch} is no longer held")
            yield c

    async def release(self) -> None:
        self.leases.held.discard(self)
        if self._renewer is not None:
            self._renewer.cancel()
        if not self.lost:
            with contextlib.suppress(Exception):
                await self.leases.release(self)


class Leases:
    def __init__(self, engine: AsyncEngine, owner: str, ttl: float) -> None:
        self.engine, self.owner, self.ttl = engine, owner, ttl
        self.held: set[Lease] = set()  # released by release_all() on a clean stop

    def _until(self) -> sa.ColumnElement[int]:
        return db_now_ms(self.engine) + int(self.ttl * 1000)

    async def hold_new(self, c: AsyncConnection, kind: str, key: str) -> Lease:
        """Within ``c``'s transaction, the one that creates the work: its lease, held here from the
        start (epoch 1). Work is born owned by the replica that created it, so another replica's
        scan cannot claim it between the work's commit and its creator's claim."""
        await c.execute(L.insert().values(kind=kind, id=key, owner=self.owner, epoch=1, expires_ms=self._until()))
        return self._holding(Lease(self, kind, key, 1))

    def _holding(self, lease: Lease) -> Lease:
        self.held.add(lease)
        return lease

    async def claim(self, kind: str, key: str, still_open: sa.ColumnElement[bool] = sa.true()) -> Lease | None:
        """Take the work if nobody holds it or its holder's lease lapsed, and ``still_open`` (an SQL
        condition on the work's own row, for work that ends) holds; None otherwise.

        ``still_open`` is part of the claiming statement: a scan lists unfinished work before it
        claims, and the work may finish (and its lease be released) in between. The finishing write
        commits while its lease is still held, so the claim either waits on that lease row or sees
        the finished status: finished work is never claimed again (nor its epoch raised)."""
        async with self.engine.begin() as c:
            await c.execute(insert_ignore(self.engine, L).values(kind=kind, id=key, owner=None, epoch=0, expires_ms=0))
        try:
            return await self._claim(kind, key, still_open)
        except DBAPIError:  # its row is locked by a holder's stage write that did not end in time
            log.info("%s %s: its lease row is busy; not claimed this time", kind, key)
            return None

    async def _claim(self, kind: str, key: str, still_open: sa.ColumnElement[bool]) -> Lease | None:
        async with self.engine.begin() as c:
            if is_postgres(self.engine):  # a holder frozen mid-transaction must not stall the claimer
                await c.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
            n = (
                await c.execute(
                    L.update()
                    .where(
                        L.c.kind == kind,
                        L.c.id == key,
                        sa.or_(L.c.owner.is_(None), L.c.expires_ms < db_now_ms(self.engine)),
                        still_open,
                    )
                    .values(owner=self.owner, epoch=L.c.epoch + 1, expires_ms=self._until())
                )
            ).rowcount
            if not n:
                return None
            epoch = (await c.execute(sa.select(L.c.epoch).where(L.c.kind == kind, L.c.id == key))).scalar_one()
        return self._holding(Lease(self, kind, key, epoch))

    def _mine(self, lease: Lease) -> list[sa.ColumnElement[bool]]:
        return [L.c.kind == lease.kind, L.c.id == lease.key, L.c.owner == self.owner, L.c.epoch == lease.epoch]

    async def extend(self, c: AsyncConnection, lease: Lease) -> bool:
        """Within ``c``'s transaction: move the expiry on, if the lease is still ours."""
        return bool((await c.execute(L.update().where(*self._mine(lease)).values(expires_ms=self._until()))).rowcount)

    async def renew(self, lease: Lease) -> bool:
        async with self.engine.begin() as c:
            return await self.extend(c, lease)

    async def release(self, lease: Lease) -> None:
        async with self.engine.begin() as c:
            await c.execute(L.update().where(*self._mine(lease)).values(owner=None, expires_ms=0))

    async def release_all(self) -> None:
        """A clean stop: every lease still held here goes, so another replica takes the work at once."""
        for lease in list(self.held):
            await lease.release()

    async def run_as_one(self, kind: str, key: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` (a loop that does not return) on one replica at a time: take the lease
        ``kind``/``key`` when it is free (tried every ttl/3), run ``work`` while it is held, cancel
        it when the lease is lost, and go back to waiting. A replica that dies or freezes loses the
        lease after ``ttl``, and another replica's ``run_as_one`` starts the work there."""
        while True:
            lease = await self.claim(kind, key)
            if lease is None:
                await asyncio.sleep(self.ttl / 3)
                continue
            task = asyncio.create_task(work())
            lease.keep(task.cancel)
            try:
                await task
            except asyncio.CancelledError:
                # This replica is stopping (run_as_one itself was cancelled), not only losing the
                # lease: both can come at once, and the stop must not be swallowed as the loss.
                me = asyncio.current_task()
                if not lease.lost or (me is not None and me.cancelling()):
                    raise
            except Exception:
                log.exception("%s %s stopped; trying again", kind, key)
                await asyncio.sleep(self.ttl / 3)
            finally:
                task.cancel()
                await lease.release()

    async def start_alone(self) -> None:
        """On SQLite, where one control plane uses the database: leases of other owners are a
        previous process's (killed before it released them), so they are released now and its work
        resumes at once instead of after the TTL. PostgreSQL replicas wait for the lease to lapse."""
        if is_postgres(self.engine):
            return
        async with self.engine.begin() as c:
            await c.execute(L.update().where(L.c.owner != self.owner).values(owner=None, expires_ms=0))

    async def claimable(self, kind: str, keys: list[str]) -> list[str]:
        """Those of ``keys`` nobody holds now (no lease yet, released, or lapsed)."""
        if not keys:
            return []
        async with self.engine.connect() as c:
            held = {
                r[0]
                for r in (
                    await c.execute(
                        sa.select(L.c.id).where(
                            L.c.kind == kind,
                            L.c.id.in_(keys),
                            L.c.owner.is_not(None),
                            L.c.expires_ms >= db_now_ms(self.engine),
                        )
                    )
                ).all()
            }
        return [k for k in keys if k not in held]


async def scan_forever(interval: float, scans: list[Callable[[], Awaitable[None]]]) -> None:
    """Every ``interval`` seconds, run each of ``scans``: those that look for unfinished work nobody
    holds and take it over, and those that reread what other replicas change (shared gauges)."""
    while True:
        await asyncio.sleep(interval)
        for scan in scans:
            try:
                await scan()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("scanning for unowned work failed", exc_info=True)
