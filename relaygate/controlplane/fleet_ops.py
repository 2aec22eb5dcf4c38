"""Fleet operations over gRPC (relaygate/controlplane/fleetops/fleet_operations.proto).

For operators' tooling that watches many gateways: instances with posture, per-tenant health,
deployments, and the audit feed as a stream that resumes from a cursor. Every call needs the
platform admin token (``authorization: Bearer …`` metadata); other credentials are refused
(a workspace key or the fleet token: PERMISSION_DENIED; none or a wrong one: UNAUTHENTICATED).

The answers are built from the same functions the REST handlers use, so both say the same. The
audit stream reads the database (any replica serves it) in ``seq`` order through
:func:`relaygate.controlplane.audit.tail_events`, which waits out sequence gaps: a client that
resumes with the cursor of the last event it got misses none and gets none twice.
"""

from __future__ import annotations

import logging

import grpc
import sqlalchemy as sa
from google.protobuf import json_format, struct_pb2
from multidict import CIMultiDict

from relaygate.controlplane import schema
from relaygate.controlplane.audit import event_json, kind_matches, tail_events
from relaygate.controlplane.errors import ApiError
from relaygate.controlplane.fleetops import fleet_operations_pb2 as pb
from relaygate.controlplane.fleetops import fleet_operations_pb2_grpc as pb_grpc

from relaygate.controlplane.util import decode_cursor, encode_cursor

log = logging.getLogger("relaygate.controlplane.fleet_ops")
E = schema.audit_events


def _struct(doc: dict | None) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    if doc:
        json_format.ParseDict(doc, s)
    return s


class FleetOperations(pb_grpc.FleetOperationsServicer):
    def __init__(self, services) -> None:
        self.services = services

    async def _admin(self, context: grpc.aio.ServicerContext) -> None:
        headers = CIMultiDict((k, v) for k, v in (context.invocation_metadata() or ()) if isinstance(v, str))
        try:
            principal = await self.services.auth.resolve(headers)
        except ApiError as e:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, e.message)
        if principal.role != "admin":
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "fleet operations need the platform admin token")

    async def ListInstances(self, request, context):  # noqa: N802 (gRPC method names)
        await self._admin(context)
        out = pb.ListInstancesResponse()
        for i in await self.services.fleet.instances(request.tenant or None):
            posture = i["posture"] or {}
            out.instances.append(
                pb.Instance(
                    id=i["id"],
                    tenant=i["tenant"],
                    zone=i["zone"] or "",
                    version=i["version"] or "",
                    registered_at=i["registered_at"] or "",
                    last_seen_at=i["last_seen_at"] or "",
                    staleness_seconds=i["staleness_seconds"],
                    stale=i["stale"],
                    bundle_revision=str(posture.get("bundle_revision") or ""),
                    receipts_backlog=int(posture.get("receipts_backlog") or 0),
                    xds_connected=bool((i["xds"] or {}).get("connected")),
                    posture=_struct(posture),
                    xds=_struct(i["xds"]),
                )
            )
        return out

    async def GetHealth(self, request, context):  # noqa: N802
        await self._admin(context)
        h = await self.services.fleet.health()
        out = pb.GetHealthResponse(generated_at=h["generated_at"])
        core = {"tenant", "status", "instances", "live", "stale", "bundle_revisions", "nacking", "receipts_backlog"}
        for t in h["tenants"]:
            out.tenants.append(
                pb.TenantHealth(
                    tenant=t["tenant"],
                    status=t["status"],
                    instances=t["instances"],
                    live=t["live"],
                    stale=t["stale"],
                    bundle_revisions=t["bundle_revisions"],
                    nacking=t["nacking"],
                    receipts_backlog=int(t["receipts_backlog"] or 0),
                    rates=_struct({k: v for k, v in t.items() if k not in core}),
                )
            )
        return out

    async def ListDeployments(self, request, context):  # noqa: N802
        from relaygate.controlplane.deployments import deployment_json

        await self._admin(context)
        limit = min(request.limit or 50, 500)
        q = sa.select(schema.deployments).order_by(schema.deployments.c.created_ms.desc()).limit(limit)
        if request.status:
            q = q.where(schema.deployments.c.status == request.status)
        async with self.services.engine.connect() as c:
            rows = (await c.execute(q)).mappings().all()
        out = pb.ListDeploymentsResponse()
        for r in rows:
            d = deployment_json(r)
            out.deployments.append(
                pb.Deployment(
                    id=d["id"],
                    status=d["status"],
                    policy_id=str(d.get("policy_id") or ""),
                    version=int(d.get("version") or 0),
                    record=_struct(d),
                )
            )
        return out

    async def StreamAuditEvents(self, request, context):  # noqa: N802
        await self._admin(context)
        try:
            after = decode_cursor(request.cursor) if request.cursor else None
        except ApiError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, e.message)
        if after is None:
            after = 0
            if request.from_end:
                async with self.services.engine.connect() as c:
                    after = (await c.execute(sa.select(sa.func.max(E.c.seq)))).scalar() or 0
        async for r, pols in tail_events(self.services.engine, after, follow=request.follow):
            if request.workspace and r["workspace_id"] != request.workspace:
                continue
            if request.kinds and not any(kind_matches(r["kind"], k) for k in request.kinds):
                continue
            await context.write(_event(event_json(r, pols), r["seq"]))


def _event(e: dict, seq: int) -> pb.AuditEvent:
    return pb.AuditEvent(
        cursor=encode_cursor(seq),
        id=e["id"],
        kind=e["kind"],
        workspace=e["workspace"] or "",
        occurred_at=e["occurred_at"] or "",
        actor=e["actor"] or "",
        key_id=e["key_id"] or "",
        model=e["model"] or "",
        decision=e["decision"] or "",
        status=int(e["status"] or 0),
        policies=e["policies"],
        detail=_struct(e["detail"] if isinstance(e["detail"], dict) else {"value": e["detail"]}),
    )


async def serve(services, address: str, *, cert: str | None = None, key: str | None = None) -> grpc.aio.Server:
    """The fleet-operations gRPC server on ``address`` (TLS with ``cert``/``key``)."""
    server = grpc.aio.server()
    pb_grpc.add_FleetOperationsServicer_to_server(FleetOperations(services), server)
    if cert:
        with open(cert, "rb") as c, open(key or "", "rb") as k:
            creds = grpc.ssl_server_credentials([(k.read(), c.read())])
        bound = server.add_secure_port(address, creds)
    else:
        bound = server.add_insecure_port(address)
    if bound == 0:
        raise OSError(f"cannot listen for fleet operations (gRPC) on {address}")
    await server.start()
    log.info("fleet operations (gRPC) on %s (%s)", address, "TLS" if cert else "plaintext")
    return server
