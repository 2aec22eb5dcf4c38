"""The fleet: gateway instances, their posture and staleness, per-tenant health.

Posture comes from two places: what each sidecar reports in its heartbeat
(bundle revision, receipts backlog, decision and error rates, counters) and
what the ADS server saw of its Envoy (versions applied, the last NACK with
Envoy's message). An instance whose heartbeat is older than STALE_AFTER
seconds is stale. Health per tenant adds the evidence-emission rate: receipts
the control plane received from the tenant's gateways against the calls they
served. Both are counted over the same window (from the counters in the
heartbeats of the last RATE_WINDOW_S seconds), so a burst of calls does not read
as missing evidence because the two rates were measured over different spans.

Heartbeats may land on any control-plane replica: posture and last-seen are on
the instance's row, and the counters behind the rate window in
``heartbeat_samples`` (the newest sample at or before the window's start and every
one since; older ones are pruned at each heartbeat), so every replica computes the
same health and the same deployment gates.

For /metrics it also keeps each instance's last heartbeat in memory (read from
the database once at start, then moved by registrations and heartbeats *this
replica* received), so the gauge of instances live and stale is computed at scrape
without a query; with several replicas it is per replica (a gateway heartbeating
to another replica reads stale here until this one restarts): use /v1/fleet/health
or /v1/fleet/instances for the fleet-wide view.
"""

from __future__ import annotations

import math

import sqlalchemy as sa

from relaygate.controlplane import schema
from relaygate.controlplane.db import insert_ignore, now_ms
from relaygate.controlplane.util import iso

STALE_AFTER_S = 10.0
RATE_WINDOW_S = 30.0


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _number(v) -> float:
    """A posture figure as reported by a sidecar; anything that is not a finite number counts 0."""
    return float(v) if _is_number(v) else 0.0


