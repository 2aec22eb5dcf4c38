"""Policies: list, create from YAML, publish versions, soft-delete, dry run.

A document is checked three ways before it is stored: its YAML shape, its
Rego alone (errors carry line and column within the YAML body), and the whole
bundle it would join, compiled by the data plane's engine. So invalid YAML or
Rego is refused here and never reaches a sidecar. Publishing appends a
version and moves ``current_version`` in one transaction; old versions stay
readable, and receipts keep citing the version that decided them.
"""

from __future__ import annotations

import orjson
import sqlalchemy as sa

from relaygate.controlplane import schema
from relaygate.controlplane.app import Ctx, json, no_content
from relaygate.controlplane.audit import record
from relaygate.controlplane.bundles import on_policy_thread
from relaygate.controlplane.db import now_ms
from relaygate.controlplane.errors import ApiError, not_found
from relaygate.controlplane.policystore import digest, parse_cached, parse_off_loop, warm
from relaygate.controlplane.util import iso, new_id
from relaygate.contract import config as config_mod
from relaygate.decision.admission import POLICY_INPUT_VERSION, Verdict
from relaygate.decision.ledger import InMemoryLedger
from relaygate.decision.policy_engine import PolicyError
from relaygate.decision.snapshot import admission_from_bundle
from relaygate.contract.bundle import Bundle
from relaygate.contract.safeyaml import MAX_SOURCE_BYTES
from relaygate.decision import gate
from relaygate.decision.wire import Route
from relaygate.decision.policy_sandbox import default_sandbox
from relaygate.decision.workspace_policy import ActivePolicy, PolicyDocumentError, check_rego_sandboxed


def _invalid(e: PolicyDocumentError) -> ApiError:
    return ApiError(400, "policy.invalid", e.message, e.details())


def policy_json(row, version_row) -> dict:
    platform = row["workspace_id"] is None
    out = {
        "id": row["id"],
        "workspace": row["workspace_id"],
        "name": row["name"],
        "description": "",
        "current_version": row["current_version"],
        "effect": None,
        "source": version_row["source"],
        "digest": version_row["digest"],
        "label": version_row["label"],
        "created_at": iso(row["created_ms"]),
        "updated_at": iso(row["updated_ms"]),
        "deleted_at": iso(row["deleted_ms"]),
        "platform": platform,
    }
    if not platform:
        try:
            doc = parse_cached(version_row["source"])  # warmed off the event loop by the caller
            out.update(name=doc.name, description=doc.description, effect={"status": doc.status, "code": doc.code})
        except PolicyDocumentError:
            pass
    else:
        out["effect"] = {"status": None, "code": None}
    return out


def version_json(v) -> dict:
    return {
        "policy_id": v["policy_id"],
        "version": v["version"],
        "label": v["label"],
        "source": v["source"],
        "digest": v["digest"],
        "created_at": iso(v["created_ms"]),
        "created_by": v["created_by"],
    }


async def _policy(c, ctx: Ctx, pid: str, writable: bool = False, include_deleted: bool = False):
    row = (await c.execute(sa.select(schema.policies).where(schema.policies.c.id == pid))).mappings().first()
    if (
        row is None
        or (row["workspace_id"] not in (None, ctx.workspace))
        or (row["deleted_ms"] is not None and not include_deleted)
    ):
        raise not_found("policy", pid)
    if writable and row["workspace_id"] is None:
        raise ApiError(403, "auth.forbidden", "platform policies change in the repository's policies/ directory")
    return row


async def _version(c, pid: str, version: int):
    v = (
        (
            await c.execute(
                sa.select(schema.policy_versions).where(
                    schema.policy_versions.c.policy_id == pid, schema.policy_versions.c.version == version
                )
            )
        )
        .mappings()
        .first()
    )
    if v is None:
        raise not_found("policy version", f"{pid}@{version}")
    return v


