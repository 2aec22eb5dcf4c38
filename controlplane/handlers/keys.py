"""API keys (create, list, revoke, rotate) and sessions.

A key's secret is returned once, at creation; the database keeps a salted,
peppered HMAC. Revoking or rotating a key changes the next bundle, which the
sidecars' long polls pick up within seconds.
"""
from __future__ import annotations

import secrets as pysecrets

import sqlalchemy as sa

from controlplane import schema
from controlplane.app import Ctx, json, no_content
from controlplane.audit import record
from controlplane.auth import SESSION_PREFIX
from controlplane.db import now_ms
from controlplane.errors import ApiError, not_found
from controlplane.util import iso
from extproc import config as config_mod
from extproc import keys as keyfmt


def key_json(row) -> dict:
    scope = row["scope"] or {}
    return {"id": row["id"], "workspace": row["workspace_id"], "name": row["name"], "kind": row["kind"],
            "scope": {"endpoints": scope.get("endpoints") or list(config_mod.ENDPOINTS),
                      "models": scope.get("models") or ["*"], "permissions": scope.get("permissions") or ["*"]},
            "created_at": iso(row["created_ms"]), "created_by": row["created_by"],
            "expires_at": iso(row["expires_ms"]), "revoked_at": iso(row["revoked_ms"]),
            "rotated_to": row["rotated_to"]}


async def _key(c, ws: str, key_id: str):
    row = (await c.execute(sa.select(schema.api_keys).where(
        schema.api_keys.c.id == key_id, schema.api_keys.c.workspace_id == ws))).mappings().first()
    if row is None:
        raise not_found("key", key_id)
    return row


async def _insert_key(ctx: Ctx, c, name: str, kind: str, scope: dict, expires_ms: int | None) -> tuple[str, str]:
    pepper = await ctx.services.secrets.pepper()
    token, rec = keyfmt.new_key(pepper)
    await c.execute(schema.api_keys.insert().values(
        id=rec["id"], workspace_id=ctx.workspace, name=name, kind=kind, salt=rec["salt"], hash=rec["hash"],
        scope=scope, created_ms=now_ms(), created_by=ctx.principal.actor, expires_ms=expires_ms))
    return token, rec["id"]


def _grantable(ctx: Ctx, permissions: list[str]) -> None:
    """A caller cannot mint a key with rights it does not hold itself."""
    if ctx.principal.role == "admin":
        return
    wanted = set(permissions)
    if "*" in wanted:
        from controlplane.auth import WORKSPACE_PERMISSIONS
        wanted = set(WORKSPACE_PERMISSIONS)
    missing = sorted(p for p in wanted if not ctx.principal.can(p))
    if missing:
        raise ApiError(403, "auth.forbidden", f"cannot grant permissions the caller lacks: {', '.join(missing)}")


async def list_keys(ctx: Ctx):
    async with ctx.db.connect() as c:
        rows = (await c.execute(sa.select(schema.api_keys).where(schema.api_keys.c.workspace_id == ctx.workspace)
                                .order_by(schema.api_keys.c.created_ms, schema.api_keys.c.id))).mappings().all()
    return json({"keys": [key_json(r) for r in rows]})


async def get_key(ctx: Ctx):
    async with ctx.db.connect() as c:
        return json(key_json(await _key(c, ctx.workspace, ctx.params["key_id"])))


async def create_key(ctx: Ctx):
    b = ctx.body or {}
    kind = b.get("kind", "standard")
    scope_in = b.get("scope") or {}
    scope = {"endpoints": scope_in.get("endpoints") or list(config_mod.ENDPOINTS),
             "models": scope_in.get("models") or ["*"],
             "permissions": scope_in.get("permissions") or (["*"] if kind == "standard" else [])}
    _grantable(ctx, scope["permissions"] if kind == "standard" else [])
    expires = now_ms() + b["expires_in"] * 1000 if b.get("expires_in") else None
    async with ctx.db.begin() as c:
        token, key_id = await _insert_key(ctx, c, b.get("name", ""), kind, scope, expires)
        await record(c, "key.created", ctx.workspace, ctx.principal.actor,
                     {"key_id": key_id, "kind": kind, "scope": scope})
        row = await _key(c, ctx.workspace, key_id)
    await ctx.services.config_changed()
    return json({"key": key_json(row), "secret": token}, 201)


