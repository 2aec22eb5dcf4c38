"""Sidecar-facing endpoints: registration, heartbeats, receipt ingestion, policy bundles.

Bundles follow OPA's bundle API: ``ETag`` is the revision, ``If-None-Match``
answers 304 when nothing changed, and ``Prefer: wait=N`` holds the request
open (long polling) until a new revision exists or N seconds pass.
"""
from __future__ import annotations

import re

import sqlalchemy as sa
from aiohttp import web

from controlplane import schema
from controlplane.app import Ctx, json
from controlplane.audit import record
from controlplane.db import now_ms
from controlplane.errors import ApiError, not_found
from controlplane.util import iso
from extproc.bundle import CONTENT_TYPE

STALE_AFTER_S = 10.0


def instance_json(row, now: int | None = None) -> dict:
    now = now or now_ms()
    staleness = (now - row["last_seen_ms"]) / 1000
    return {"id": row["id"], "tenant": row["tenant"], "zone": row["zone"], "version": row["version"],
            "grpc_address": row["grpc_address"], "registered_at": iso(row["registered_ms"]),
            "last_seen_at": iso(row["last_seen_ms"]), "staleness_seconds": round(staleness, 3),
            "stale": staleness > STALE_AFTER_S, "posture": row["posture"] or {}}


async def register(ctx: Ctx):
    """A sidecar (re)registers: where it listens, its tenant, and its receipt key with proof of possession."""
    b, now = ctx.body, now_ms()
    iid = b["instance_id"]
    if ctx.principal.subject not in ("unknown", iid):
        raise ApiError(403, "auth.forbidden", "X-Relaygate-Instance and instance_id differ")
    async with ctx.db.begin() as c:
        doc, replaced = await ctx.services.keys.register_sidecar(c, iid, b["signing_key"]["proof"])
        if doc["key_id"] != b["signing_key"]["key_id"]:
            raise ApiError(400, "invalid_request", "signing_key.key_id differs from the proof's key")
        existing = (await c.execute(sa.select(schema.instances).where(schema.instances.c.id == iid))).mappings().first()
        values = dict(tenant=b["tenant"], zone=b.get("zone", ""), version=b.get("version", ""),
                      grpc_address=b["grpc_address"], last_seen_ms=now)
        if existing is None:
            await c.execute(schema.instances.insert().values(id=iid, registered_ms=now, posture={}, **values))
            await record(c, "instance.registered", None, ctx.principal.actor,
                         {"instance_id": iid, "tenant": b["tenant"], "zone": b.get("zone", "")})
        else:
            await c.execute(schema.instances.update().where(schema.instances.c.id == iid).values(**values))
        if replaced:
            await record(c, "key.replaced", None, ctx.principal.actor,
                         {"instance_id": iid, "key_id": doc["key_id"], "retired": replaced})
        row = (await c.execute(sa.select(schema.instances).where(schema.instances.c.id == iid))).mappings().first()
    ctx.services.ingestor._keys.clear()
    await ctx.services.fleet_changed()
    return json(instance_json(row))


async def heartbeat(ctx: Ctx):
    iid = ctx.params["instance_id"]
    async with ctx.db.begin() as c:
        n = (await c.execute(schema.instances.update().where(schema.instances.c.id == iid).values(
            last_seen_ms=now_ms(), posture=ctx.body))).rowcount
    if not n:
        raise not_found("instance", iid)
    commands = await ctx.services.commands_for(iid) if ctx.services.commands_for else []
    return json({"ok": True, "commands": commands})


async def ingest(ctx: Ctx):
    result = await ctx.services.ingestor.ingest(ctx.body["instance_id"], ctx.body["receipts"])
    return json(result)


_WAIT = re.compile(r"wait=(\d+)")


async def bundle(ctx: Ctx):
    tenant = ctx.params["tenant"]
    known = (ctx.params.get("If-None-Match") or "").strip().strip('"')
    m = _WAIT.search(ctx.params.get("Prefer") or "")
    wait = min(int(m[1]), ctx.services.settings.long_poll_max) if m else 0
    bundles = ctx.services.bundles
    if known and wait:
        got = await bundles.wait(tenant, known, wait)
    else:
        got = await bundles.get(tenant)
        if got[1] == known:
            got = None
    if got is None:
        _, rev = await bundles.get(tenant)
        return web.Response(status=304, headers={"ETag": f'"{rev}"'})
    blob, rev = got
    return web.Response(body=blob, headers={"ETag": f'"{rev}"', "Content-Type": CONTENT_TYPE})


async def bundle_key(ctx: Ctx):
    s = ctx.services.bundle_signer
    return json({"key_id": s.key_id, "public_key": s.public_pem().decode()})


HANDLERS = {"registerInstance": register, "heartbeat": heartbeat, "ingestReceipts": ingest, "getBundle": bundle,
            "getBundleKey": bundle_key}