def _size_check(text: str) -> None:
    """413 for a document over the cap, before any parsing (the cap bounds YAML parse time)."""
    size = len(text.encode())
    if size > MAX_SOURCE_BYTES:
        raise ApiError(
            413,
            "policy.too_large",
            f"the policy document is {size} bytes; the limit is {MAX_SOURCE_BYTES} bytes (256 KiB)",
            {"parameter": "body", "provided": size, "expected": f"at most {MAX_SOURCE_BYTES} bytes"},
        )


async def _check(ctx: Ctx, pid: str, text: str, version: int) -> None:
    """Shape, Rego alone, then the whole bundle it would join; raises 400 with line/column."""
    try:
        doc = await parse_off_loop(text)
        # YAML escapes ("\0") make a NUL the raw text never held; the name is stored in a text
        # column PostgreSQL refuses it in (a 500), so it is a 400 here.
        for field_name in ("name", "description"):
            if "\x00" in getattr(doc, field_name):
                raise ApiError(
                    400,
                    "policy.invalid",
                    f"'{field_name}' holds a NUL character (U+0000)",
                    {"source": "yaml", "line": None, "column": None},
                )
        # Evaluated in the policy sandbox under its deadline: author Rego never runs in this process.
        await check_rego_sandboxed(pid, doc, default_sandbox())
    except PolicyDocumentError as e:
        raise _invalid(e) from None
    sources = await ctx.services.bundles.sources("default", ActivePolicy(ctx.workspace, pid, version, doc))
    try:
        await on_policy_thread(ctx.services.bundles.check, *sources)
    except (PolicyError, config_mod.ConfigError) as e:
        raise ApiError(
            400,
            "policy.invalid",
            f"the policy set would not compile with this policy: {e}",
            {"source": "bundle", "line": None, "column": None},
        ) from None


async def list_policies(ctx: Ctx):
    include_deleted = ctx.params.get("include_deleted", False)
    q = sa.select(schema.policies).where(
        sa.or_(schema.policies.c.workspace_id == ctx.workspace, schema.policies.c.workspace_id.is_(None))
    )
    if not include_deleted:
        q = q.where(schema.policies.c.deleted_ms.is_(None))
    async with ctx.db.connect() as c:
        rows = (
            (
                await c.execute(
                    q.order_by(
                        schema.policies.c.workspace_id.is_(None).desc(),
                        schema.policies.c.created_ms,
                        schema.policies.c.id,
                    )
                )
            )
            .mappings()
            .all()
        )
        versions = [await _version(c, r["id"], r["current_version"]) for r in rows]
    await warm([v["source"] for r, v in zip(rows, versions) if r["workspace_id"] is not None])
    out = [policy_json(r, v) for r, v in zip(rows, versions)]
    return json({"policies": out})


async def get_policy(ctx: Ctx):
    async with ctx.db.connect() as c:
        row = await _policy(c, ctx, ctx.params["policy_id"])
        version = await _version(c, row["id"], row["current_version"])
    await warm([version["source"]] if row["workspace_id"] is not None else [])
    return json(policy_json(row, version))


async def create_policy(ctx: Ctx):
    text = ctx.body
    pid = new_id("pol_", 12)
    _size_check(text)
    await _check(ctx, pid, text, 1)
    doc = parse_cached(text)
    now = now_ms()
    async with ctx.db.begin() as c:
        dup = (
            await c.execute(
                sa.select(schema.policies.c.id).where(
                    schema.policies.c.workspace_id == ctx.workspace,
                    schema.policies.c.name == doc.name,
                    schema.policies.c.deleted_ms.is_(None),
                )
            )
        ).first()
        if dup:
            raise ApiError(
                409,
                "policy.exists",
                f"policy '{doc.name}' exists in this workspace ({dup[0]}); update it with PUT /v1/policies/{dup[0]}",
            )
        await c.execute(
            schema.policies.insert().values(
                id=pid, workspace_id=ctx.workspace, name=doc.name, current_version=1, created_ms=now, updated_ms=now
            )
        )
        await c.execute(
            schema.policy_versions.insert().values(
                policy_id=pid,
                version=1,
                label="1",
                source=text,
                digest=digest(text),
                created_ms=now,
                created_by=ctx.principal.actor,
            )
        )
        await record(
            c,
            "policy.created",
            ctx.workspace,
            ctx.principal.actor,
            {"policy_id": pid, "version": 1, "name": doc.name},
            policies=(f"{pid}@1",),
        )
        row = await _policy(c, ctx, pid)
        out = policy_json(row, await _version(c, pid, 1))
    await ctx.services.config_changed()
    return json(out, 201)


