"""Sidecar-facing endpoints: registration, heartbeats, receipt ingestion, policy bundles.

Bundles follow OPA's bundle API: ``ETag`` is the revision, ``If-None-Match``
answers 304 when nothing changed, and ``Prefer: wait=N`` holds the request
open (long polling) until a new revision exists or N seconds pass.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from aiohttp import web

from relaygate.controlplane import schema
from relaygate.controlplane.app import Ctx, json
from relaygate.controlplane.audit import record
from relaygate.controlplane.custody import pending_commands
from relaygate.controlplane.db import now_ms
from relaygate.controlplane.errors import ApiError, not_found
from relaygate.controlplane.util import new_id
from relaygate.contract.bundle import CONTENT_TYPE


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
        values = dict(
            tenant=b["tenant"],
            zone=b.get("zone", ""),
            version=b.get("version", ""),
            grpc_address=b["grpc_address"],
            authz_address=b.get("authz_address"),
            last_seen_ms=now,
        )
        if existing is None:
            await c.execute(schema.instances.insert().values(id=iid, registered_ms=now, posture={}, **values))
            await record(
                c,
                "instance.registered",
                None,
                ctx.principal.actor,
                {"instance_id": iid, "tenant": b["tenant"], "zone": b.get("zone", "")},
            )
        else:
            await c.execute(schema.instances.update().where(schema.instances.c.id == iid).values(**values))
        if replaced:
            await record(
                c,
                "key.replaced",
                None,
                ctx.principal.actor,
                {"instance_id": iid, "key_id": doc["key_id"], "retired": replaced},
            )
        row = (await c.execute(sa.select(schema.instances).where(schema.instances.c.id == iid))).mappings().first()
    ctx.services.fleet.seen(iid, now)
    await ctx.services.keys_changed()
    await ctx.services.fleet_changed()
    return json(ctx.services.fleet.instance_json(row))


async def heartbeat(ctx: Ctx):
    iid, now = ctx.params["instance_id"], now_ms()
    async with ctx.db.begin() as c:
        n = (
            await c.execute(
                schema.instances.update().where(schema.instances.c.id == iid).values(last_seen_ms=now, posture=ctx.body)
            )
        ).rowcount
        if n:
            await ctx.services.fleet.observe(c, iid, ctx.body, now)
    if not n:
        raise not_found("instance", iid)
    ctx.services.fleet.seen(iid, now)
    commands = await pending_commands(ctx.db, iid)
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
    return json({"key_id": s.key_id, "algorithm": s.algorithm, "public_key": s.public_pem().decode()})


async def opa_status(ctx: Ctx):
    return json(await ctx.services.opa_agents.status(ctx.body))


async def opa_decision_logs(ctx: Ctx):
    return json(await ctx.services.opa_agents.decisions(ctx.body))


async def list_opa_agents(ctx: Ctx):
    """Each agent's last report, and whether its bundles are at the revision the control plane
    serves its tenant now (``labels.tenant`` in the agent's configuration, default "default")."""
    from relaygate.controlplane.opa_agents import agent_json

    served: dict[str, str | None] = {}
    out = []
    for row in await ctx.services.opa_agents.list():
        tenant = (row["labels"] or {}).get("tenant")
        tenant = tenant if isinstance(tenant, str) and tenant else "default"
        if tenant not in served:
            try:
                served[tenant] = (await ctx.services.bundles.get(tenant))[1]
            except Exception:  # no bundle to compare with: "current" stays unknown
                served[tenant] = None
        out.append(agent_json(row, served[tenant]))
    return json({"agents": out})


HANDLERS = {
    "opaStatus": opa_status,
    "opaDecisionLogs": opa_decision_logs,
    "listOpaAgents": list_opa_agents,
    "registerInstance": register,
    "heartbeat": heartbeat,
    "ingestReceipts": ingest,
    "getBundle": bundle,
    "getBundleKey": bundle_key,
}


# -- operators: the fleet at a glance, deployments --------------------------------------------


async def list_instances(ctx: Ctx):
    return json({"instances": await ctx.services.fleet.instances(ctx.params.get("tenant"))})


async def fleet_health(ctx: Ctx):
    return json(await ctx.services.fleet.health())


async def create_deployment(ctx: Ctx):
    from relaygate.controlplane.deployments import deployment_json

    row = await ctx.services.deployments.create(ctx.workspace, ctx.body, ctx.principal.actor)
    return json(deployment_json(row), 202, {"Location": f"/v1/fleet/deployments/{row['id']}"})


async def list_deployments(ctx: Ctx):
    from relaygate.controlplane.deployments import deployment_json

    q = sa.select(schema.deployments).order_by(schema.deployments.c.created_ms.desc()).limit(ctx.params["limit"])
    if ctx.workspace is not None:
        q = q.where(schema.deployments.c.workspace_id == ctx.workspace)
    if ctx.params.get("status"):
        q = q.where(schema.deployments.c.status == ctx.params["status"])
    async with ctx.db.connect() as c:
        rows = (await c.execute(q)).mappings().all()
    return json({"deployments": [deployment_json(r) for r in rows]})


async def get_deployment(ctx: Ctx):
    from relaygate.controlplane.deployments import deployment_json

    return json(deployment_json(await ctx.services.deployments.get(ctx.params["deployment_id"], ctx.workspace)))


async def rollback_deployment(ctx: Ctx):
    from relaygate.controlplane.deployments import deployment_json

    row = await ctx.services.deployments.rollback(ctx.params["deployment_id"], ctx.workspace, ctx.principal.actor)
    return json(deployment_json(row), 202)


async def rotate_provider_credential(ctx: Ctx):
    """A new provider secret: sealed at rest, in every sidecar's next bundle, and a custody event (no secret)."""
    from relaygate.evidence import custody as ev

    b, svc = ctx.body, ctx.services
    name, secret = b.get("name"), b.get("secret")
    if not name or not secret:
        raise ApiError(
            400,
            "invalid_request",
            "provider rotation needs name and secret",
            {"parameter": "name" if not name else "secret", "provided": None, "expected": "string"},
        )
    if name.startswith("_") or name == "key_pepper" or name not in await svc.secrets.versions():
        raise not_found("credential", name)
    async with ctx.db.begin() as c:
        version = await svc.secrets.put(name, secret, c)
        doc = {
            "id": new_id("cust_"),
            "type": "credential.rotated",
            "owner": ev.CONTROL_PLANE,
            "purpose": "provider-credential",
            "credential": name,
            "version": version,
            "at": ev.iso_ms(now_ms() / 1000),
            "actor": ctx.principal.actor,
            "previous_key_id": None,
        }
        env = ev.sign_event(doc, svc.keys.tree)
        await c.execute(
            schema.custody_events.insert().values(
                id=doc["id"], type=doc["type"], owner=doc["owner"], key_id=None, envelope=env, created_ms=now_ms()
            )
        )
        await record(c, "credential.rotated", None, ctx.principal.actor, {"credential": name, "version": version})
    await svc.config_changed()
    return json({"kind": "provider", "name": name, "version": version, "status": "done", "custody_event": doc})


HANDLERS.update(
    {
        "listInstances": list_instances,
        "fleetHealth": fleet_health,
        "createDeployment": create_deployment,
        "listDeployments": list_deployments,
        "getDeployment": get_deployment,
        "rollbackDeployment": rollback_deployment,
    }
)
