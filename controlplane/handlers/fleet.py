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
from evidence.signing import key_id_for, load_public_key
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
    b, now = ctx.body, now_ms()
    try:
        public = load_public_key(b["signing_key"]["public_key"].encode())
    except (ValueError, TypeError):
        raise ApiError(400, "invalid_request", "signing_key.public_key must be an Ed25519 public key in PEM",
                       {"parameter": "signing_key.public_key", "provided": None, "expected": "PEM"}) from None
    key_id = key_id_for(public)
    if key_id != b["signing_key"]["key_id"]:
        raise ApiError(400, "invalid_request", f"signing_key.key_id must be {key_id} for this key")
    iid = b["instance_id"]
    async with ctx.db.begin() as c:
        known = (await c.execute(sa.select(schema.signing_keys).where(
            schema.signing_keys.c.key_id == key_id))).mappings().first()
        if known is not None and known["owner"] != iid:
            raise ApiError(409, "key.conflict", f"signing key {key_id} belongs to another instance")
        existing = (await c.execute(sa.select(schema.instances).where(schema.instances.c.id == iid))).mappings().first()
        values = dict(tenant=b["tenant"], zone=b.get("zone", ""), version=b.get("version", ""),
                      grpc_address=b["grpc_address"], last_seen_ms=now)
        if existing is None:
            await c.execute(schema.instances.insert().values(id=iid, registered_ms=now, posture={}, **values))
        else:
            await c.execute(schema.instances.update().where(schema.instances.c.id == iid).values(**values))
        if known is None:
            # A new key for this sidecar: any key it used before is retired now (custody event).
            retired = [r[0] for r in (await c.execute(sa.select(schema.signing_keys.c.key_id).where(
                schema.signing_keys.c.owner == iid, schema.signing_keys.c.retired_ms.is_(None)))).all()]
            if retired:
                await c.execute(schema.signing_keys.update().where(schema.signing_keys.c.key_id.in_(retired))
                                .values(retired_ms=now))
            await c.execute(schema.signing_keys.insert().values(
                key_id=key_id, owner=iid, purpose="receipts", public_key=b["signing_key"]["public_key"],
                valid_from_ms=now))
            await record(c, "key.registered", None, ctx.principal.actor,
                         {"instance_id": iid, "key_id": key_id, "retired": retired, "attested_by": None})
        if existing is None:
            await record(c, "instance.registered", None, ctx.principal.actor,
                         {"instance_id": iid, "tenant": b["tenant"], "zone": b.get("zone", "")})
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