async def update_policy(ctx: Ctx):
    pid, text = ctx.params["policy_id"], ctx.body
    activate = ctx.params.get("activate", True)
    _size_check(text)
    async with ctx.db.connect() as c:
        row = await _policy(c, ctx, pid, writable=True)
        latest = (
            await c.execute(
                sa.select(sa.func.max(schema.policy_versions.c.version)).where(
                    schema.policy_versions.c.policy_id == pid
                )
            )
        ).scalar()
    await _check(ctx, pid, text, latest + 1)
    doc = parse_cached(text)
    async with ctx.db.begin() as c:
        # Re-read under the write transaction: two concurrent updates get two distinct versions.
        latest = (
            await c.execute(
                sa.select(sa.func.max(schema.policy_versions.c.version)).where(
                    schema.policy_versions.c.policy_id == pid
                )
            )
        ).scalar()
        version, now = latest + 1, now_ms()
        await c.execute(
            schema.policy_versions.insert().values(
                policy_id=pid,
                version=version,
                label=str(version),
                source=text,
                digest=digest(text),
                created_ms=now,
                created_by=ctx.principal.actor,
            )
        )
        values = {"updated_ms": now, "name": doc.name}
        if activate:
            values["current_version"] = version
        await c.execute(schema.policies.update().where(schema.policies.c.id == pid).values(**values))
        await record(
            c,
            "policy.updated" if activate else "policy.version_added",
            ctx.workspace,
            ctx.principal.actor,
            {"policy_id": pid, "version": version, "activated": activate, "previous_version": row["current_version"]},
            policies=(f"{pid}@{version}",),
        )
        row = await _policy(c, ctx, pid)
        out = policy_json(row, await _version(c, pid, row["current_version"]))
    await ctx.services.config_changed()
    return json(out)


async def delete_policy(ctx: Ctx):
    pid = ctx.params["policy_id"]
    async with ctx.db.begin() as c:
        row = await _policy(c, ctx, pid, writable=True)
        await c.execute(schema.policies.update().where(schema.policies.c.id == pid).values(deleted_ms=now_ms()))
        await record(
            c,
            "policy.deleted",
            ctx.workspace,
            ctx.principal.actor,
            {"policy_id": pid, "version": row["current_version"]},
        )
    await ctx.services.config_changed()
    return no_content()


async def list_versions(ctx: Ctx):
    pid = ctx.params["policy_id"]
    async with ctx.db.connect() as c:
        await _policy(c, ctx, pid, include_deleted=True)
        rows = (
            (
                await c.execute(
                    sa.select(schema.policy_versions)
                    .where(schema.policy_versions.c.policy_id == pid)
                    .order_by(schema.policy_versions.c.version)
                )
            )
            .mappings()
            .all()
        )
    return json({"versions": [version_json(v) for v in rows]})


async def get_version(ctx: Ctx):
    pid = ctx.params["policy_id"]
    async with ctx.db.connect() as c:
        await _policy(c, ctx, pid, include_deleted=True)
        return json(version_json(await _version(c, pid, ctx.params["version"])))


