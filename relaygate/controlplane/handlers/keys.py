"""API keys (create, list, revoke, rotate) and sessions.

A key's secret is returned once, at creation; the database keeps a salted,
peppered HMAC. Revoking or rotating a key changes the next bundle, which the
sidecars' long polls pick up within seconds.

Every credential made here is checked against its maker's grant with one
function, :func:`relaygate.contract.scope.is_subset`: a key minted by a key or session,
a key rotated by one, and a session all stay within the caller on kind,
permissions, endpoints, models and expiry; a key may rotate or revoke only keys
within its own grant (itself included), and revoking a key revokes the keys
minted from it (not its rotation successor). What the body leaves out is
inherited from the caller (never widened to ``*``); only the admin token,
which has no grant to inherit, mints full keys by default.
"""

from __future__ import annotations

import secrets as pysecrets

import sqlalchemy as sa

from relaygate.controlplane import schema
from relaygate.controlplane.app import Ctx, json, no_content
from relaygate.controlplane.audit import record
from relaygate.controlplane.auth import SESSION_PREFIX
from relaygate.controlplane.db import now_ms
from relaygate.controlplane.errors import ApiError, not_found
from relaygate.controlplane.util import iso
from relaygate.contract import config as config_mod
from relaygate.contract import keys as keyfmt
from relaygate.contract import scope as scopes
from relaygate.contract import sigv4
from relaygate.contract.scope import Scope


def key_json(row) -> dict:
    scope = row["scope"] or {}
    perms = scope.get("permissions")
    shown = (
        list(scopes.READ_ONLY_PERMISSIONS)
        if row["kind"] == "read_only"
        else ["*"]
        if perms is None or "*" in perms
        else list(perms)
    )
    return {
        "id": row["id"],
        "workspace": row["workspace_id"],
        "name": row["name"],
        "kind": row["kind"],
        "scope": {
            "endpoints": scope.get("endpoints") or list(config_mod.ENDPOINTS),
            "models": scope.get("models") or ["*"],
            "permissions": shown,
        },
        "created_at": iso(row["created_ms"]),
        "created_by": row["created_by"],
        "expires_at": iso(row["expires_ms"]),
        "revoked_at": iso(row["revoked_ms"]),
        "rotated_to": row["rotated_to"],
    }


