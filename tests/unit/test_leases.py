"""Leases on background work, on a real SQLite database (the PostgreSQL path runs in
tests/system/test_replica_leases.py with three replicas)."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from relaygate.controlplane import schema
from relaygate.controlplane.db import create_engine, migrate
from relaygate.controlplane.leases import LeaseLost, Leases


def test_one_holder_at_a_time_epochs_fence_and_a_lapsed_lease_moves(tmp_path):
    async def run() -> None:
        engine = create_engine(f"sqlite:///{tmp_path / 'cp.db'}")
        await migrate(engine)
        a, b = Leases(engine, "replica-a", ttl=0.5), Leases(engine, "replica-b", ttl=0.5)
        held = await a.claim("deployment", "dep_1")
        assert held is not None and held.epoch == 1
        assert await b.claim("deployment", "dep_1") is None  # held, not lapsed
        assert await b.claimable("deployment", ["dep_1", "dep_2"]) == ["dep_2"]
        async with held.fenced() as c:  # the holder writes while it holds
            await c.execute(sa.text("SELECT 1"))
        await asyncio.sleep(0.7)  # a's lease lapses without renewal (a frozen replica)
        assert await b.claimable("deployment", ["dep_1"]) == ["dep_1"]
        taken = await b.claim("deployment", "dep_1")
        assert taken is not None and taken.epoch == 2
        with pytest.raises(LeaseLost):  # the old holder's next stage write is refused...
            async with held.fenced() as c:
                await c.execute(schema.tenant_pins.delete())
        assert held.lost and not await a.renew(held)  # ...and so is its renewal
        await held.release()  # releasing a lost lease leaves the new holder alone
        async with engine.connect() as c:
            row = (await c.execute(sa.select(schema.work_leases))).mappings().one()
        assert (row["owner"], row["epoch"]) == ("replica-b", 2)
        await taken.release()
        again = await a.claim("deployment", "dep_1")  # released: claimable at once, epoch moves on
        assert again is not None and again.epoch == 3
        # A control plane restarted on the same SQLite file releases what the killed one held.
        restarted = Leases(engine, "replica-a2", ttl=10)
        assert await restarted.claim("deployment", "dep_1") is None
        await restarted.start_alone()
        assert (await restarted.claim("deployment", "dep_1")).epoch == 4
        await engine.dispose()

    asyncio.run(run())


def test_work_is_born_held_by_its_creator_and_finished_work_is_never_claimed_again(tmp_path):
    """The race the three-replica run found: a job committed by replica A was listed by B's scan
    before A claimed it, or a job that had just finished (lease released) was claimed again by a
    scan that listed it while it ran (epoch 2). Both are closed in the statements themselves."""

    async def run() -> None:
        engine = create_engine(f"sqlite:///{tmp_path / 'cp.db'}")
        await migrate(engine)
        a, b = Leases(engine, "replica-a", ttl=30), Leases(engine, "replica-b", ttl=30)
        B = schema.evidence_bundles
        row = dict(status="pending", progress=0.0, params={}, created_by="admin:admin", created_ms=1)
        async with engine.begin() as c:  # the job and its lease commit together
            await c.execute(B.insert().values(id="evb_1", **row))
            held = await a.hold_new(c, "evidence", "evb_1")
        still_open = sa.exists().where(B.c.id == "evb_1", B.c.status.in_(["pending", "running"]))
        assert held.epoch == 1
        assert await b.claimable("evidence", ["evb_1"]) == []  # B's scan sees it held...
        assert await b.claim("evidence", "evb_1", still_open) is None  # ...and cannot take it
        async with held.fenced() as c:  # A finishes it, then releases its lease
            await c.execute(B.update().where(B.c.id == "evb_1").values(status="done"))
        await held.release()
        assert await b.claim("evidence", "evb_1", still_open) is None  # finished: nothing to claim
        async with engine.connect() as c:
            lease = (await c.execute(sa.select(schema.work_leases))).mappings().one()
        assert (lease["owner"], lease["epoch"]) == (None, 1)  # claimed once, ever
        await engine.dispose()

    asyncio.run(run())


def test_run_as_one_runs_periodic_work_on_one_replica_and_moves_it_when_the_holder_goes(tmp_path):
    """Retention and the webhook dispatcher run this way: with two replicas each asking, one runs
    the work; when that one stops cleanly (its leases released) the other starts it, and when the
    holder's lease is taken (it froze past the TTL and another claimed it) its work is cancelled."""

    async def until(cond, what: str, timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not cond():
            assert asyncio.get_running_loop().time() < deadline, what
            await asyncio.sleep(0.02)

    async def run() -> None:
        engine = create_engine(f"sqlite:///{tmp_path / 'cp.db'}")
        await migrate(engine)
        a, b = Leases(engine, "replica-a", ttl=1.5), Leases(engine, "replica-b", ttl=1.5)
        ticks: list[str] = []

        def work(who: str):
            async def loop() -> None:
                while True:
                    ticks.append(who)
                    await asyncio.sleep(0.02)

            return loop

        ta = asyncio.create_task(a.run_as_one("retention", "pruner", work("a")))
        await until(lambda: ticks, "a runs the work")
        tb = asyncio.create_task(b.run_as_one("retention", "pruner", work("b")))
        await asyncio.sleep(1.2)  # b tries at once and every ttl/3 (0.5 s), refused: a renews
        assert set(ticks) == {"a"}, ticks

        ta.cancel()  # a clean stop: a's task ends and the stop releases what a held
        await asyncio.gather(ta, return_exceptions=True)
        await a.release_all()
        assert not a.held
        ticks.clear()
        await until(lambda: "b" in ticks, "b takes the work over")
        assert set(ticks) == {"b"}, ticks

        # b's lease taken from under it (as when b froze past the TTL and another replica claimed it)
        async with engine.begin() as c:
            await c.execute(
                schema.work_leases.update()
                .where(schema.work_leases.c.kind == "retention")
                .values(owner="replica-c", epoch=schema.work_leases.c.epoch + 1, expires_ms=2**62)
            )
        await until(lambda: not b.held, "b's renewal finds the lease lost and stops")
        ticks.clear()
        await asyncio.sleep(0.2)
        assert ticks == [], ticks  # its work was cancelled, and it cannot claim the lease back
        tb.cancel()
        await asyncio.gather(tb, return_exceptions=True)
        await engine.dispose()

    asyncio.run(run())


def test_run_as_one_stops_when_told_to_even_as_its_lease_is_being_lost(tmp_path):
    """A replica told to stop (its run_as_one task cancelled) at the moment its renewal finds the
    lease taken: the CancelledError of the stop was taken for the lease's and swallowed, and the
    stopping replica went on asking for the lease (and would run the work again) instead of ending."""

    async def run() -> None:
        engine = create_engine(f"sqlite:///{tmp_path / 'cp.db'}")
        await migrate(engine)
        a = Leases(engine, "replica-a", ttl=0.6)
        running = asyncio.Event()
        outer: list[asyncio.Task[None]] = []

        async def work() -> None:
            running.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:  # the lease was lost; the stop arrives in the same instant
                outer[0].cancel()
                raise

        outer.append(asyncio.create_task(a.run_as_one("webhooks", "dispatcher", work)))
        await asyncio.wait_for(running.wait(), 10)
        async with engine.begin() as c:  # another replica took the lease
            await c.execute(
                schema.work_leases.update()
                .where(schema.work_leases.c.kind == "webhooks")
                .values(owner="replica-c", epoch=schema.work_leases.c.epoch + 1, expires_ms=2**62)
            )
        done, _ = await asyncio.wait(outer, timeout=3)
        assert done, "run_as_one went on after it was cancelled"
        assert outer[0].cancelled()
        outer[0].cancel()
        await asyncio.gather(*outer, return_exceptions=True)
        await engine.dispose()

    asyncio.run(run())