def _prepare(modules, data, docs, secrets, workspace: str, body: dict):
    """Build the snapshot a sidecar would and the input of one call; runs on the policy thread."""
    adm = admission_from_bundle(
        Bundle("dryrun", modules, data, docs, secrets, {}), InMemoryLedger(), sandbox=default_sandbox()
    )
    if workspace not in adm.config.workspaces:
        raise ApiError(404, "workspace.not_found", f"no workspace '{workspace}'")
    if body.get("input") is not None:
        doc = dict(body["input"])
        for name in ("workspace", "principal"):  # merged with what the server sets below: objects only
            if not isinstance(doc.get(name) or {}, dict):
                raise ApiError(
                    400,
                    "invalid_request",
                    f"input/{name}: must be an object",
                    {"parameter": f"input/{name}", "provided": None, "expected": "object"},
                )
        # A dry run sees only its own workspace's policies, whatever the example says.
        ws = adm.config.workspaces[workspace]
        doc["workspace"] = {**(doc.get("workspace") or {}), "id": workspace}
        doc["workspace"].setdefault("allowed_jurisdictions", list(ws.allowed_jurisdictions))
        doc["workspace"].setdefault("allowed_regions", list(ws.allowed_regions))
        doc["principal"] = {**(doc.get("principal") or {}), "workspace": workspace}
        doc.setdefault("version", POLICY_INPUT_VERSION)
        doc.pop("workspace_policies", None)  # computed by the sandbox, never taken from the caller
    else:
        req = body["request"]
        key_id = req.get("key_id")
        if key_id:
            key = adm.config.keys.get(key_id)
            if key is None or key.workspace != workspace:
                raise ApiError(404, "key.not_found", f"no key '{key_id}'")
        else:
            key = config_mod.ApiKey("dryrun000000", workspace, "dry run", "", "", config_mod.ENDPOINTS, ("*",), False)
        # The call as the gateway would see it once its headers passed (key and workspace known):
        # the body goes through the gateway's own checks (size, JSON, the endpoint's shape).
        route = Route(workspace, req["endpoint"], "")
        if route.endpoint.startswith("bedrock."):  # at the gateway the path names the model and the operation
            model = req.get("model")
            if not model:
                raise ApiError(
                    400,
                    "invalid_request",
                    "a Bedrock dry run names the model in request.model (the gateway takes it from the path)",
                    {"parameter": "request/model", "provided": None, "expected": "a model id"},
                )
            route = Route(workspace, route.endpoint, "", model, route.endpoint.split(".", 1)[1])
        call = gate.Call(adm, route=route, key=key)
        shape = gate.check_body(call, orjson.dumps(req["body"]))
        if isinstance(shape, Verdict):
            raise ApiError(400, shape.code, shape.message) from None
        doc, _, _ = adm.policy_input(key, req["endpoint"], shape, used=lambda *_: 0)
    return adm, doc


async def _evaluate(sources, workspace: str, body: dict) -> tuple[dict, dict]:
    """As a sidecar decides (relaygate/decision/gate.py evaluate): the workspace's policies in the
    sandbox, then the platform engine, on the policy thread."""
    adm, doc = await on_policy_thread(_prepare, *sources, workspace, body)
    return await gate.evaluate(adm, workspace, doc, offload=on_policy_thread), doc


async def dry_run(ctx: Ctx):
    pid, body = ctx.params["policy_id"], ctx.body or {}
    if (body.get("input") is None) == (body.get("request") is None):
        raise ApiError(
            400,
            "invalid_request",
            "give exactly one of 'input' (a policy input document) or 'request' (endpoint and body)",
            {"parameter": "input", "provided": None, "expected": "input or request"},
        )
    async with ctx.db.connect() as c:
        row = await _policy(c, ctx, pid)
        version = body.get("version") or row["current_version"]
        v = await _version(c, pid, version)
    override = None
    if row["workspace_id"] is not None:
        override = ActivePolicy(ctx.workspace, pid, version, await parse_off_loop(v["source"]))
    sources = await ctx.services.bundles.sources("default", override)
    decision, doc = await _evaluate(sources, ctx.workspace, body)
    return json(
        {
            "policy": {"id": pid, "version": version, "label": v["label"]},
            "decision": decision,
            "input": doc,
            "enforced": False,
        }
    )


HANDLERS = {
    "listPolicies": list_policies,
    "createPolicy": create_policy,
    "getPolicy": get_policy,
    "updatePolicy": update_policy,
    "deletePolicy": delete_policy,
    "listPolicyVersions": list_versions,
    "getPolicyVersion": get_version,
    "dryRunPolicy": dry_run,
}
