"""The audit feed: newest first, filtered, with a cursor that stays stable while events arrive.

The cursor is the sequence number of the last event on the page; newer events
get higher numbers, so they never shift or repeat what later pages hold.
"""

from __future__ import annotations

import sqlalchemy as sa

from relaygate.controlplane import schema
from relaygate.controlplane.app import Ctx, json
from relaygate.controlplane.audit import event_json, policies_of
from relaygate.controlplane.errors import not_found
from relaygate.controlplane.util import decode_cursor, encode_cursor, parse_time

E, P = schema.audit_events, schema.audit_event_policies


async def list_events(ctx: Ctx):
    p = ctx.params
    q = sa.select(
        E.c.seq,
        E.c.id,
        E.c.kind,
        E.c.workspace_id,
        E.c.occurred_ms,
        E.c.actor,
        E.c.key_id,
        E.c.user_id,
        E.c.model,
        E.c.endpoint,
        E.c.decision,
        E.c.code,
        E.c.status,
        E.c.latency_ms,
        E.c.input_tokens,
        E.c.output_tokens,
        E.c.cost_micros,
        E.c.upstream,
        E.c.provider,
        E.c.sidecar,
        E.c.detail,
    )
    if ctx.workspace is not None:
        q = q.where(E.c.workspace_id == ctx.workspace)
    for param, column in (
        ("user", E.c.user_id),
        ("key_id", E.c.key_id),
        ("model", E.c.model),
        ("decision", E.c.decision),
    ):
        if p.get(param) is not None:
            q = q.where(column == p[param])
    actor = p.get("actor")
    if actor is not None:  # as recorded: "<credential kind>:<subject>"; the admin token is "admin:admin"
        q = q.where(E.c.actor == ("admin:admin" if actor == "admin" else actor))
    if p.get("actor_kind") is not None:
        q = q.where(E.c.actor.startswith(p["actor_kind"] + ":", autoescape=True))
    kind = p.get("kind")
    if kind is not None:  # "deployment.*": every kind under that prefix
        q = q.where(E.c.kind.startswith(kind[:-1], autoescape=True) if kind.endswith(".*") else E.c.kind == kind)
    start, end = parse_time(p.get("from"), "from"), parse_time(p.get("to"), "to")
    if start is not None:
        q = q.where(E.c.occurred_ms >= start)
    if end is not None:
        q = q.where(E.c.occurred_ms < end)
    if p.get("policy"):
        pid, _, version = p["policy"].partition("@")
        sub = sa.select(P.c.event_seq).where(P.c.policy_id == pid)
        if version:
            sub = sub.where(P.c.version == version)
        q = q.where(E.c.seq.in_(sub))
    after = decode_cursor(p.get("cursor"))
    if after is not None:
        q = q.where(E.c.seq < after)
    limit = p["limit"]
    async with ctx.db.connect() as c:
        rows = (await c.execute(q.order_by(E.c.seq.desc()).limit(limit + 1))).mappings().all()
        page = rows[:limit]
        pols = await policies_of(c, [r["seq"] for r in page])
    nxt = encode_cursor(page[-1]["seq"]) if len(rows) > limit else None
    return json({"events": [event_json(r, pols[r["seq"]]) for r in page], "next_cursor": nxt})


async def get_event(ctx: Ctx):
    eid = ctx.params["event_id"]
    q = sa.select(E).where(E.c.id == eid)
    if ctx.workspace is not None:
        q = q.where(E.c.workspace_id == ctx.workspace)
    async with ctx.db.connect() as c:
        row = (await c.execute(q)).mappings().first()
        if row is None:
            raise not_found("event", eid)
        pols = await policies_of(c, [row["seq"]])
        out = {**event_json(row, pols[row["seq"]]), "receipt": row["receipt"]}
        if row["kind"] == "gateway.call":
            out["inclusion_proof"] = await ctx.services.transparency.inclusion_for(c, row["seq"])
    return json(out)


HANDLERS = {"listAuditEvents": list_events, "getAuditEvent": get_event}