async def revoke_key(ctx: Ctx):
    key_id = ctx.params["key_id"]
    async with ctx.db.begin() as c:
        row = await _key(c, ctx.workspace, key_id)
        if row["revoked_ms"] is None:
            await c.execute(schema.api_keys.update().where(schema.api_keys.c.id == key_id).values(revoked_ms=now_ms()))
            await c.execute(schema.sessions.update().where(
                schema.sessions.c.revoked_ms.is_(None),
                schema.sessions.c.principal["key_id"].as_string() == key_id).values(revoked_ms=now_ms()))
            await record(c, "key.revoked", ctx.workspace, ctx.principal.actor, {"key_id": key_id})
        row = await _key(c, ctx.workspace, key_id)
    await ctx.services.config_changed()
    return json(key_json(row))


async def rotate_key(ctx: Ctx):
    key_id = ctx.params["key_id"]
    grace = (ctx.body or {}).get("grace_seconds", 0)
    async with ctx.db.begin() as c:
        old = await _key(c, ctx.workspace, key_id)
        if old["revoked_ms"] is not None or old["rotated_to"]:
            raise ApiError(409, "key.inactive", f"key '{key_id}' is already revoked or rotated")
        _grantable(ctx, (old["scope"] or {}).get("permissions") or ["*"] if old["kind"] == "standard" else [])
        token, new_id = await _insert_key(ctx, c, old["name"], old["kind"], old["scope"], old["expires_ms"])
        now = now_ms()
        values = {"rotated_to": new_id}
        if grace:
            values["expires_ms"] = min(old["expires_ms"] or now + grace * 1000, now + grace * 1000)
        else:
            values["revoked_ms"] = now
        await c.execute(schema.api_keys.update().where(schema.api_keys.c.id == key_id).values(**values))
        await record(c, "key.rotated", ctx.workspace, ctx.principal.actor,
                     {"key_id": key_id, "new_key_id": new_id, "grace_seconds": grace})
        row = await _key(c, ctx.workspace, new_id)
    await ctx.services.config_changed()
    return json({"key": key_json(row), "secret": token}, 201)


async def create_session(ctx: Ctx):
    p = ctx.principal
    if p.role == "admin":
        raise ApiError(403, "auth.forbidden", "sessions are for workspace principals; the admin token is not one")
    s = ctx.services.settings
    ttl = min((ctx.body or {}).get("ttl_seconds") or s.session_ttl, s.session_max_ttl)
    if p.kind == "session":   # a session cannot outlive the one that made it
        async with ctx.db.connect() as c:
            parent_exp = (await c.execute(sa.select(schema.sessions.c.expires_ms).where(
                schema.sessions.c.id == p.subject))).scalar()
        ttl = min(ttl, max(0, (parent_exp - now_ms()) // 1000))
    pepper = await ctx.services.secrets.pepper()
    sid, secret, salt = keyfmt.random_string(12), keyfmt.random_string(32), pysecrets.token_hex(16)
    expires = now_ms() + ttl * 1000
    principal = {"role": p.role, "permissions": sorted(p.permissions), "key_id": p.key_id, "origin": p.actor}
    async with ctx.db.begin() as c:
        await c.execute(schema.sessions.insert().values(
            id=sid, workspace_id=ctx.workspace, salt=salt, hash=keyfmt.hash_secret(pepper, salt, secret),
            principal=principal, created_ms=now_ms(), expires_ms=expires))
        await record(c, "session.created", ctx.workspace, p.actor, {"session_id": sid, "ttl_seconds": ttl})
    return json({"token": f"{SESSION_PREFIX}{sid}_{secret}", "expires_at": iso(expires), "workspace": ctx.workspace,
                 "role": p.role, "permissions": sorted(p.permissions)}, 201)


async def end_session(ctx: Ctx):
    p = ctx.principal
    if p.kind != "session":
        raise ApiError(400, "invalid_request", "authenticate with the session token to end it")
    async with ctx.db.begin() as c:
        await c.execute(schema.sessions.update().where(schema.sessions.c.id == p.subject).values(revoked_ms=now_ms()))
        await record(c, "session.ended", ctx.workspace, p.actor, {"session_id": p.subject})
    return no_content()


HANDLERS = {"listKeys": list_keys, "createKey": create_key, "getKey": get_key, "deleteKey": revoke_key,
            "revokeKey": revoke_key, "rotateKey": rotate_key, "createSession": create_session,
            "endSession": end_session}