async def _key(c, ws: str, key_id: str):
    row = (
        (
            await c.execute(
                sa.select(schema.api_keys).where(schema.api_keys.c.id == key_id, schema.api_keys.c.workspace_id == ws)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise not_found("key", key_id)
    return row


async def _insert_key(ctx: Ctx, c, name: str, kind: str, scope: dict, expires_ms: int | None) -> tuple[str, str]:
    pepper = await ctx.services.secrets.pepper()
    token, rec = keyfmt.new_key(pepper)
    await c.execute(
        schema.api_keys.insert().values(
            id=rec["id"],
            workspace_id=ctx.workspace,
            name=name,
            kind=kind,
            salt=rec["salt"],
            hash=rec["hash"],
            scope=scope,
            created_ms=now_ms(),
            created_by=ctx.principal.actor,
            expires_ms=expires_ms,
        )
    )
    return token, rec["id"]


def _within_caller(ctx: Ctx, child: Scope, what: str) -> None:
    """403 unless ``child`` is within the caller's own grant (the admin token may grant anything)."""
    p = ctx.principal
    if p.role == "admin":
        return
    parent = p.scope or Scope(kind="read_only", permissions=frozenset(), endpoints=frozenset(), models=())
    over = scopes.excess(child, parent)
    if over:
        raise ApiError(
            403, "auth.forbidden", f"cannot {what} wider than the caller: " + "; ".join(over), details={"exceeds": over}
        )


def _lineage_of(maker) -> list[str]:
    """A child's lineage: its maker, then the maker's own lineage (per-key budgets follow it)."""
    return [maker["id"], *((maker["scope"] or {}).get("lineage") or [])]


def _stored_scope(kind: str, endpoints, models, permissions) -> dict:
    if kind == "read_only":
        permissions = list(scopes.READ_ONLY_PERMISSIONS)
    elif "*" in permissions:
        permissions = ["*"]
    else:  # stored under today's names (the legacy "relay" is gateway:call)
        permissions = sorted({scopes.LEGACY_ALIASES.get(x, x) for x in permissions})
    return {
        "endpoints": sorted(set(endpoints), key=scopes.ENDPOINTS.index),
        "models": list(dict.fromkeys(models)),
        "permissions": permissions,
    }


async def _minted_from(c, ws: str, key) -> list[str]:
    """Live keys descended from ``key`` by minting (children, theirs, ...), not by rotation.

    A minted key is within its maker, expiry included; a revoked maker holds nothing, so what it
    minted (a thief's back door made with a stolen key) is revoked with it. Its rotation successor
    (``rotated_to``) carries the owner's grant on, so that successor and whatever descends through
    it are kept: in a descendant's lineage, the entry just before ``key`` is then the successor.
    """
    successor = key["rotated_to"]
    rows = (
        await c.execute(
            sa.select(schema.api_keys.c.id, schema.api_keys.c.scope).where(
                schema.api_keys.c.workspace_id == ws, schema.api_keys.c.revoked_ms.is_(None)
            )
        )
    ).all()
    out = []
    for kid, scope in rows:
        path = [kid, *((scope or {}).get("lineage") or [])]
        if key["id"] in path[1:]:
            via = path[path.index(key["id"], 1) - 1]
            if via != successor:
                out.append(kid)
    return out


async def list_keys(ctx: Ctx):
    async with ctx.db.connect() as c:
        rows = (
            (
                await c.execute(
                    sa.select(schema.api_keys)
                    .where(schema.api_keys.c.workspace_id == ctx.workspace)
                    .order_by(schema.api_keys.c.created_ms, schema.api_keys.c.id)
                )
            )
            .mappings()
            .all()
        )
    return json({"keys": [key_json(r) for r in rows]})


async def get_key(ctx: Ctx):
    async with ctx.db.connect() as c:
        return json(key_json(await _key(c, ctx.workspace, ctx.params["key_id"])))


async def create_key(ctx: Ctx):
    """Mint a key within the caller's grant; what the body omits is the caller's own."""
    b = ctx.body or {}
    p = ctx.principal
    admin = p.role == "admin"
    parent = None if admin else p.scope
    scope_in = b.get("scope") or {}
    kind = b.get("kind") or (parent.kind if parent else "standard")

    def given(name, inherited):
        return scope_in[name] if scope_in.get(name) is not None else inherited

    if parent is None:
        endpoints, models, perms = (
            given("endpoints", config_mod.ENDPOINTS),
            given("models", ["*"]),
            given("permissions", ["*"]),
        )
    else:
        all_perms = frozenset(scopes.WORKSPACE_PERMISSIONS)
        endpoints = given("endpoints", sorted(parent.endpoints, key=scopes.ENDPOINTS.index))
        models = given("models", list(parent.models))
        perms = given("permissions", ["*"] if parent.permissions >= all_perms else sorted(parent.permissions))
    bad = [m for m in models if not scopes.valid_pattern(m)]
    if bad:
        raise ApiError(
            400,
            "invalid_request",
            f"scope.models: {bad[0]!r} is not a model name or a glob whose only wildcard is '*'",
            {"parameter": "scope/models"},
        )
    scope = _stored_scope(kind, endpoints, models, perms)
    now = now_ms()
    if b.get("expires_in"):
        expires = now + b["expires_in"] * 1000
    else:  # omitted or null: the caller's own expiry (a key that expires cannot mint one that does not)
        expires = parent.expires_ms if parent else None
    _within_caller(ctx, Scope.of(kind, scope, expires), "mint a key")
    async with ctx.db.begin() as c:
        if not admin and p.key_id:  # minted by a key (or a session of one): charged to its budgets too
            maker = await _key(c, ctx.workspace, p.key_id)
            scope["lineage"] = _lineage_of(maker)
        token, key_id = await _insert_key(ctx, c, b.get("name", ""), kind, scope, expires)
        await record(
            c, "key.created", ctx.workspace, ctx.principal.actor, {"key_id": key_id, "kind": kind, "scope": scope}
        )
        row = await _key(c, ctx.workspace, key_id)
    await ctx.services.config_changed()
    return json({"key": key_json(row), "secret": token}, 201)


async def revoke_key(ctx: Ctx):
    key_id = ctx.params["key_id"]
    async with ctx.db.begin() as c:
        row = await _key(c, ctx.workspace, key_id)
        # Only a key within the caller's grant (itself included): a narrow key with keys:write
        # must not be able to switch off the workspace's wider keys.
        _within_caller(ctx, Scope.of(row["kind"], row["scope"], row["expires_ms"]), "revoke a key")
        if row["revoked_ms"] is None:
            now = now_ms()
            minted = await _minted_from(c, ctx.workspace, row)
            for kid in [key_id, *minted]:
                await c.execute(
                    schema.api_keys.update()
                    .where(schema.api_keys.c.id == kid, schema.api_keys.c.revoked_ms.is_(None))
                    .values(revoked_ms=now)
                )
                await c.execute(
                    schema.sessions.update()
                    .where(
                        schema.sessions.c.revoked_ms.is_(None), schema.sessions.c.principal["key_id"].as_string() == kid
                    )
                    .values(revoked_ms=now)
                )
            await record(
                c,
                "key.revoked",
                ctx.workspace,
                ctx.principal.actor,
                {"key_id": key_id, **({"minted_keys_revoked": minted} if minted else {})},
            )
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
        # The new key has the old one's scope: the caller must hold all of it (a narrow key
        # cannot rotate a wide one into a secret it then knows).
        _within_caller(ctx, Scope.of(old["kind"], old["scope"], old["expires_ms"]), "rotate a key")
        # The successor inherits the old key's per-key budgets (and its ancestors').
        new_scope = {**(old["scope"] or {}), "lineage": _lineage_of(old)}
        token, new_id = await _insert_key(ctx, c, old["name"], old["kind"], new_scope, old["expires_ms"])
        now = now_ms()
        values = {"rotated_to": new_id}
        if grace:
            values["expires_ms"] = min(old["expires_ms"] or now + grace * 1000, now + grace * 1000)
        else:
            values["revoked_ms"] = now
        await c.execute(schema.api_keys.update().where(schema.api_keys.c.id == key_id).values(**values))
        # Sessions of the old key end now, grace or not (the auth check refuses them anyway).
        await c.execute(
            schema.sessions.update()
            .where(schema.sessions.c.revoked_ms.is_(None), schema.sessions.c.principal["key_id"].as_string() == key_id)
            .values(revoked_ms=now)
        )
        await record(
            c,
            "key.rotated",
            ctx.workspace,
            ctx.principal.actor,
            {"key_id": key_id, "new_key_id": new_id, "grace_seconds": grace},
        )
        row = await _key(c, ctx.workspace, new_id)
    await ctx.services.config_changed()
    return json({"key": key_json(row), "secret": token}, 201)


async def create_session(ctx: Ctx):
    """A session holds what its maker holds, and lives no longer than its maker's credential.

    Its TTL is capped by the key's (or parent session's, or JWT's) expiry; the principal
    stored with it names the key and the sessions it descends from, which the authenticator
    checks on every use, so the session ends when any of them does.
    """
    p = ctx.principal
    if p.role == "admin":
        raise ApiError(403, "auth.forbidden", "sessions are for workspace principals; the admin token is not one")
    s = ctx.services.settings
    ttl = min((ctx.body or {}).get("ttl_seconds") or s.session_ttl, s.session_max_ttl)
    now = now_ms()
    expires = now + ttl * 1000
    if p.expires_ms is not None:
        expires = min(expires, p.expires_ms)
    if p.scope is not None and p.scope.expires_ms is not None:
        expires = min(expires, p.scope.expires_ms)
    parents = []
    if p.kind == "session":
        async with ctx.db.connect() as c:
            prow = (
                await c.execute(sa.select(schema.sessions.c.principal).where(schema.sessions.c.id == p.subject))
            ).scalar() or {}
        parents = [*(prow.get("sessions") or []), p.subject]
    permissions = frozenset(p.permissions)
    wanted = (ctx.body or {}).get("permissions")
    if wanted is not None:  # narrowing only: a session never holds what its maker does not
        if extra := sorted(set(wanted) - permissions):
            raise ApiError(403, "auth.forbidden", f"the session would exceed its maker: permissions {', '.join(extra)}")
        permissions = frozenset(wanted)
    pepper = await ctx.services.secrets.pepper()
    sid, secret, salt = keyfmt.random_string(12), keyfmt.random_string(32), pysecrets.token_hex(16)
    principal = {
        "role": p.role,
        "permissions": sorted(permissions),
        "key_id": p.key_id,
        "origin": p.actor,
        "sessions": parents,
    }
    if not p.key_id and p.scope is not None:  # made from a JWT: its endpoints and models claims hold on
        principal["endpoints"] = sorted(p.scope.endpoints)
        principal["models"] = list(p.scope.models)
    async with ctx.db.begin() as c:
        await c.execute(
            schema.sessions.insert().values(
                id=sid,
                workspace_id=ctx.workspace,
                salt=salt,
                hash=keyfmt.hash_secret(pepper, salt, secret),
                principal=principal,
                created_ms=now,
                expires_ms=expires,
            )
        )
        await record(
            c,
            "session.created",
            ctx.workspace,
            p.actor,
            {"session_id": sid, "ttl_seconds": max(0, (expires - now) // 1000)},
        )
    # Sessions travel to the gateways in the bundle (relaygate/controlplane/bundles.py live_sessions):
    # one new bundle revision per session started, delivered within the sidecars' long poll.
    await ctx.services.bundles_changed()
    return json(
        {
            "token": f"{SESSION_PREFIX}{sid}_{secret}",
            "expires_at": iso(expires),
            "workspace": ctx.workspace,
            "role": p.role,
            "permissions": sorted(permissions),
        },
        201,
    )


async def end_session(ctx: Ctx):
    p = ctx.principal
    if p.kind != "session":
        raise ApiError(400, "invalid_request", "authenticate with the session token to end it")
    async with ctx.db.begin() as c:
        await c.execute(schema.sessions.update().where(schema.sessions.c.id == p.subject).values(revoked_ms=now_ms()))
        await record(c, "session.ended", ctx.workspace, p.actor, {"session_id": p.subject})
    await ctx.services.bundles_changed()  # the gateways drop it (and the sessions made from it)
    return no_content()


async def own_aws_credentials(ctx: Ctx):
    """The SigV4 access key pair of the key that authenticates this call (Bedrock clients).

    Nothing is stored: the pair is derived from the key's id and salt with the pepper
    (relaygate/contract/sigv4.py), so the sidecars re-derive it; rotating or revoking the key
    changes or ends the pair. Only the key itself gets it: a session or JWT is narrower than a
    key, and the admin token holds none.
    """
    p = ctx.principal
    if p.kind != "key" or p.key_id is None:
        raise ApiError(403, "auth.forbidden", "authenticate with the API key itself (ro_live_...) to get its AWS pair")
    pepper = await ctx.services.secrets.pepper()
    async with ctx.db.begin() as c:
        row = await _key(c, ctx.workspace, p.key_id)
        await record(c, "key.aws_credentials_issued", ctx.workspace, p.actor, {"key_id": p.key_id})
    return json(
        {
            "key_id": row["id"],
            "access_key_id": sigv4.access_key_id(row["id"]),
            "secret_access_key": sigv4.client_secret(pepper, row["id"], row["salt"]),
            "signing_service": sigv4.SERVICE,
            "endpoint_path": f"/v1/{ctx.workspace}/bedrock",
        },
        headers={"Cache-Control": "no-store"},
    )


HANDLERS = {
    "getOwnAwsCredentials": own_aws_credentials,
    "listKeys": list_keys,
    "createKey": create_key,
    "getKey": get_key,
    "deleteKey": revoke_key,
    "revokeKey": revoke_key,
    "rotateKey": rotate_key,
    "createSession": create_session,
    "endSession": end_session,
}
