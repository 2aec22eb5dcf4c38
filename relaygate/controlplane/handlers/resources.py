"""Workspaces, upstreams and budgets: what the gateways enforce besides policies and keys.

Every change is recorded in the audit feed and wakes the sidecars' bundle
polls (and, for upstreams, the xDS server), so it reaches gateways in seconds.
"""

from __future__ import annotations

import copy

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from relaygate.controlplane import plans as plans_mod
from relaygate.controlplane import schema
from relaygate.controlplane.app import Ctx, json, no_content
from relaygate.controlplane.audit import record
from relaygate.controlplane.db import now_ms
from relaygate.controlplane.errors import ApiError, not_found
from relaygate.controlplane.util import iso
from relaygate.contract import config as config_mod
from relaygate.contract import sigv4

DEFAULT_LIMITS = {"requests_per_second": None, "tokens_per_minute": None, "control_plane_rps": None}


def workspace_json(row) -> dict:
    s = row["settings"] or {}
    return {
        "id": row["id"],
        "display_name": row["display_name"],
        "sovereignty": {"allowed_jurisdictions": [], "allowed_regions": [], **(s.get("sovereignty") or {})},
        "default_max_output_tokens": s.get("default_max_output_tokens"),
        "limits": {**DEFAULT_LIMITS, **(s.get("limits") or {})},
        "relay": {"fallbacks": {}, **(s.get("relay") or {})},
        "model_aliases": s.get("model_aliases") or {},
        "plan": s.get("plan"),
        "created_at": iso(row["created_ms"]),
        "updated_at": iso(row["updated_ms"]),
    }


def _settings_from(body: dict, base: dict | None = None) -> dict:
    s = copy.deepcopy(
        base
        or {
            "sovereignty": {"allowed_jurisdictions": [], "allowed_regions": []},
            "default_max_output_tokens": None,
            "limits": dict(DEFAULT_LIMITS),
            "relay": {"fallbacks": {}},
        }
    )
    if "sovereignty" in body:
        s["sovereignty"] = {"allowed_jurisdictions": [], "allowed_regions": [], **body["sovereignty"]}
    if "default_max_output_tokens" in body:
        s["default_max_output_tokens"] = body["default_max_output_tokens"]
    if "limits" in body:
        s["limits"] = {**DEFAULT_LIMITS, **(s.get("limits") or {}), **body["limits"]}
    if "relay" in body:
        s["relay"] = {"fallbacks": {}, **body["relay"]}
    if "model_aliases" in body:
        s["model_aliases"] = dict(body["model_aliases"])
    if "plan" in body:
        s["plan"] = body["plan"]
    return s


def _check_plan(ctx: Ctx) -> None:
    plan = (ctx.body or {}).get("plan")
    if plan is not None and plan not in ctx.services.settings.plans:
        raise ApiError(
            400,
            "invalid_request",
            f"no plan '{plan}'",
            {"parameter": "plan", "provided": plan, "expected": sorted(ctx.services.settings.plans)},
        )


async def _upstream_specs(c, without: str | None = None) -> list[dict]:
    q = sa.select(schema.upstreams.c.spec).where(schema.upstreams.c.deleted_ms.is_(None))
    if without is not None:
        q = q.where(schema.upstreams.c.name != without)
    return [r[0] for r in (await c.execute(q.order_by(schema.upstreams.c.created_ms))).all()]


def _parsed(specs: list[dict]) -> list:
    return [config_mod.parse_upstream(u, f"upstream '{u.get('name')}'", None) for u in specs]


async def _check_aliases(c, aliases: dict) -> None:
    """A workspace alias must name a model some upstream serves, or a platform alias, when it is set
    (a later catalog change can orphan it: the call then meets 404 model.not_found, as any unknown
    model does), and may not shadow a catalog model's own name."""
    if not aliases:
        return
    ups = _parsed(await _upstream_specs(c))
    models = {m for u in ups for m in u.models}
    known = models | set(config_mod.platform_aliases(ups))
    for alias, target in aliases.items():
        if alias in models:
            raise ApiError(
                400,
                "invalid_request",
                f"'{alias}' is a catalog model's own name; an alias may not shadow it",
                {"parameter": "model_aliases", "provided": alias, "expected": "a name no upstream serves"},
            )
        if target not in known:
            raise ApiError(
                400,
                "invalid_request",
                f"alias '{alias}' names '{target}', which no upstream serves and no platform alias names",
                {"parameter": "model_aliases", "provided": target, "expected": "a catalog model or platform alias"},
            )


