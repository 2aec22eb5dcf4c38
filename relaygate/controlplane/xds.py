"""The ADS server: listeners, routes, clusters and endpoints for every gateway, over xDS.

State of the world (not delta): each response carries every resource of its
type (EDS: every one the node asked for). Per type, the version is a digest of
the resources, so an unchanged type is never resent; each response carries a
fresh nonce. A request that echoes the last nonce is an ACK (its version is
recorded as applied) or, with ``error_detail``, a NACK: logged with Envoy's
message, kept in the node's posture, and that version is not sent again, so
Envoy keeps its last good config until a newer one is built.

A node's resources come from the stored upstreams and gateway settings (the
same builders as the static bootstrap, relaygate/envoy/config.py), the listen
address in its bootstrap's node metadata, and the addresses its sidecar
registered under the same instance id: gRPC (ext_proc, the access log) and, when
it serves one, the ext_authz HTTP check, which then decides the node's calls.
Until that sidecar has registered, the node is told nothing (Envoy waits rather
than run without its policy service).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass, field
from types import SimpleNamespace

import grpc
import sqlalchemy as sa
from google.protobuf import any_pb2, descriptor_pool, json_format

# Importing these registers every message type the resources use.
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.access_loggers.grpc.v3 import als_pb2  # noqa: F401
from envoy.extensions.filters.http.ext_proc.v3 import ext_proc_pb2  # noqa: F401
from envoy.extensions.filters.http.json_to_metadata.v3 import json_to_metadata_pb2  # noqa: F401
from envoy.extensions.filters.http.local_ratelimit.v3 import local_rate_limit_pb2  # noqa: F401
from envoy.extensions.filters.http.lua.v3 import lua_pb2  # noqa: F401
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2  # noqa: F401
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2  # noqa: F401
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from xds.type.v3 import typed_struct_pb2  # noqa: F401  (TypedStruct)

from relaygate.controlplane import metrics
from relaygate.controlplane import schema
from relaygate.controlplane.db import now_ms
from relaygate.contract import config as config_mod
from relaygate.contract.preauth import parse as parse_preauth
from relaygate.envoy import config as envoy_config

log = logging.getLogger("relaygate.controlplane.xds")
T = "type.googleapis.com/"
LDS = T + "envoy.config.listener.v3.Listener"
RDS = T + "envoy.config.route.v3.RouteConfiguration"
CDS = T + "envoy.config.cluster.v3.Cluster"
EDS = T + "envoy.config.endpoint.v3.ClusterLoadAssignment"
MESSAGES = {
    LDS: listener_pb2.Listener,
    RDS: route_pb2.RouteConfiguration,
    CDS: cluster_pb2.Cluster,
    EDS: endpoint_pb2.ClusterLoadAssignment,
}
SHORT = {LDS: "lds", RDS: "rds", CDS: "cds", EDS: "eds"}
_POOL = descriptor_pool.Default()


def _known(type_url: str) -> bool:
    try:
        _POOL.FindMessageTypeByName(type_url.rsplit("/", 1)[1])
        return True
    except KeyError:
        return False


def _typed_structs(node):
    """Wrap typed configs whose proto this process lacks in xds.type.v3.TypedStruct (Envoy converts them)."""
    if isinstance(node, dict):
        if "@type" in node and not _known(node["@type"]):
            value = {k: v for k, v in node.items() if k != "@type"}
            return {"@type": T + "xds.type.v3.TypedStruct", "type_url": node["@type"], "value": value}
        return {k: _typed_structs(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_typed_structs(v) for v in node]
    return node


def to_any(type_url: str, resource: dict) -> any_pb2.Any:
    msg = json_format.ParseDict(_typed_structs(resource), MESSAGES[type_url]())
    out = any_pb2.Any()
    out.Pack(msg)
    return out


def _readable(message: str) -> str:
    """Envoy's NACK text with protobuf's debug-string markers and layout whitespace removed."""
    return re.sub(r"\s+", " ", re.sub(r"goo\.gle/debug\w+", "", message)).strip()


@dataclass
class NodeState:
    """What the control plane knows of one gateway's xDS session."""

    node_id: str
    tenant: str = ""
    connected: bool = False
    applied: dict = field(default_factory=dict)  # type -> version Envoy ACKed
    last_nack: dict | None = None  # {type, version, message, at}
    nacks: int = 0

    def posture(self) -> dict:
        return {
            "connected": self.connected,
            "applied": {SHORT[t]: v for t, v in self.applied.items()},
            "config_version": self.applied.get(LDS, "") + "/" + self.applied.get(CDS, ""),
            "last_nack": self.last_nack,
            "nacks": self.nacks,
        }


@dataclass(eq=False)
class Stream:
    node: NodeState
    listen: str
    queue: asyncio.Queue
    tls: str = ""  # listener TLS mode the node's bootstrap holds secrets for
    tracing: envoy_config.Tracing | None = None  # the node's bootstrap holds the collector's cluster
    subscribed: dict = field(default_factory=dict)  # type -> resource names asked for ([] = all)
    sent: dict = field(default_factory=dict)  # type -> (version, nonce)
    rejected: dict = field(default_factory=dict)  # type -> version Envoy NACKed
    resend: set = field(default_factory=set)  # types to answer on the next request even if unchanged
    nonce: int = 0