class Fleet:
    def __init__(self, engine, xds) -> None:
        self.engine, self.xds = engine, xds
        # Heartbeats sent while this process was not running could not arrive: staleness
        # counts from whichever is later, the last heartbeat or this process's start.
        self.started_ms = now_ms()
        self._last_seen: dict[str, int] = {}  # instance id -> its last heartbeat (ms), for /metrics
        xds.on_nack = self._record_xds

    async def load(self) -> None:
        """Read every instance's last heartbeat: at start, then every lease_ttl/3 (services.py), as
        heartbeats reach whichever replica a gateway talks to; :meth:`seen` adds this replica's own
        at once. Instances no longer in the database leave the gauges."""
        read_from = now_ms()
        async with self.engine.connect() as c:
            rows = (await c.execute(sa.select(schema.instances.c.id, schema.instances.c.last_seen_ms))).all()
        mine = {iid: ms for iid, ms in self._last_seen.items() if ms >= read_from}  # seen while reading
        self._last_seen = {iid: max(ms, self._last_seen.get(iid, 0)) for iid, ms in rows} | mine

    def seen(self, instance_id: str, at_ms: int) -> None:
        """An instance registered or sent a heartbeat at ``at_ms``."""
        self._last_seen[instance_id] = max(at_ms, self._last_seen.get(instance_id, 0))

    def instance_states(self, now: int | None = None) -> dict[str, int]:
        """Instances live and stale, as instance_json judges them (from memory: for /metrics)."""
        now = now or now_ms()
        stale = sum((now - max(ms, self.started_ms)) / 1000 > STALE_AFTER_S for ms in list(self._last_seen.values()))
        return {"live": len(self._last_seen) - stale, "stale": stale}

    def nacking_instances(self) -> int:
        """Gateways connected over ADS whose last NACK no newer accepted version resolved yet."""
        nodes = getattr(self.xds, "nodes", {})
        return sum(
            1 for n in list(nodes.values()) if n.connected and n.last_nack and not n.last_nack.get("resolved_at")
        )

    async def observe(self, c, instance_id: str, posture: dict, at_ms: int) -> None:
        """Store a heartbeat's counters (in the heartbeat's transaction ``c``); keeps the newest
        sample at or before the window's start and every one since."""
        calls, errors = posture.get("calls_total"), posture.get("errors_total")
        if not (_is_number(calls) and _is_number(errors)):
            return
        S = schema.heartbeat_samples
        mine = S.c.instance_id == instance_id
        last = (
            await c.execute(sa.select(S.c.calls, S.c.errors).where(mine).order_by(S.c.at_ms.desc()).limit(1))
        ).first()
        if last is not None and (calls < last[0] or errors < last[1]):
            await c.execute(S.delete().where(mine))  # the sidecar restarted: its counters did too
        await c.execute(
            insert_ignore(self.engine, S).values(instance_id=instance_id, at_ms=at_ms, calls=calls, errors=errors)
        )
        cut = (
            await c.execute(
                sa.select(sa.func.max(S.c.at_ms)).where(mine, S.c.at_ms <= at_ms - int(RATE_WINDOW_S * 1000))
            )
        ).scalar()
        if cut is not None:
            await c.execute(S.delete().where(mine, S.c.at_ms < cut))

    async def _window(self, c, instance_id: str) -> tuple[int, int, float, float] | None:
        """(from ms, to ms, calls, errors) between the oldest and newest kept heartbeat."""
        S = schema.heartbeat_samples
        rows = (
            await c.execute(
                sa.select(S.c.at_ms, S.c.calls, S.c.errors).where(S.c.instance_id == instance_id).order_by(S.c.at_ms)
            )
        ).all()
        if len(rows) < 2 or rows[-1][0] <= rows[0][0]:
            return None
        (t0, c0, e0), (t1, c1, e1) = rows[0], rows[-1]
        return t0, t1, c1 - c0, e1 - e0

    async def _record_xds(self, node) -> None:
        async with self.engine.begin() as c:
            await c.execute(
                schema.instances.update().where(schema.instances.c.id == node.node_id).values(xds=node.posture())
            )

    def instance_json(self, row, now: int | None = None) -> dict:
        now = now or now_ms()
        staleness = (now - max(row["last_seen_ms"], self.started_ms)) / 1000
        xds = self.xds.posture(row["id"]) if self.xds is not None else None
        return {
            "id": row["id"],
            "tenant": row["tenant"],
            "zone": row["zone"],
            "version": row["version"],
            "grpc_address": row["grpc_address"],
            "authz_address": row.get("authz_address"),
            "registered_at": iso(row["registered_ms"]),
            "last_seen_at": iso(row["last_seen_ms"]),
            "staleness_seconds": round(staleness, 3),
            "stale": staleness > STALE_AFTER_S,
            "posture": row["posture"] or {},
            "xds": xds or row.get("xds") or {"connected": False, "applied": {}, "last_nack": None, "nacks": 0},
        }

    async def instances(self, tenant: str | None = None) -> list[dict]:
        q = sa.select(schema.instances).order_by(schema.instances.c.tenant, schema.instances.c.id)
        if tenant:
            q = q.where(schema.instances.c.tenant == tenant)
        async with self.engine.connect() as c:
            rows = (await c.execute(q)).mappings().all()
        now = now_ms()
        return [self.instance_json(r, now) for r in rows]

    async def _receipts(self, c, instance_id: str, since_ms: int, until_ms: int) -> int:
        E = schema.audit_events.c
        return (
            await c.execute(
                sa.select(sa.func.count())
                .select_from(schema.audit_events)
                .where(E.chain_owner == instance_id, E.ingested_ms >= since_ms, E.ingested_ms <= until_ms)
            )
        ).scalar()

    async def _tenant_rates(self, live: list[dict], now: int) -> dict:
        """Calls, errors and receipts of the live gateways over each one's heartbeat window.

        A gateway with fewer than two heartbeats stored has no
        window yet: its rates are the ones it reported itself (receipts: the last
        RATE_WINDOW_S seconds), and it is left out of the two ratios, which are None
        until some gateway of the tenant has been measured.
        """
        calls = errors = receipts = 0.0
        calls_s = errors_s = receipts_s = 0.0
        async with self.engine.connect() as c:
            for inst in live:
                w = await self._window(c, inst["id"])
                if w is None:
                    p = inst["posture"]
                    since = now - int(RATE_WINDOW_S * 1000)
                    decided = p.get("decisions_per_s")
                    calls_s += sum(_number(v) for v in decided.values()) if isinstance(decided, dict) else 0.0
                    errors_s += _number(p.get("errors_per_s"))
                    receipts_s += await self._receipts(c, inst["id"], since, now) / RATE_WINDOW_S
                    continue
                t0, t1, n_calls, n_errors = w
                n_receipts = await self._receipts(c, inst["id"], t0, t1)
                span = (t1 - t0) / 1000
                calls, errors, receipts = calls + n_calls, errors + n_errors, receipts + n_receipts
                calls_s, errors_s, receipts_s = (
                    calls_s + n_calls / span,
                    errors_s + n_errors / span,
                    receipts_s + n_receipts / span,
                )
        # Errors are counted when a call settles, calls when it is decided: cap the ratios at 1.
        return {
            "calls_per_s": round(calls_s, 3),
            "errors_per_s": round(errors_s, 3),
            "error_rate": round(min(errors / calls, 1.0), 4) if calls else None,
            "receipts_per_s": round(receipts_s, 3),
            "evidence_emission": round(min(receipts / calls, 1.0), 4) if calls else None,
        }

    async def health(self) -> dict:
        now = now_ms()
        tenants: dict[str, list[dict]] = {}
        for inst in await self.instances():
            tenants.setdefault(inst["tenant"], []).append(inst)
        out = []
        for tenant, insts in sorted(tenants.items()):
            live = [i for i in insts if not i["stale"]]
            rates = await self._tenant_rates(live, now)
            nacking = [
                i["id"] for i in insts if i["xds"].get("last_nack") and not i["xds"]["last_nack"].get("resolved_at")
            ]
            status = "healthy"
            if not live:
                status = "down"
            elif len(live) < len(insts) or nacking or (rates["error_rate"] or 0) > 0.05:
                status = "degraded"
            out.append(
                {
                    "tenant": tenant,
                    "status": status,
                    "instances": len(insts),
                    "live": len(live),
                    "stale": [i["id"] for i in insts if i["stale"]],
                    "bundle_revisions": sorted(
                        {i["posture"].get("bundle_revision") for i in live if i["posture"].get("bundle_revision")}
                    ),
                    **rates,
                    "receipts_backlog": sum(i["posture"].get("receipts_backlog") or 0 for i in live),
                    "nacking": nacking,
                }
            )
        return {"tenants": out, "generated_at": iso(now)}
