"""Log retention by plan: request logs and audit events older than a workspace's retention go.

A workspace's ``log_retention_days`` comes from its plan (plans.py: free 7, team 30, enterprise
90; none: kept). :func:`prune` runs every ``retention_interval`` seconds on the replica holding
the retention lease (it is also idempotent, each statement one transaction, so an old holder
finishing a run as another starts does no harm):

- a control-plane event past retention is deleted (with its policy index rows), and so are the
  workspace's ``/api/relay`` records (their metadata) and webhook delivery log entries past it;
- a gateway call's receipt past retention is *pruned*, not deleted, when it is a leaf of the
  Merkle log: its row stays as ``gateway.call.pruned`` with only its id, workspace and time, so its
  leaf (and every checkpoint over it) is untouched and the inclusion proof of that receipt id is
  still served; the receipt body, user, model, key, tokens and cost are gone, and it leaves the
  request logs, usage, the feed's filters and evidence bundles. Whoever kept the signed receipt can
  still prove it was logged (docs/receipts.md, "Retention"); the control plane can no longer show
  it. A receipt not yet a leaf (queued for the Merkle writer) waits for the next run.

``now_ms`` is a parameter so tests (and an operator checking what a run would remove) choose the
clock.
"""

from __future__ import annotations

import asyncio
import logging

import sqlalchemy as sa

from relaygate.controlplane import plans, schema
from relaygate.controlplane.db import now_ms as wall_ms

log = logging.getLogger("relaygate.controlplane.retention")
E, P = schema.audit_events, schema.audit_event_policies
DAY_MS = 86_400_000
PRUNED = "gateway.call.pruned"


async def prune(engine, plan_defs: dict, default_rps: float, now_ms: int) -> dict[str, dict[str, int]]:
    """Apply every workspace's retention as of ``now_ms``; returns what went, per workspace."""
    async with engine.connect() as c:
        workspaces = (await c.execute(sa.select(schema.workspaces.c.id, schema.workspaces.c.settings))).all()
    out: dict[str, dict[str, int]] = {}
    for wid, settings in workspaces:
        days = plans.effective(settings, plan_defs, default_rps)["limits"].get("log_retention_days")
        if not days:
            continue
        cutoff = now_ms - int(days * DAY_MS)
        old = sa.and_(E.c.workspace_id == wid, E.c.occurred_ms < cutoff)
        leaf = sa.exists().where(schema.merkle_leaves.c.event_seq == E.c.seq)
        queued = sa.exists().where(schema.merkle_queue.c.event_seq == E.c.seq)
        async with engine.begin() as c:
            gone_events = sa.select(E.c.seq).where(old, ~E.c.kind.startswith("gateway.call"), ~leaf, ~queued)
            await c.execute(P.delete().where(P.c.event_seq.in_(gone_events)))
            deleted = (await c.execute(E.delete().where(E.c.seq.in_(gone_events.scalar_subquery())))).rowcount
            receipts = sa.select(E.c.seq).where(old, E.c.kind == "gateway.call", leaf)
            await c.execute(P.delete().where(P.c.event_seq.in_(receipts)))
            pruned = (
                await c.execute(
                    E.update()
                    .where(E.c.seq.in_(receipts.scalar_subquery()))
                    .values(
                        kind=PRUNED,
                        receipt=None,
                        detail={"pruned_at_ms": now_ms, "retention_days": days},
                        actor=None,
                        key_id=None,
                        user_id=None,
                        model=None,
                        endpoint=None,
                        decision=None,
                        code=None,
                        status=None,
                        latency_ms=None,
                        input_tokens=None,
                        output_tokens=None,
                        cost_micros=None,
                        upstream=None,
                        provider=None,
                    )
                )
            ).rowcount
            RC, RA, WD = schema.relay_calls, schema.relay_attempts, schema.webhook_deliveries
            old_relays = sa.select(RC.c.id).where(RC.c.workspace_id == wid, RC.c.created_ms < cutoff)
            await c.execute(RA.delete().where(RA.c.relay_id.in_(old_relays)))
            relays = (await c.execute(RC.delete().where(RC.c.id.in_(old_relays.scalar_subquery())))).rowcount
            logs = (
                await c.execute(
                    WD.delete().where(WD.c.workspace_id == wid, WD.c.created_ms < cutoff, WD.c.status != "pending")
                )
            ).rowcount
            deleted += relays + logs
        if deleted or pruned:
            out[wid] = {"events_deleted": deleted, "receipts_pruned": pruned}
            log.info("retention (%s days) in %s: %d events deleted, %d receipts pruned", days, wid, deleted, pruned)
    return out


async def run(services, interval: float) -> None:
    """Prune every ``interval`` seconds, the first time shortly after start, on the one replica
    holding the retention lease (leases.py run_as_one): replicas do not each scan every workspace."""

    async def every_interval() -> None:
        await asyncio.sleep(min(interval, 30.0))
        while True:
            try:
                s = services.settings
                await prune(services.engine, s.plans, s.rate_limit_rps, wall_ms())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("retention run failed; next in %ss", interval)
            await asyncio.sleep(interval)

    await services.leases.run_as_one("retention", "pruner", every_interval)