async def _changed(ctx: Ctx) -> None:
    await ctx.services.config_changed()


async def list_workspaces(ctx: Ctx):
    q = sa.select(schema.workspaces).where(schema.workspaces.c.deleted_ms.is_(None)).order_by(schema.workspaces.c.id)
    if ctx.principal.role != "admin":
        q = q.where(schema.workspaces.c.id == ctx.principal.workspace)
    async with ctx.db.connect() as c:
        rows = (await c.execute(q)).mappings().all()
    return json({"workspaces": [workspace_json(r) for r in rows]})


async def _workspace(c, wid: str):
    row = (
        (
            await c.execute(
                sa.select(schema.workspaces).where(
                    schema.workspaces.c.id == wid, schema.workspaces.c.deleted_ms.is_(None)
                )
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise not_found("workspace", wid)
    return row


async def get_workspace(ctx: Ctx):
    wid = ctx.params["workspace_id"]
    if ctx.principal.role != "admin" and wid != ctx.principal.workspace:
        raise not_found("workspace", wid)
    async with ctx.db.connect() as c:
        return json(workspace_json(await _workspace(c, wid)))


async def create_workspace(ctx: Ctx):
    b, now = ctx.body, now_ms()
    _check_plan(ctx)
    settings = _settings_from(b)
    try:
        async with ctx.db.begin() as c:
            await _check_aliases(c, settings.get("model_aliases") or {})
            existing = (
                await c.execute(sa.select(schema.workspaces.c.deleted_ms).where(schema.workspaces.c.id == b["id"]))
            ).first()
            if existing is not None:
                raise ApiError(
                    409,
                    "workspace.exists",
                    f"workspace '{b['id']}' exists" + (" (deleted; ids are never reused)" if existing[0] else ""),
                )
            await c.execute(
                schema.workspaces.insert().values(
                    id=b["id"],
                    display_name=b.get("display_name") or b["id"],
                    settings=settings,
                    created_ms=now,
                    updated_ms=now,
                )
            )
            await record(c, "workspace.created", b["id"], ctx.principal.actor, {"settings": settings})
            row = await _workspace(c, b["id"])
    except IntegrityError:
        raise ApiError(409, "workspace.exists", f"workspace '{b['id']}' exists") from None
    await _changed(ctx)
    return json(workspace_json(row), 201)


async def update_workspace(ctx: Ctx):
    wid = ctx.params["workspace_id"]
    _check_plan(ctx)
    async with ctx.db.begin() as c:
        row = await _workspace(c, wid)
        settings = _settings_from(ctx.body, row["settings"])
        if "model_aliases" in ctx.body:
            await _check_aliases(c, settings["model_aliases"])
        values = {"settings": settings, "updated_ms": now_ms()}
        if "display_name" in ctx.body:
            values["display_name"] = ctx.body["display_name"]
        await c.execute(schema.workspaces.update().where(schema.workspaces.c.id == wid).values(**values))
        await record(c, "workspace.updated", wid, ctx.principal.actor, {"settings": settings})
        row = await _workspace(c, wid)
    await _changed(ctx)
    return json(workspace_json(row))


async def get_workspace_limits(ctx: Ctx):
    """Every limit the workspace has and where it comes from: its plan, its own (a contract), or the
    control plane's default; the same resolution the rate limiter, the bundles and the webhook
    quota use (plans.py)."""
    wid = ctx.params["workspace_id"]
    if ctx.principal.role != "admin" and wid != ctx.principal.workspace:
        raise not_found("workspace", wid)
    async with ctx.db.connect() as c:
        row = await _workspace(c, wid)
    s = ctx.services.settings
    return json({"workspace": wid, **plans_mod.effective(row["settings"], s.plans, s.rate_limit_rps)})


async def list_plans(ctx: Ctx):
    return json({"plans": [{"name": n, "limits": v} for n, v in ctx.services.settings.plans.items()]})


async def delete_workspace(ctx: Ctx):
    wid = ctx.params["workspace_id"]
    async with ctx.db.begin() as c:
        await _workspace(c, wid)
        await c.execute(schema.workspaces.update().where(schema.workspaces.c.id == wid).values(deleted_ms=now_ms()))
        await record(c, "workspace.deleted", wid, ctx.principal.actor, {})
    ctx.services.workspace_cache.pop(wid, None)
    await _changed(ctx)
    return no_content()


# -- upstreams -------------------------------------------------------------------------


def upstream_json(row) -> dict:
    spec = dict(row["spec"])
    spec.setdefault("tls", False)
    spec.setdefault("base_path", "/v1")
    return {**spec, "created_at": iso(row["created_ms"]), "updated_at": iso(row["updated_ms"])}


def _check_upstream(spec: dict) -> None:
    try:
        config_mod.parse_upstream(spec, f"upstream '{spec.get('name')}'", None)
    except config_mod.ConfigError as e:
        raise ApiError(400, "invalid_request", str(e)) from None


async def _check_catalog(c, spec: dict) -> None:
    """The catalog with this upstream in it must still resolve every alias to one model (the
    sidecars would refuse the bundle otherwise, and every gateway keep the last one)."""
    try:
        config_mod.platform_aliases(_parsed([*await _upstream_specs(c, without=spec["name"]), spec]))
    except config_mod.ConfigError as e:
        raise ApiError(
            400, "invalid_request", str(e).removeprefix("upstreams.yaml: "), {"parameter": "models"}
        ) from None


async def _credential_known(ctx: Ctx, name: str, provider: str = "") -> None:
    if name not in await ctx.services.secrets.versions():
        raise ApiError(
            400,
            "invalid_request",
            f"no provider credential named '{name}'; add it with POST /v1/fleet/credentials/rotate first",
            {"parameter": "credential", "provided": name, "expected": "a stored credential name"},
        )
    if provider == "bedrock" and sigv4.Credential.parse(await ctx.services.secrets.get(name) or "") is None:
        raise ApiError(
            400,
            "invalid_request",
            f"the credential '{name}' is not an AWS credential: a bedrock upstream needs one holding "
            "ACCESS_KEY_ID:SECRET_ACCESS_KEY (or ACCESS_KEY_ID:SECRET_ACCESS_KEY:SESSION_TOKEN)",
            {"parameter": "credential", "provided": name, "expected": "an AWS credential's name"},
        )


async def list_upstreams(ctx: Ctx):
    async with ctx.db.connect() as c:
        rows = (
            (
                await c.execute(
                    sa.select(schema.upstreams)
                    .where(schema.upstreams.c.deleted_ms.is_(None))
                    .order_by(schema.upstreams.c.created_ms, schema.upstreams.c.name)
                )
            )
            .mappings()
            .all()
        )
    return json({"upstreams": [upstream_json(r) for r in rows]})


async def _upstream(c, name: str):
    row = (
        (
            await c.execute(
                sa.select(schema.upstreams).where(
                    schema.upstreams.c.name == name, schema.upstreams.c.deleted_ms.is_(None)
                )
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise not_found("upstream", name)
    return row


async def get_upstream(ctx: Ctx):
    async with ctx.db.connect() as c:
        return json(upstream_json(await _upstream(c, ctx.params["name"])))


async def create_upstream(ctx: Ctx):
    spec = ctx.body
    _check_upstream(spec)
    await _credential_known(ctx, spec["credential"], spec["provider"])
    now = now_ms()
    async with ctx.db.begin() as c:
        existing = (
            await c.execute(sa.select(schema.upstreams.c.deleted_ms).where(schema.upstreams.c.name == spec["name"]))
        ).first()
        if existing is not None and existing[0] is None:
            raise ApiError(409, "upstream.exists", f"upstream '{spec['name']}' exists")
        await _check_catalog(c, spec)
        if existing is not None:  # re-create a deleted one
            await c.execute(
                schema.upstreams.update()
                .where(schema.upstreams.c.name == spec["name"])
                .values(spec=spec, created_ms=now, updated_ms=now, deleted_ms=None)
            )
        else:
            await c.execute(
                schema.upstreams.insert().values(name=spec["name"], spec=spec, created_ms=now, updated_ms=now)
            )
        await record(c, "upstream.created", None, ctx.principal.actor, {"upstream": spec})
        row = await _upstream(c, spec["name"])
    await _changed(ctx)
    return json(upstream_json(row), 201)


async def update_upstream(ctx: Ctx):
    name, spec = ctx.params["name"], ctx.body
    if spec["name"] != name:
        raise ApiError(
            400,
            "invalid_request",
            "the body's name must match the path",
            {"parameter": "name", "provided": spec["name"], "expected": name},
        )
    _check_upstream(spec)
    await _credential_known(ctx, spec["credential"], spec["provider"])
    async with ctx.db.begin() as c:
        await _upstream(c, name)
        await _check_catalog(c, spec)
        await c.execute(
            schema.upstreams.update().where(schema.upstreams.c.name == name).values(spec=spec, updated_ms=now_ms())
        )
        await record(c, "upstream.updated", None, ctx.principal.actor, {"upstream": spec})
        row = await _upstream(c, name)
    await _changed(ctx)
    return json(upstream_json(row))


async def delete_upstream(ctx: Ctx):
    name = ctx.params["name"]
    async with ctx.db.begin() as c:
        await _upstream(c, name)
        left = (
            await c.execute(
                sa.select(sa.func.count())
                .select_from(schema.upstreams)
                .where(schema.upstreams.c.deleted_ms.is_(None), schema.upstreams.c.name != name)
            )
        ).scalar()
        if left == 0:
            raise ApiError(409, "upstream.last", "a gateway needs at least one upstream; add another first")
        await c.execute(schema.upstreams.update().where(schema.upstreams.c.name == name).values(deleted_ms=now_ms()))
        await record(c, "upstream.deleted", None, ctx.principal.actor, {"upstream": name})
    await _changed(ctx)
    return no_content()


# -- budgets ---------------------------------------------------------------------------


def budget_json(row) -> dict:
    amount = row["limit_amount"]
    return {
        "id": row["id"],
        "workspace": row["workspace_id"],
        "key_id": row["key_id"],
        "unit": row["unit"],
        "window": row["window"],
        "limit": amount if row["unit"] == "tokens" else amount / 1_000_000,
        "created_at": iso(row["created_ms"]),
        "updated_at": iso(row["updated_ms"]),
    }


def _amount(unit: str, limit: float) -> int:
    return int(limit) if unit == "tokens" else int(round(limit * 1_000_000))


def _budget_key(ws: str, bid: str) -> tuple:
    return schema.budgets.c.workspace_id == ws, schema.budgets.c.id == bid


async def _budget(c, ws: str, bid: str):
    row = (
        (
            await c.execute(
                sa.select(schema.budgets).where(
                    schema.budgets.c.id == bid,
                    schema.budgets.c.workspace_id == ws,
                    schema.budgets.c.deleted_ms.is_(None),
                )
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise not_found("budget", bid)
    return row


async def list_budgets(ctx: Ctx):
    async with ctx.db.connect() as c:
        rows = (
            (
                await c.execute(
                    sa.select(schema.budgets)
                    .where(schema.budgets.c.workspace_id == ctx.workspace, schema.budgets.c.deleted_ms.is_(None))
                    .order_by(schema.budgets.c.id)
                )
            )
            .mappings()
            .all()
        )
    return json({"budgets": [budget_json(r) for r in rows]})


async def get_budget(ctx: Ctx):
    async with ctx.db.connect() as c:
        return json(budget_json(await _budget(c, ctx.workspace, ctx.params["budget_id"])))


async def create_budget(ctx: Ctx):
    b, now = ctx.body, now_ms()
    async with ctx.db.begin() as c:
        if b.get("key_id"):
            owner = (
                await c.execute(sa.select(schema.api_keys.c.workspace_id).where(schema.api_keys.c.id == b["key_id"]))
            ).scalar()
            if owner != ctx.workspace:
                raise ApiError(
                    400,
                    "invalid_request",
                    f"no key '{b['key_id']}' in this workspace",
                    {"parameter": "key_id", "provided": b["key_id"], "expected": "a key of the workspace"},
                )
        # Ids are per workspace (migration 0004): only this workspace's own budgets can clash, so a
        # 409 never tells one tenant what another has named its budgets.
        existing = (
            await c.execute(
                sa.select(schema.budgets.c.deleted_ms).where(
                    schema.budgets.c.id == b["id"], schema.budgets.c.workspace_id == ctx.workspace
                )
            )
        ).first()
        if existing is not None and existing[0] is None:
            raise ApiError(409, "budget.exists", f"budget id '{b['id']}' exists in this workspace")
        values = dict(
            key_id=b.get("key_id"),
            unit=b["unit"],
            window=b["window"],
            limit_amount=_amount(b["unit"], b["limit"]),
            created_ms=now,
            updated_ms=now,
            deleted_ms=None,
        )
        if existing is not None:  # re-create one this workspace deleted
            await c.execute(schema.budgets.update().where(*_budget_key(ctx.workspace, b["id"])).values(**values))
        else:
            await c.execute(schema.budgets.insert().values(id=b["id"], workspace_id=ctx.workspace, **values))
        await record(c, "budget.created", ctx.workspace, ctx.principal.actor, {"budget": b})
        row = await _budget(c, ctx.workspace, b["id"])
    await _changed(ctx)
    return json(budget_json(row), 201)


async def _refuse_lifting_own_cap(ctx: Ctx, c, row, new_amount: int | None) -> None:
    """403 when a key (or a session of one) would raise or remove a per-key budget that charges it:
    its own, or one of a key it was minted or rotated from (the lineage the gateway charges).
    budgets:write comes with every standard key and its children, so otherwise a per-key cap
    bound only keys that lacked it. Lowering is allowed; other keys and the admin are not limited."""
    p = ctx.principal
    if p.role == "admin" or not p.key_id or not row["key_id"]:
        return
    if new_amount is not None and new_amount <= row["limit_amount"]:
        return
    scope = (await c.execute(sa.select(schema.api_keys.c.scope).where(schema.api_keys.c.id == p.key_id))).scalar() or {}
    if row["key_id"] in (p.key_id, *(scope.get("lineage") or [])):
        raise ApiError(
            403,
            "auth.forbidden",
            "a key cannot raise or remove a per-key budget that caps it "
            "(its own or a key it descends from); ask another key of the workspace or an admin",
        )


async def update_budget(ctx: Ctx):
    bid = ctx.params["budget_id"]
    async with ctx.db.begin() as c:
        row = await _budget(c, ctx.workspace, bid)
        await _refuse_lifting_own_cap(ctx, c, row, _amount(row["unit"], ctx.body["limit"]))
        await c.execute(
            schema.budgets.update()
            .where(*_budget_key(ctx.workspace, bid))
            .values(limit_amount=_amount(row["unit"], ctx.body["limit"]), updated_ms=now_ms())
        )
        await record(c, "budget.updated", ctx.workspace, ctx.principal.actor, {"budget": bid, **ctx.body})
        row = await _budget(c, ctx.workspace, bid)
    await _changed(ctx)
    return json(budget_json(row))


async def delete_budget(ctx: Ctx):
    bid = ctx.params["budget_id"]
    async with ctx.db.begin() as c:
        await _refuse_lifting_own_cap(ctx, c, await _budget(c, ctx.workspace, bid), None)
        await c.execute(schema.budgets.update().where(*_budget_key(ctx.workspace, bid)).values(deleted_ms=now_ms()))
        await record(c, "budget.deleted", ctx.workspace, ctx.principal.actor, {"budget": bid})
    await _changed(ctx)
    return no_content()


async def list_models(ctx: Ctx):
    async with ctx.db.connect() as c:
        ups = _parsed(await _upstream_specs(c))
        ws_aliases = {}
        if ctx.principal.workspace is not None:
            ws_aliases = ((await _workspace(c, ctx.principal.workspace))["settings"] or {}).get("model_aliases") or {}
    models: dict[str, dict] = {}
    for u in ups:
        for m, p in u.models.items():
            entry = models.setdefault(m, {"id": m, "provider": u.provider, "aliases": set(), "upstreams": []})
            entry["aliases"].update(p.aliases)
            entry["upstreams"].append(
                {
                    "name": u.name,
                    "region": u.region,
                    "jurisdiction": u.jurisdiction,
                    "input_per_1k": p.input_micros_per_1k / 1_000_000,
                    "output_per_1k": p.output_micros_per_1k / 1_000_000,
                    "max_output_tokens": p.max_output_tokens,
                }
            )
    out = [dict(e, aliases=sorted(e["aliases"])) for _, e in sorted(models.items())]
    return json({"models": out, "workspace_aliases": ws_aliases})


HANDLERS = {
    "listModels": list_models,
    "listWorkspaces": list_workspaces,
    "createWorkspace": create_workspace,
    "getWorkspace": get_workspace,
    "updateWorkspace": update_workspace,
    "getWorkspaceLimits": get_workspace_limits,
    "listPlans": list_plans,
    "deleteWorkspace": delete_workspace,
    "listUpstreams": list_upstreams,
    "createUpstream": create_upstream,
    "getUpstream": get_upstream,
    "updateUpstream": update_upstream,
    "deleteUpstream": delete_upstream,
    "listBudgets": list_budgets,
    "createBudget": create_budget,
    "getBudget": get_budget,
    "updateBudget": update_budget,
    "deleteBudget": delete_budget,
}
