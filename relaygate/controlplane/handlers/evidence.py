"""Tree heads, proofs, evidence bundles, and the rotation of signing keys.

Checkpoints and proofs are global (they reveal no workspace data, only
hashes); inclusion proofs are served for the caller's own receipts. Evidence
bundles are jobs: POST starts one (202), GET on it answers 202 with progress
until the tar.gz is ready, then the file; /verify runs the offline verifier
(relaygate/evidence/verify.py, the same code as `relaygate verify`) on the server, pinned
to the control plane's own root key: every key that signed anything in the
stored bundle must chain back to it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa
from aiohttp import web

from relaygate.controlplane import schema
from relaygate.controlplane.app import Ctx, json
from relaygate.controlplane.audit import record
from relaygate.controlplane.db import now_ms
from relaygate.controlplane.errors import ApiError, not_found
from relaygate.controlplane.evidence_jobs import job_json
from relaygate.controlplane.handlers.fleet import rotate_provider_credential
from relaygate.controlplane.transparency import checkpoint_json
from relaygate.controlplane.util import iso, new_id, parse_time
from relaygate.evidence.custody import event_of
from relaygate.evidence.evidence_bundle import COMPONENTS
from relaygate.evidence.verify import verify_bundle


async def checkpoints(ctx: Ctx):
    q = sa.select(schema.checkpoints).order_by(schema.checkpoints.c.size.desc(), schema.checkpoints.c.id.desc())
    if ctx.params.get("max_size") is not None:
        q = q.where(schema.checkpoints.c.size <= ctx.params["max_size"])
    async with ctx.db.connect() as c:
        rows = (await c.execute(q.limit(ctx.params["limit"]))).mappings().all()
    return json({"checkpoints": [checkpoint_json(r) for r in rows]})


async def latest_checkpoint(ctx: Ctx):
    row = await ctx.services.transparency.latest()
    if row is None:
        row = await ctx.services.transparency.checkpoint()
    return json(checkpoint_json(row))


async def sign_checkpoint(ctx: Ctx):
    return json(checkpoint_json(await ctx.services.transparency.checkpoint()), 201)


async def _event(c, ctx: Ctx, event_id: str):
    q = sa.select(schema.audit_events.c.seq, schema.audit_events.c.workspace_id).where(
        schema.audit_events.c.id == event_id,
        # a receipt pruned by retention keeps its leaf: its inclusion proof is still served
        schema.audit_events.c.kind.in_(["gateway.call", "gateway.call.pruned"]),
    )
    if ctx.workspace is not None:
        q = q.where(schema.audit_events.c.workspace_id == ctx.workspace)
    row = (await c.execute(q)).first()
    if row is None:
        raise not_found("event", event_id)
    return row


async def inclusion_proof(ctx: Ctx):
    async with ctx.db.connect() as c:
        seq, _ = await _event(c, ctx, ctx.params["event_id"])
        proof = await ctx.services.transparency.inclusion_for(c, seq, ctx.params.get("tree_size"))
    if proof is None:
        raise ApiError(404, "proof.not_found", "the receipt is not in the log yet")
    return json({"event_id": ctx.params["event_id"], **proof})


async def consistency_proof(ctx: Ctx):
    first, second = ctx.params["first"], ctx.params["second"]
    size = await ctx.services.transparency.size()
    if not 0 <= first <= second <= size:
        raise ApiError(
            400,
            "invalid_request",
            f"need 0 <= first <= second <= {size} (the current tree size)",
            {"parameter": "second", "provided": second, "expected": f"<= {size}"},
        )
    return json(
        {"first": first, "second": second, "hashes": await ctx.services.transparency.consistency(first, second)}
    )


async def log_tile(ctx: Ctx):
    """A C2SP tlog tile: 256 hashes (full, never changes) or the right edge's partial tile; with
    ``width``, its first ``width`` hashes (the C2SP ``.p/W`` form), once the log has them."""
    level, index, width = ctx.params["level"], ctx.params["index"], ctx.params.get("width")
    data = await ctx.services.transparency.tile(level, index)
    if data is None or (width is not None and len(data) < width * 32):
        raise not_found("tile", f"{level}/{index}" + (f".p/{width}" if width else ""))
    if width is not None:
        data = data[: width * 32]
    final = len(data) == 256 * 32 or width is not None  # these bytes never change
    cache = "public, max-age=31536000, immutable" if final else "no-cache"
    return web.Response(body=data, headers={"Content-Type": "application/octet-stream", "Cache-Control": cache})


async def log_keys(ctx: Ctx):
    keys = ctx.services.keys
    root = await keys.root_key()
    from relaygate.evidence.signing import key_id_for
    from cryptography.hazmat.primitives import serialization

    pem = root.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return json(
        {
            "origin": ctx.services.transparency.origin,
            "root_key_id": key_id_for(root),
            "root_public_key": pem,
            "current_key_id": keys.tree.key_id,
            "current_public_key": keys.tree.public_pem().decode(),
        }
    )


# -- evidence bundles --------------------------------------------------------------------


async def create_bundle(ctx: Ctx):
    b = ctx.body or {}
    components = b.get("components") or list(COMPONENTS)
    start, end = parse_time(b.get("from"), "from"), parse_time(b.get("to"), "to")
    if start is not None and end is not None and end <= start:
        raise ApiError(
            400,
            "invalid_request",
            "'to' must be after 'from'",
            {"parameter": "to", "provided": b.get("to"), "expected": "a time after 'from'"},
        )
    params = {"from": b.get("from"), "to": b.get("to"), "from_ms": start, "to_ms": end, "components": components}
    if b.get("consistency_from"):
        params["consistency_from"] = sorted(set(b["consistency_from"]))
    row = await ctx.services.evidence.create(ctx.workspace, params, ctx.principal.actor)
    async with ctx.db.begin() as c:
        await record(
            c,
            "evidence.requested",
            ctx.workspace,
            ctx.principal.actor,
            {"bundle_id": row["id"], "from": b.get("from"), "to": b.get("to"), "components": components},
        )
    return json(job_json(row), 202, {"Location": f"/v1/evidence/bundles/{row['id']}"})


async def _job(ctx: Ctx, job_id: str):
    q = sa.select(schema.evidence_bundles).where(schema.evidence_bundles.c.id == job_id)
    if ctx.principal.role != "admin" or ctx.workspace is not None:
        q = q.where(schema.evidence_bundles.c.workspace_id == ctx.workspace)
    async with ctx.db.connect() as c:
        row = (await c.execute(q)).mappings().first()
    if row is None:
        raise not_found("evidence bundle", job_id)
    return row


async def list_bundles(ctx: Ctx):
    q = (
        sa.select(schema.evidence_bundles)
        .order_by(schema.evidence_bundles.c.created_ms.desc())
        .limit(ctx.params["limit"])
    )
    if ctx.principal.role != "admin" or ctx.workspace is not None:
        q = q.where(schema.evidence_bundles.c.workspace_id == ctx.workspace)
    async with ctx.db.connect() as c:
        rows = (await c.execute(q)).mappings().all()
    return json({"bundles": [job_json(r) for r in rows]})


async def bundle_status(ctx: Ctx):
    return json(job_json(await _job(ctx, ctx.params["bundle_id"])))


async def _blob(ctx: Ctx, row) -> bytes:
    """The finished tar.gz: from the database (any replica), or the file of a bundle made before
    bundles were stored there."""
    async with ctx.db.connect() as c:
        blob = (
            await c.execute(sa.select(schema.evidence_blobs.c.data).where(schema.evidence_blobs.c.id == row["id"]))
        ).scalar()
    if blob is not None:
        return bytes(blob)
    path = Path(row["path"]) if row["path"] else None
    if path is None or not path.exists():
        raise ApiError(409, "evidence.gone", "the bundle is no longer stored; request a new one")
    return path.read_bytes()


async def download_bundle(ctx: Ctx):
    row = await _job(ctx, ctx.params["bundle_id"])
    if row["status"] == "failed":
        raise ApiError(409, "evidence.failed", f"the bundle could not be assembled: {row['error']}")
    if row["status"] != "done":
        return json(job_json(row), 202, {"Retry-After": "1"})
    return web.Response(
        body=await _blob(ctx, row),
        headers={
            "Content-Type": "application/gzip",
            "X-Bundle-SHA256": row["sha256"],
            "Content-Disposition": f'attachment; filename="{row["id"]}.tar.gz"',
        },
    )


async def verify_stored_bundle(ctx: Ctx):
    row = await _job(ctx, ctx.params["bundle_id"])
    if row["status"] != "done":
        raise ApiError(409, "evidence.not_ready", f"the bundle is {row['status']} ({row['progress'] * 100:.0f}%)")
    blob = await _blob(ctx, row)
    root = await ctx.services.keys.root_key()
    report = await asyncio.to_thread(verify_bundle, blob, root)
    return json({"bundle_id": row["id"], **report.as_dict()})


# -- rotations ---------------------------------------------------------------------------


async def rotate(ctx: Ctx):
    b, svc = ctx.body, ctx.services
    kind = b["kind"]
    if kind == "tree_head":
        doc = await svc.keys.rotate_tree(ctx.principal.actor)
        await svc.notify("keys")  # the other replicas load the new tree-head key
        await svc.transparency.checkpoint(force=True)  # the next tree head under the new key
        async with ctx.db.begin() as c:
            await record(
                c,
                "key.rotated",
                None,
                ctx.principal.actor,
                {"kind": kind, "key_id": doc["key_id"], "previous_key_id": doc["previous_key_id"]},
            )
        return json({"kind": kind, "status": "done", "custody_event": doc})
    if kind == "receipt_signing":
        iid = b.get("instance_id")
        if not iid:
            raise ApiError(
                400,
                "invalid_request",
                "receipt_signing needs instance_id",
                {"parameter": "instance_id", "provided": None, "expected": "an instance id"},
            )
        async with ctx.db.begin() as c:
            if (await c.execute(sa.select(schema.instances.c.id).where(schema.instances.c.id == iid))).first() is None:
                raise not_found("instance", iid)
            rid = new_id("rot_", 12)
            await c.execute(
                schema.key_rotations.insert().values(
                    id=rid,
                    kind=kind,
                    target=iid,
                    status="pending",
                    created_by=ctx.principal.actor,
                    created_ms=now_ms(),
                    detail={},
                )
            )
            await record(
                c, "key.rotation_requested", None, ctx.principal.actor, {"rotation_id": rid, "instance_id": iid}
            )
        return json({"rotation_id": rid, "kind": kind, "status": "pending", "instance_id": iid}, 202)
    if kind != "provider":
        raise ApiError(400, "invalid_request", f"unknown rotation kind '{kind}'")
    return await rotate_provider_credential(ctx)


async def rotation_status(ctx: Ctx):
    async with ctx.db.connect() as c:
        row = (
            (
                await c.execute(
                    sa.select(schema.key_rotations).where(schema.key_rotations.c.id == ctx.params["rotation_id"])
                )
            )
            .mappings()
            .first()
        )
    if row is None:
        raise not_found("rotation", ctx.params["rotation_id"])
    return json(
        {
            "rotation_id": row["id"],
            "kind": row["kind"],
            "target": row["target"],
            "status": row["status"],
            "created_at": iso(row["created_ms"]),
            "done_at": iso(row["done_ms"]),
            "detail": row["detail"],
        }
    )


async def introduce_key(ctx: Ctx):
    """A sidecar's rotated key, introduced by an event its previous key signed."""
    iid = ctx.principal.subject
    async with ctx.db.begin() as c:
        doc = await ctx.services.keys.introduce_sidecar(c, iid, ctx.body["event"])
        rid = ctx.body.get("rotation_id")
        if rid:
            await c.execute(
                schema.key_rotations.update()
                .where(schema.key_rotations.c.id == rid, schema.key_rotations.c.target == iid)
                .values(
                    status="done",
                    done_ms=now_ms(),
                    detail={"key_id": doc["key_id"], "previous_key_id": doc["previous_key_id"]},
                )
            )
        await record(
            c,
            "key.rotated",
            None,
            f"fleet:{iid}",
            {
                "kind": "receipt_signing",
                "instance_id": iid,
                "key_id": doc["key_id"],
                "previous_key_id": doc["previous_key_id"],
            },
        )
    await ctx.services.keys_changed()
    return json({"ok": True, "key_id": doc["key_id"]})


async def custody_events(ctx: Ctx):
    async with ctx.db.connect() as c:
        envs = await ctx.services.keys.events(c)
    return json({"events": [{"event": event_of(e), "envelope": e} for e in envs]})


HANDLERS = {
    "listCheckpoints": checkpoints,
    "latestCheckpoint": latest_checkpoint,
    "signCheckpoint": sign_checkpoint,
    "inclusionProof": inclusion_proof,
    "consistencyProof": consistency_proof,
    "logKeys": log_keys,
    "logTile": log_tile,
    "createEvidenceBundle": create_bundle,
    "listEvidenceBundles": list_bundles,
    "getEvidenceBundleStatus": bundle_status,
    "downloadEvidenceBundle": download_bundle,
    "verifyEvidenceBundle": verify_stored_bundle,
    "rotateCredential": rotate,
    "getRotation": rotation_status,
    "introduceKey": introduce_key,
    "listCustodyEvents": custody_events,
}