class XdsServer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(self, engine) -> None:
        self.engine = engine
        self.nodes: dict[str, NodeState] = {}
        self._streams: set[Stream] = set()
        self._view = None
        self._view_gen = -1
        self._built: dict[str, tuple] = {}  # node id -> ((generation, listen), resources)
        self.generation = 0
        self._lock = asyncio.Lock()

    # -- inputs -------------------------------------------------------------------------
    async def changed(self) -> None:
        """Config or fleet changed: rebuild and push what differs to every connected gateway."""
        self.generation += 1
        for st in list(self._streams):
            await self._push(st)

    async def _load_view(self):
        gen = self.generation  # a change during the reads below must not be marked as seen
        if self._view is not None and self._view_gen == gen:
            return self._view
        async with self.engine.connect() as c:
            specs = [
                r[0]
                for r in (
                    await c.execute(
                        sa.select(schema.upstreams.c.spec)
                        .where(schema.upstreams.c.deleted_ms.is_(None))
                        .order_by(schema.upstreams.c.created_ms, schema.upstreams.c.name)
                    )
                ).all()
            ]
            gw = (
                await c.execute(sa.select(schema.settings.c.value).where(schema.settings.c.name == "gateway"))
            ).scalar() or {}
            i = schema.instances.c
            addrs = {
                r[0]: (r[1], r[2]) for r in (await c.execute(sa.select(i.id, i.grpc_address, i.authz_address))).all()
            }
        ups = []
        for spec in specs:
            try:
                ups.append(config_mod.parse_upstream(spec, f"upstream '{spec.get('name')}'", None))
            except config_mod.ConfigError as e:
                log.error("upstream left out of xDS: %s", e)
        try:
            preauth = parse_preauth(gw.get("unauthenticated"))
        except config_mod.ConfigError as e:
            log.error("gateway settings: %s; the pre-auth throttle keeps its defaults", e)
            preauth = parse_preauth(None)
        self._view = SimpleNamespace(
            upstreams=tuple(ups),
            max_body_bytes=int(gw.get("max_body_bytes", 4 << 20)),
            addresses=addrs,
            preauth=preauth,
        )
        self._view_gen = gen
        return self._view

    async def resources(
        self, node_id: str, listen: str, tls: str = "", tracing: envoy_config.Tracing | None = None
    ) -> dict[str, list[tuple[str, any_pb2.Any]]] | None:
        """Every resource a node should have, by type; None until its sidecar registered.

        Built once per configuration generation and node: Envoy's ACKs and warming
        requests between two changes reuse it instead of re-encoding every resource.
        """
        key = (self.generation, listen, tls, tracing)
        built = self._built.get(node_id)
        if built is not None and built[0] == key:
            return built[1]
        view = await self._load_view()
        addr, authz = view.addresses.get(node_id) or (None, None)
        if not addr:
            return None
        host, _, port = listen.rpartition(":")
        # The sidecar's ext_authz check when it registered one (the faster transport), else ext_proc.
        transport = "authz-http" if authz else "extproc"
        res = {
            LDS: [
                envoy_config.listener(
                    view, host or "127.0.0.1", int(port), rds=True, tls=tls, transport=transport, tracing=tracing
                )
            ],
            RDS: [envoy_config.route_config(view)],
            CDS: envoy_config.clusters(view, [addr], eds=True, authz=[authz] if authz else None),
            EDS: envoy_config.endpoints(view),
        }
        name = {LDS: "name", RDS: "name", CDS: "name", EDS: "cluster_name"}
        out = {t: sorted(((r[name[t]], to_any(t, r)) for r in rs), key=lambda x: x[0]) for t, rs in res.items()}
        self._built[node_id] = (key, out)
        return out

    @staticmethod
    def _version(items: list[tuple[str, any_pb2.Any]]) -> str:
        h = hashlib.sha256()
        for name, a in items:
            h.update(name.encode() + b"\0" + a.SerializeToString(deterministic=True))
        return h.hexdigest()[:16]

    # -- the stream -------------------------------------------------------------------------
    async def StreamAggregatedResources(self, request_iterator, context):
        first = await context.read()
        if first is grpc.aio.EOF:
            return
        node_id = first.node.id or "unknown"
        meta = json_format.MessageToDict(first.node.metadata) if first.node.HasField("metadata") else {}
        node = self.nodes.setdefault(node_id, NodeState(node_id))
        node.tenant = meta.get("tenant") or first.node.cluster or node.tenant
        node.connected = True
        tls = meta.get("tls") or ""
        if tls not in envoy_config.TLS_MODES:
            log.warning("xds: gateway %s asked for unknown listener tls %r; refused", node_id, tls)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown listener tls mode {tls!r}")
        try:
            tracing = envoy_config.Tracing.from_metadata(meta["tracing"]) if meta.get("tracing") else None
        except (TypeError, ValueError, AttributeError) as e:
            log.warning("xds: gateway %s sent unusable tracing metadata (%s); refused", node_id, e)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unusable tracing metadata: {e}")
        st = Stream(node, meta.get("listen", "127.0.0.1:8080"), asyncio.Queue(), tls, tracing)
        self._streams.add(st)
        metrics.XDS_STREAMS.set(len(self._streams))
        log.info("xds: gateway %s (tenant %s, listen %s) connected", node_id, node.tenant, st.listen)
        sender = asyncio.create_task(self._send(st, context))
        try:
            req = first
            while req is not grpc.aio.EOF:
                await self._on_request(st, req)
                req = await context.read()
        finally:
            sender.cancel()
            self._streams.discard(st)
            metrics.XDS_STREAMS.set(len(self._streams))
            if not any(s.node is node for s in self._streams):
                node.connected = False
            log.info("xds: gateway %s disconnected", node_id)

    async def _send(self, st: Stream, context) -> None:
        while True:
            await context.write(await st.queue.get())

    async def _on_request(self, st: Stream, req) -> None:
        t = req.type_url
        if t not in MESSAGES:
            return
        sent = st.sent.get(t)
        if req.response_nonce:
            if sent is None or req.response_nonce != sent[1]:
                return  # stale: answers an older response
            if req.HasField("error_detail") and (req.error_detail.code or req.error_detail.message):
                st.rejected[t] = sent[0]
                st.node.nacks += 1
                metrics.XDS_NACKS.labels(SHORT[t]).inc()
                message = _readable(req.error_detail.message)
                st.node.last_nack = {"type": SHORT[t], "version": sent[0], "message": message[:2000], "at": now_ms()}
                log.warning(
                    "xds: gateway %s rejected %s version %s: %s", st.node.node_id, SHORT[t], sent[0], message[:500]
                )
                await self.on_nack(st.node)
            else:
                st.node.applied[t] = req.version_info
                nack = st.node.last_nack
                if nack and nack["type"] == SHORT[t] and not nack.get("resolved_at"):
                    nack["resolved_at"] = now_ms()  # a newer version of that type was accepted
                    await self.on_nack(st.node)
        names = list(req.resource_names)
        changed = st.subscribed.get(t) != names
        st.subscribed[t] = names
        # Clusters and listeners Envoy re-creates after a CDS/LDS update warm by asking for their
        # endpoints/routes again: answer that request even when nothing in it changed.
        force = (changed and bool(req.response_nonce)) or t in st.resend
        st.resend.discard(t)
        await self._push(st, only=t, force=force)

    async def _push(self, st: Stream, only: str | None = None, force: bool = False) -> None:
        async with self._lock:
            res = await self.resources(st.node.node_id, st.listen, st.tls, st.tracing)
        if res is None:
            return
        for t in [only] if only else [CDS, EDS, LDS, RDS]:  # clusters before what uses them
            if t not in st.subscribed:
                continue
            items = res[t]
            names = st.subscribed[t]
            if names and t in (EDS, RDS):
                items = [x for x in items if x[0] in names]
            version = self._version(items)
            last = st.sent.get(t)
            if (last and last[0] == version and not force) or st.rejected.get(t) == version:
                continue
            st.nonce += 1
            nonce = f"{st.nonce}"
            st.sent[t] = (version, nonce)
            if t == CDS:
                st.resend.add(EDS)
            elif t == LDS:
                st.resend.add(RDS)
            st.queue.put_nowait(
                discovery_pb2.DiscoveryResponse(
                    version_info=version, type_url=t, nonce=nonce, resources=[a for _, a in items]
                )
            )

    async def on_nack(self, node: NodeState) -> None:
        """Overridden by the fleet service to record NACKs in posture."""

    def posture(self, node_id: str) -> dict | None:
        n = self.nodes.get(node_id)
        return n.posture() if n else None


async def serve(
    xds: XdsServer, address: str, *, cert: str | None = None, key: str | None = None, client_ca: str | None = None
) -> grpc.aio.Server:
    """The ADS server; with ``cert``/``key`` over TLS, and with ``client_ca`` a gateway must
    present a certificate that CA issued (mTLS) before it is told anything."""
    server = grpc.aio.server()
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(xds, server)
    if cert:
        with open(cert, "rb") as c, open(key, "rb") as k:
            pair = (k.read(), c.read())
        roots = open(client_ca, "rb").read() if client_ca else None
        creds = grpc.ssl_server_credentials([pair], root_certificates=roots, require_client_auth=bool(client_ca))
        bound = server.add_secure_port(address, creds)
    else:
        bound = server.add_insecure_port(address)
    if bound == 0:
        raise OSError(f"cannot listen for xDS on {address}")
    await server.start()
    log.info("xDS (ADS) server on %s (%s)", address, "mTLS" if client_ca else "TLS" if cert else "plaintext")
    return server
