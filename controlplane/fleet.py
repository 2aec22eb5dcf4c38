"""The fleet: gateway instances, their posture and staleness, per-tenant health.

Posture comes from two places: what each sidecar reports in its heartbeat
(bundle revision, receipts backlog, decision and error rates, counters) and
what the ADS server saw of its Envoy (versions applied, the last NACK with
Envoy's message). An instance whose heartbeat is older than STALE_AFTER
seconds is stale. Health per tenant adds the evidence-emission rate: receipts
per second the control plane received from the tenant's gateways against the
calls per second they served.
"""
from __future__ import annotations

import sqlalchemy as sa

from controlplane import schema
from controlplane.db import now_ms
from controlplane.util import iso

STALE_AFTER_S = 10.0
RATE_WINDOW_S = 30.0


class Fleet:
    def __init__(self, engine, xds) -> None:
        self.engine, self.xds = engine, xds
        # Heartbeats sent while this process was not running could not arrive: staleness
        # counts from whichever is later, the last heartbeat or this process's start.
        self.started_ms = now_ms()
        xds.on_nack = self._record_xds

    async def _record_xds(self, node) -> None:
        async with self.engine.begin() as c:
            await c.execute(schema.instances.update().where(schema.instances.c.id == node.node_id)
                            .values(xds=node.posture()))

    def instance_json(self, row, now: int | None = None) -> dict:
        now = now or now_ms()
        staleness = (now - max(row["last_seen_ms"], self.started_ms)) / 1000
        xds = self.xds.posture(row["id"]) if self.xds is not None else None
        return {"id": row["id"], "tenant": row["tenant"], "zone": row["zone"], "version": row["version"],
                "grpc_address": row["grpc_address"], "registered_at": iso(row["registered_ms"]),
                "last_seen_at": iso(row["last_seen_ms"]), "staleness_seconds": round(staleness, 3),
                "stale": staleness > STALE_AFTER_S, "posture": row["posture"] or {},
                "xds": xds or row.get("xds") or {"connected": False, "applied": {}, "last_nack": None, "nacks": 0}}

    async def instances(self, tenant: str | None = None) -> list[dict]:
        q = sa.select(schema.instances).order_by(schema.instances.c.tenant, schema.instances.c.id)
        if tenant:
            q = q.where(schema.instances.c.tenant == tenant)
        async with self.engine.connect() as c:
            rows = (await c.execute(q)).mappings().all()
        now = now_ms()
        return [self.instance_json(r, now) for r in rows]

    async def receipts_per_s(self, instance_ids: list[str], since_ms: int) -> float:
        if not instance_ids:
            return 0.0
        async with self.engine.connect() as c:
            n = (await c.execute(sa.select(sa.func.count()).select_from(schema.audit_events).where(
                schema.audit_events.c.chain_owner.in_(instance_ids),
                schema.audit_events.c.ingested_ms >= since_ms))).scalar()
        return n / ((now_ms() - since_ms) / 1000)

    async def health(self) -> dict:
        now = now_ms()
        tenants: dict[str, list[dict]] = {}
        for inst in await self.instances():
            tenants.setdefault(inst["tenant"], []).append(inst)
        out = []
        for tenant, insts in sorted(tenants.items()):
            live = [i for i in insts if not i["stale"]]
            calls = sum(sum((i["posture"].get("decisions_per_s") or {}).values()) for i in live)
            errors = sum(i["posture"].get("errors_per_s") or 0 for i in live)
            receipts = await self.receipts_per_s([i["id"] for i in insts], now - int(RATE_WINDOW_S * 1000))
            nacking = [i["id"] for i in insts
                       if i["xds"].get("last_nack") and not i["xds"]["last_nack"].get("resolved_at")]
            status = "healthy"
            if not live:
                status = "down"
            elif len(live) < len(insts) or nacking or (calls and errors / calls > 0.05):
                status = "degraded"
            out.append({
                "tenant": tenant, "status": status, "instances": len(insts), "live": len(live),
                "stale": [i["id"] for i in insts if i["stale"]],
                "bundle_revisions": sorted({i["posture"].get("bundle_revision") for i in live
                                            if i["posture"].get("bundle_revision")}),
                "calls_per_s": round(calls, 3), "errors_per_s": round(errors, 3),
                "error_rate": round(min(errors / calls, 1.0), 4) if calls else None,
                "receipts_per_s": round(receipts, 3),
                "evidence_emission": round(min(receipts / calls, 1.0), 4) if calls else None,
                "receipts_backlog": sum(i["posture"].get("receipts_backlog") or 0 for i in live),
                "nacking": nacking})
        return {"tenants": out, "generated_at": iso(now)}
