"""Budget thresholds for webhooks (relaygate/controlplane/webhooks.py ``BudgetUse``), on a real
SQLite database: the running use per budget and window gives exactly what a SUM over the
receipts at each event gives, with one SUM per budget and window instead of one per call.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random

import sqlalchemy as sa

from relaygate.controlplane import schema
from relaygate.controlplane.db import create_engine, migrate
from relaygate.controlplane.webhooks import BudgetUse

E = schema.audit_events


def _event(seq: int, rnd: random.Random, now_ms: int, month_start_ms: int) -> dict:
    """A gateway call (or, sometimes, another kind or another workspace) in or before this month."""
    kind = "gateway.call" if rnd.random() < 0.9 else "policy.updated"
    when = rnd.choice([now_ms - rnd.randint(0, 3_600_000), month_start_ms - rnd.randint(1, 86_400_000)])
    return {
        "id": f"ev{seq}",
        "kind": kind,
        "workspace_id": "acme" if rnd.random() < 0.85 else "euro",
        "occurred_ms": when,
        "key_id": rnd.choice(["KEYA", "KEYB"]),
        "code": "ok",
        "input_tokens": rnd.randint(0, 50),
        "output_tokens": rnd.choice([None, rnd.randint(0, 50)]),
        "cost_micros": rnd.choice([None, rnd.randint(0, 900)]),
        "receipt": None,
    }


def test_running_use_equals_a_sum_at_every_event_and_sums_once_per_budget_and_window(tmp_path):
    async def run() -> None:
        engine = create_engine(f"sqlite:///{tmp_path / 'cp.db'}")
        await migrate(engine)
        now = dt.datetime.now(dt.timezone.utc)
        now_ms = int(now.timestamp() * 1000)
        month_start_ms = int(now.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)
        async with engine.begin() as c:
            for ws in ("acme", "euro"):
                await c.execute(schema.workspaces.insert().values(id=ws, settings={}, created_ms=1, updated_ms=1))
            common = {"workspace_id": "acme", "created_ms": 1, "updated_ms": 1}
            await c.execute(
                schema.budgets.insert(),
                [
                    {"id": "tokens-month", "key_id": None, "unit": "tokens", "window": "month", "limit_amount": 4000, **common},
                    {"id": "usd-day", "key_id": None, "unit": "usd", "window": "day", "limit_amount": 20_000, **common},
                    {"id": "keya-month", "key_id": "KEYA", "unit": "tokens", "window": "month", "limit_amount": 900, **common},
                ],
            )  # fmt: skip
            rnd = random.Random(7)
            await c.execute(E.insert(), [_event(i, rnd, now_ms, month_start_ms) for i in range(1, 301)])

        sums = {"running": 0, "fresh": 0}
        counting: list[str] = []  # whose statements are being counted

        def count(conn, cursor, statement, *args) -> None:
            if counting and "sum(" in statement.lower():
                sums[counting[-1]] += 1

        sa.event.listen(engine.sync_engine, "before_cursor_execute", count)
        running = BudgetUse()
        async with engine.connect() as c:
            rows = (await c.execute(sa.select(E).order_by(E.c.seq))).mappings().all()
            for row in rows:  # as the dispatcher follows the feed
                running.passed(row)
                if row["kind"] != "gateway.call" or row["workspace_id"] != "acme":
                    continue
                counting.append("running")
                got = await running.crossings(c, row)
                counting[-1] = "fresh"
                want = await BudgetUse().crossings(c, row)  # a fresh one: a SUM at this event
                counting.clear()
                assert got == want, (row["seq"], got, want)
        # one SUM per (budget, window) for the running use: the three budgets' current windows;
        # a SUM per budget that applies, at every call, for the fresh ones
        assert sums["running"] == 3, sums
        assert sums["fresh"] > 300, sums
        # thresholds were crossed on the way (the test exercises crossings, not only zeros)
        async with engine.connect() as c:
            last = next(r for r in reversed(rows) if r["kind"] == "gateway.call" and r["workspace_id"] == "acme")
            assert {x["data"]["threshold_percent"] for x in await running.crossings(c, last)} >= {50, 80, 100}
        await engine.dispose()

    asyncio.run(run())
