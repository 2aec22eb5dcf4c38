"""relaygate inside a service mesh: the gateway's own Envoy resources, patched into another Envoy.

Two integrations, both generated from the builders of relaygate/envoy/config.py (``listener``,
``route_config``, ``clusters``): this module renders the gateway's listener once, takes it apart
and hands the pieces to the mesh, so the mesh's policy chain cannot drift from the gateway's.

**Istio** (an ``EnvoyFilter`` for the app's sidecar, context SIDECAR_OUTBOUND). The app calls
``http://<service>/v1/{workspace}/{endpoint}`` exactly as it would call the gateway; ``<service>``
is a selector-less Kubernetes Service rendered here, which gives the name a DNS entry and Istio a
virtual host on the outbound HTTP listener of its port. Into that listener's connection manager,
before the router, go a request-id reset, a body buffer at the gateway's limit, and the gateway's
ext_proc policy filter, response Lua filter (header allow-list + response digest) and JSON usage
filter, each *disabled by default* and enabled only on relaygate's virtual host: every other call
the app makes on that port passes untouched. The virtual host gets the gateway's routes (one per
upstream, matching the policy's ``x-relaygate-upstream``, else a 502) and header rules; the connection manager
gets the gateway's gRPC access log (to the settler) and local replies, both scoped to that
virtual host; the policy, settler and upstream clusters are added. The policy service is the
``policy`` container of the same pod, reached over the Unix socket on the pod's shared emptyDir
(deploy/mesh/README.md says why not a loopback port). A ``ServiceEntry`` declares the provider hosts.

**Envoy Gateway** (an ``EnvoyExtensionPolicy`` on an ``HTTPRoute``). Envoy Gateway renders its
own Envoy configuration from CRDs, so only what its API can express is carried over: ext_proc
(the policy service as a Kubernetes Service), the response Lua filter, the routes (an HTTPRoute,
``Backend`` objects, ``BackendTLSPolicy`` for TLS providers, an ``HTTPRouteFilter`` for the 502),
the body buffer limit (``BackendTrafficPolicy``) and the access log to the settler (an
``EnvoyProxy`` telemetry sink). ``ENVOY_GATEWAY_LIMITS`` lists what it lacks;
deploy/mesh/README.md explains each.

    python -m relaygate.envoy.mesh istio --config-dir config --namespace apps --out relaygate-mesh.yaml
    python -m relaygate.envoy.mesh envoy-gateway --config-dir config --gateway eg --out relaygate-eg.yaml
"""

from __future__ import annotations

import argparse
import copy
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from relaygate.contract import config as config_mod
from relaygate.contract.config import GatewayConfig
from relaygate.envoy import config as envoy_config

T = envoy_config.T
HCM = "envoy.filters.network.http_connection_manager"
ROUTER = "envoy.filters.http.router"
EXTPROC = "envoy.filters.http.ext_proc"
CALL = "relaygate.call"  # the gateway's response-side Lua filter (header allow-list + digest)
JSON_USAGE = "envoy.filters.http.json_to_metadata"
SSE_USAGE = "envoy.filters.http.sse_to_metadata"
REQUEST_ID = "relaygate.request_id"
BUFFER = "relaygate.body_limit"
FILTER_CONFIG = T + "envoy.config.route.v3.FilterConfig"

# On the pod's shared emptyDir, the same path as in the standalone gateway pair.
DEFAULT_POLICY_ADDRESS = "unix:/run/relaygate/extproc.sock"
ISTIO_VERSION = "1.30"  # the release the manifests and deploy/mesh/schemas were checked against
ENVOY_GATEWAY_VERSION = "v1.9.0"
# Filters Istio 1.30's proxy (istio/proxy bazel/extension_config/extensions_build_config.bzl)
# is built without: a listener naming one is rejected by the sidecar, breaking the pod's egress.
NOT_IN_ISTIO_PROXY = (SSE_USAGE,)


def load_config(config_dir: str | Path) -> GatewayConfig:
    """The parts of a config directory Envoy's resources come from (gateway.yaml, upstreams.yaml),
    parsed by the project's own parser. Credentials are not needed (no manifest carries one), so
    each upstream's credential name gets a placeholder and no secret is ever read."""
    d = Path(config_dir)
    if not d.is_dir():
        raise config_mod.ConfigError(f"{d}: config directory not found")
    docs = {}
    for name in ("gateway", "upstreams"):
        p = d / f"{name}.yaml"
        docs[name] = (yaml.safe_load(p.read_text()) if p.exists() else None) or {}
    ups = docs["upstreams"].get("upstreams") if isinstance(docs["upstreams"], dict) else None
    names = {u["credential"] for u in ups or [] if isinstance(u, dict) and isinstance(u.get("credential"), str)}
    secrets = {"key_pepper": "unused", **{n: "unused" for n in names}}
    return config_mod.from_documents(docs, secrets, environ={})


@dataclass(frozen=True)
class GatewayParts:
    """The gateway's Envoy resources (ext_proc transport), taken apart for a mesh."""

    filters: dict[str, dict]  # the gateway listener's HTTP filters by name
    access_log: list[dict]
    local_reply_config: dict
    virtual_host: dict
    clusters: list[dict]  # extproc (decisions), settler (access log), upstream_<name> per upstream
    message_timeout_ms: int
    buffer_limit: int  # the listener's per-connection buffer limit: the largest body, plus headers


def gateway_parts(cfg: GatewayConfig, policy_address: str, message_timeout_ms: int = 2000) -> GatewayParts:
    """Render the gateway's listener, routes and clusters with relaygate/envoy/config.py and keep
    them apart. The mesh variants use the ext_proc transport: its reply sets the provider path,
    body and headers itself, where ext_authz's needs a Lua step after it."""
    lst = envoy_config.listener(cfg, "127.0.0.1", 8080, message_timeout_ms=message_timeout_ms, transport="extproc")
    hcm = lst["filter_chains"][0]["filters"][0]["typed_config"]
    filters = {f["name"]: f for f in hcm["http_filters"]}
    for need in (EXTPROC, CALL, JSON_USAGE, SSE_USAGE, ROUTER):
        if need not in filters:
            raise RuntimeError(f"relaygate/envoy/config.py listener() has no {need} filter any more: update mesh.py")
    routes = envoy_config.route_config(cfg)
    (vhost,) = routes["virtual_hosts"]
    return GatewayParts(
        filters=filters,
        access_log=hcm["access_log"],
        local_reply_config=hcm["local_reply_config"],
        virtual_host=vhost,
        clusters=envoy_config.clusters(cfg, [policy_address]),
        message_timeout_ms=message_timeout_ms,
        buffer_limit=lst["per_connection_buffer_limit_bytes"],
    )


def _is_ip(host: str) -> bool:
    return bool(re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]+:[0-9a-fA-F:]*", host))


def _dns_label(s: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", s.lower()).strip("-")[:63] or "x"


# -- Istio ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IstioOptions:
    namespace: str = "default"
    name: str = "relaygate"  # of the EnvoyFilter, and prefix of the other objects
    # The app pods whose sidecars get relaygate (EnvoyFilter workloadSelector).
    selector: dict[str, str] = field(default_factory=lambda: {"relaygate.io/mesh": "enabled"})
    service: str = "relaygate-mesh"  # the name apps call: http://relaygate-mesh/v1/...
    port: int = 80  # its port: the sidecar's outbound HTTP listener that gets the filters
    cluster_domain: str = "cluster.local"
    policy_address: str = DEFAULT_POLICY_ADDRESS
    service_entry: bool = True
    message_timeout_ms: int = 2000

    @property
    def host(self) -> str:
        return f"{self.service}.{self.namespace}.svc.{self.cluster_domain}"

    @property
    def virtual_host(self) -> str:
        """The name Istio gives the Service's virtual host in the outbound route table."""
        return f"{self.host}:{self.port}"


def _cel(expr: str) -> dict:
    return {
        "extension_filter": {
            "name": "envoy.access_loggers.extension_filters.cel",
            "typed_config": {
                "@type": T + "envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
                "expression": expr,
            },
        }
    }


def _scoped(filt: dict | None, scope: dict) -> dict:
    """An access-log filter that also requires ``scope`` (both must match)."""
    return {"and_filter": {"filters": [scope, filt]}} if filt else scope


def istio_patches(parts: GatewayParts, o: IstioOptions) -> list[dict]:
    """The EnvoyFilter's configPatches, in the order Istio applies them."""
    on_vhost = _cel(f"xds.virtual_host_name == '{o.virtual_host}'")
    listener_match = {"portNumber": o.port, "filterChain": {"filter": {"name": HCM}}}
    before_router = {"portNumber": o.port, "filterChain": {"filter": {"name": HCM, "subFilter": {"name": ROUTER}}}}
    vhost_match = {"portNumber": o.port, "vhost": {"name": o.virtual_host}}

    # Receipt ids come from x-request-id. The gateway's listener makes Envoy generate one for
    # every call (an edge request); a sidecar's outbound listener keeps the app's own. Reset it
    # first, so the app cannot choose (or repeat) its receipt ids.
    request_id = {
        "name": REQUEST_ID,
        "typed_config": {
            "@type": T + "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {
                "request_mutations": [
                    {
                        "append": {
                            "header": {"key": "x-request-id", "value": "%UNIQUE_ID%"},
                            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                        }
                    }
                ]
            },
        },
    }
    # ext_proc buffers the whole body within the stream's buffer limit, which a sidecar's listener
    # leaves at Envoy's default (1 MiB). The buffer filter raises it to the gateway listener's
    # limit, for relaygate's calls only (a route's request_body_buffer_limit covers only the
    # router's own buffering); it holds the call until the body is complete, which ext_proc's
    # buffered body mode does anyway.
    body_limit = {
        "name": BUFFER,
        "typed_config": {
            "@type": T + "envoy.extensions.filters.http.buffer.v3.Buffer",
            "max_request_bytes": parts.buffer_limit,
        },
    }
    chain = [request_id, body_limit] + [
        parts.filters[n] for n in (EXTPROC, CALL, JSON_USAGE, SSE_USAGE) if n not in NOT_IN_ISTIO_PROXY
    ]
    patches: list[dict] = []
    for f in chain:
        # Disabled in the connection manager, enabled on relaygate's virtual host only.
        patches.append(
            {
                "applyTo": "HTTP_FILTER",
                "match": {"context": "SIDECAR_OUTBOUND", "listener": before_router},
                "patch": {"operation": "INSERT_BEFORE", "value": {**copy.deepcopy(f), "disabled": True}},
            }
        )
    access_log = copy.deepcopy(parts.access_log)
    for entry in access_log:
        entry["filter"] = _scoped(entry.get("filter"), on_vhost)
    local_reply = copy.deepcopy(parts.local_reply_config)
    for m in local_reply["mappers"]:
        m["filter"] = _scoped(m.get("filter"), on_vhost)
    patches.append(
        {
            "applyTo": "NETWORK_FILTER",
            "match": {"context": "SIDECAR_OUTBOUND", "listener": listener_match},
            "patch": {
                "operation": "MERGE",
                "value": {
                    "name": HCM,
                    "typed_config": {
                        "@type": T
                        + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "access_log": access_log,
                        "local_reply_config": local_reply,
                    },
                },
            },
        }
    )
    vh = parts.virtual_host
    patches.append(
        {
            "applyTo": "VIRTUAL_HOST",
            "match": {"context": "SIDECAR_OUTBOUND", "routeConfiguration": vhost_match},
            "patch": {
                "operation": "MERGE",
                "value": {
                    "request_headers_to_remove": vh["request_headers_to_remove"],
                    "response_headers_to_add": vh["response_headers_to_add"],
                    "typed_per_filter_config": {f["name"]: {"@type": FILTER_CONFIG, "config": {}} for f in chain},
                },
            },
        }
    )
    # INSERT_FIRST without a route match prepends: insert the last route first, so the virtual
    # host starts with the gateway's routes in order, its 502 catch-all last (Istio's own
    # default route after it is never reached).
    for r in reversed(vh["routes"]):
        patches.append(
            {
                "applyTo": "HTTP_ROUTE",
                "match": {"context": "SIDECAR_OUTBOUND", "routeConfiguration": vhost_match},
                "patch": {"operation": "INSERT_FIRST", "value": r},
            }
        )
    for c in parts.clusters:
        patches.append(
            {"applyTo": "CLUSTER", "match": {"context": "SIDECAR_OUTBOUND"}, "patch": {"operation": "ADD", "value": c}}
        )
    return patches


def _labels(o_name: str) -> dict:
    return {
        "app.kubernetes.io/name": "relaygate",
        "app.kubernetes.io/component": "mesh",
        "app.kubernetes.io/part-of": o_name,
    }


def istio_manifests(cfg: GatewayConfig, o: IstioOptions) -> list[dict]:
    parts = gateway_parts(cfg, o.policy_address, o.message_timeout_ms)
    labels = _labels(o.name)
    docs: list[dict] = [
        {
            # No selector: no endpoints, never a destination. It gives the name apps call a DNS
            # entry and Istio a virtual host (the one the EnvoyFilter patches) on the sidecars'
            # outbound listener of its port.
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": o.service, "namespace": o.namespace, "labels": labels},
            "spec": {
                "type": "ClusterIP",
                "ports": [{"name": "http", "port": o.port, "protocol": "TCP", "appProtocol": "http"}],
            },
        },
    ]
    if o.service_entry:
        for u in cfg.upstreams:
            if _is_ip(u.host):
                continue  # a ServiceEntry names hosts; an upstream addressed by IP has none
            proto = "TLS" if u.tls else "HTTP"
            docs.append(
                {
                    "apiVersion": "networking.istio.io/v1",
                    "kind": "ServiceEntry",
                    "metadata": {
                        "name": f"{o.name}-upstream-{_dns_label(u.name)}",
                        "namespace": o.namespace,
                        "labels": labels,
                    },
                    "spec": {
                        "hosts": [u.host],
                        "location": "MESH_EXTERNAL",
                        "resolution": "DNS",
                        "ports": [{"number": u.port, "name": f"{proto.lower()}-{u.port}", "protocol": proto}],
                        "exportTo": ["."],
                    },
                }
            )
    docs.append(
        {
            "apiVersion": "networking.istio.io/v1alpha3",
            "kind": "EnvoyFilter",
            "metadata": {"name": o.name, "namespace": o.namespace, "labels": labels},
            "spec": {"workloadSelector": {"labels": dict(o.selector)}, "configPatches": istio_patches(parts, o)},
        }
    )
    return docs


# -- Envoy Gateway ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvoyGatewayOptions:
    namespace: str = "default"
    name: str = "relaygate"  # of the HTTPRoute and the policy objects, prefix of the others
    gateway: str = "relaygate"  # the Gateway the HTTPRoute attaches to
    gateway_namespace: str = ""  # "" = the same namespace
    hostnames: tuple[str, ...] = ()
    policy_service: str = "relaygate-policy"  # the Service in front of the policy pods
    policy_port: int = 9000  # their gRPC listener: ext_proc and the access log (settler)
    policy_selector: dict[str, str] = field(default_factory=lambda: {"app.kubernetes.io/name": "relaygate-policy"})
    envoy_gateway_namespace: str = "envoy-gateway-system"  # where Envoy Gateway runs its proxies
    message_timeout_ms: int = 2000


# What the gateway's chain has that Envoy Gateway's API cannot express (README.md, "limits").
ENVOY_GATEWAY_LIMITS = (
    "no usage filters (json_to_metadata, sse_to_metadata): receipts settle at the reservation, never the provider's usage",
    "no local_reply_config: Envoy's own replies (upstream down, timeouts, policy service down) are not in relaygate's JSON error shape",
    "ext_proc without mutation_rules.allow_envoy: the policy service cannot remove client-sent x-envoy-* headers",
    "no pre-auth guard and local rate limit",
    "one policy replica: the access log entry of a call must reach the replica that decided it",
)


def _duration(text: str) -> str:
    """An Envoy duration ("2.000s") as a Gateway API Duration ("2s", "2500ms")."""
    ms = round(float(text.rstrip("s")) * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


BODY_MODES = {"BUFFERED": "Buffered", "STREAMED": "Streamed", "BUFFERED_PARTIAL": "BufferedPartial"}


def eg_extproc(parts: GatewayParts, o: EnvoyGatewayOptions) -> dict:
    """The gateway's ext_proc filter as an EnvoyExtensionPolicy extProc entry; anything the CRD
    cannot express is refused (ENVOY_GATEWAY_LIMITS lists what is knowingly left out)."""
    ep = parts.filters[EXTPROC]["typed_config"]
    mode = ep["processing_mode"]
    out: dict = {"backendRefs": [{"name": o.policy_service, "port": o.policy_port}]}
    pm: dict = {}
    if mode.get("request_header_mode") == "SEND":
        pm["request"] = {}
        if mode.get("request_body_mode", "NONE") != "NONE":
            pm["request"]["body"] = BODY_MODES[mode["request_body_mode"]]
    elif mode.get("request_body_mode", "NONE") != "NONE":
        raise ValueError("Envoy Gateway sends request headers whenever it sends the request body")
    if mode.get("response_header_mode") == "SEND" or mode.get("response_body_mode", "NONE") != "NONE":
        raise ValueError("relaygate's ext_proc has no response side; mesh.py does not map one")
    out["processingMode"] = pm
    out["messageTimeout"] = _duration(ep["message_timeout"])
    out["failOpen"] = bool(ep.get("failure_mode_allow", False))
    if "status_on_error" in ep:
        out["statusOnError"] = ep["status_on_error"]["code"]
    recv = ep.get("metadata_options", {}).get("receiving_namespaces", {}).get("untyped")
    if recv:
        out["metadata"] = {"writableNamespaces": list(recv)}
    return out


def eg_extproc_filter(extproc: dict, cluster: str, name: str = "envoy.filters.http.ext_proc/relaygate") -> dict:
    """The HTTP filter Envoy Gateway v1.9 builds from an extProc entry (internal/xds/translator/
    extproc.go: extProcConfig, buildProcessingMode), for validating it with a real Envoy."""
    pm = extproc.get("processingMode") or {}
    mode = {
        "request_header_mode": "SKIP",
        "response_header_mode": "SKIP",
        "request_body_mode": "NONE",
        "response_body_mode": "NONE",
        "request_trailer_mode": "SKIP",
        "response_trailer_mode": "SKIP",
    }
    rev = {v: k for k, v in BODY_MODES.items()}
    for side in ("request", "response"):
        if side in pm:
            mode[f"{side}_header_mode"] = "SEND"
            if "body" in pm[side]:
                mode[f"{side}_body_mode"] = rev[pm[side]["body"]]
    cfg: dict = {
        "@type": T + "envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
        "grpc_service": {"envoy_grpc": {"cluster_name": cluster}, "timeout": "10s"},
        "processing_mode": mode,
        "failure_mode_allow": bool(extproc.get("failOpen", False)),
        "allow_mode_override": bool(pm.get("allowModeOverride", False)),
    }
    if "messageTimeout" in extproc:
        t = extproc["messageTimeout"]
        cfg["message_timeout"] = f"{int(t[:-2]) / 1000}s" if t.endswith("ms") else t
    md = extproc.get("metadata") or {}
    if md.get("writableNamespaces") or md.get("accessibleNamespaces"):
        cfg["metadata_options"] = {}
        if md.get("accessibleNamespaces"):
            cfg["metadata_options"]["forwarding_namespaces"] = {"untyped": md["accessibleNamespaces"]}
        if md.get("writableNamespaces"):
            cfg["metadata_options"]["receiving_namespaces"] = {"untyped": md["writableNamespaces"]}
    if "statusOnError" in extproc:
        cfg["status_on_error"] = {"code": extproc["statusOnError"]}
    return {"name": name, "disabled": True, "typed_config": cfg}


def _header_list(items: list[dict]) -> list[dict]:
    return [{"name": h["header"]["key"], "value": h["header"]["value"]} for h in items]


def envoy_gateway_manifests(cfg: GatewayConfig, o: EnvoyGatewayOptions) -> list[dict]:
    policy_addr = f"{o.policy_service}.{o.namespace}.svc:{o.policy_port}"  # unused by EG; keeps parts whole
    parts = gateway_parts(cfg, policy_addr, o.message_timeout_ms)
    labels = _labels(o.name)
    ns = o.namespace
    meta = lambda name: {"name": name, "namespace": ns, "labels": labels}  # noqa: E731
    vh = parts.virtual_host
    backends: list[dict] = []
    rules: list[dict] = []
    for r in vh["routes"]:
        if "direct_response" in r:
            continue
        u = next(u for u in cfg.upstreams if u.cluster == r["route"]["cluster"])
        bname = f"{o.name}-{_dns_label(u.name)}"
        endpoint = (
            {"ip": {"address": u.host, "port": u.port}}
            if _is_ip(u.host)
            else {"fqdn": {"hostname": u.host, "port": u.port}}
        )
        backends.append(
            {
                "apiVersion": "gateway.envoyproxy.io/v1alpha1",
                "kind": "Backend",
                "metadata": meta(bname),
                "spec": {"endpoints": [endpoint]},
            }
        )
        if u.tls:
            validation = {"hostname": u.host}
            if u.ca_file:
                validation["caCertificateRefs"] = [{"group": "", "kind": "ConfigMap", "name": f"{bname}-ca"}]
            else:
                validation["wellKnownCACertificates"] = "System"
            backends.append(
                {
                    "apiVersion": "gateway.networking.k8s.io/v1",
                    "kind": "BackendTLSPolicy",
                    "metadata": meta(bname),
                    "spec": {
                        "targetRefs": [{"group": "gateway.envoyproxy.io", "kind": "Backend", "name": bname}],
                        "validation": validation,
                    },
                }
            )
        (hdr,) = r["match"]["headers"]
        filters = [
            {
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": {"remove": list(vh["request_headers_to_remove"])},
            },
            {
                "type": "ResponseHeaderModifier",
                "responseHeaderModifier": {"set": _header_list(vh["response_headers_to_add"])},
            },
        ]
        host = r["route"]["host_rewrite_literal"]
        if ":" not in host:  # Gateway API's hostname rewrite takes no port
            filters.append({"type": "URLRewrite", "urlRewrite": {"hostname": host}})
        rules.append(
            {
                "name": _dns_label(r["name"]),
                "matches": [
                    {
                        "path": {"type": "PathPrefix", "value": r["match"]["prefix"]},
                        "headers": [{"type": "Exact", "name": hdr["name"], "value": hdr["string_match"]["exact"]}],
                    }
                ],
                "filters": filters,
                "backendRefs": [{"group": "gateway.envoyproxy.io", "kind": "Backend", "name": bname}],
                "timeouts": {"request": _duration(r["route"]["timeout"])},
            }
        )
    (unrouted,) = [r for r in vh["routes"] if "direct_response" in r]
    unrouted_filter = f"{o.name}-unrouted"
    rules.append(
        {
            # Before the policy decided (ext_proc runs on the route a call matched first, and Envoy
            # Gateway enables it per route) and after it chose no upstream: never an upstream.
            "name": _dns_label(unrouted["name"]),
            "matches": [{"path": {"type": "PathPrefix", "value": unrouted["match"]["prefix"]}}],
            "filters": [
                {
                    "type": "ResponseHeaderModifier",
                    "responseHeaderModifier": {"set": _header_list(vh["response_headers_to_add"])},
                },
                {
                    "type": "ExtensionRef",
                    "extensionRef": {
                        "group": "gateway.envoyproxy.io",
                        "kind": "HTTPRouteFilter",
                        "name": unrouted_filter,
                    },
                },
            ],
        }
    )
    parent = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": o.gateway}
    if o.gateway_namespace:
        parent["namespace"] = o.gateway_namespace
    route_spec: dict = {"parentRefs": [parent], "rules": rules}
    if o.hostnames:
        route_spec["hostnames"] = list(o.hostnames)
    policy_port_name = "grpc"
    access_log = parts.access_log[0]["typed_config"]["common_config"]
    docs: list[dict] = [
        {
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "EnvoyExtensionPolicy",
            "metadata": meta(o.name),
            "spec": {
                "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": o.name}],
                "extProc": [eg_extproc(parts, o)],
                # The gateway's response-side Lua (header allow-list, response digest), unchanged.
                "lua": [
                    {
                        "type": "Inline",
                        "inline": parts.filters[CALL]["typed_config"]["default_source_code"]["inline_string"],
                    }
                ],
            },
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": meta(o.name),
            "spec": route_spec,
        },
        {
            # ext_proc buffers the whole body: the gateway listener's buffer limit, on this route
            # (Envoy Gateway's connection default is 32 KiB). A larger body is Envoy's 413.
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "BackendTrafficPolicy",
            "metadata": meta(o.name),
            "spec": {
                "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": o.name}],
                "requestBuffer": {"limit": parts.buffer_limit},
            },
        },
        {
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "HTTPRouteFilter",
            "metadata": meta(unrouted_filter),
            "spec": {"directResponse": {"statusCode": unrouted["direct_response"]["status"]}},
        },
        *backends,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(o.policy_service),
            "spec": {
                "type": "ClusterIP",
                "selector": dict(o.policy_selector),
                "ports": [
                    {
                        "name": policy_port_name,
                        "port": o.policy_port,
                        "targetPort": o.policy_port,
                        "protocol": "TCP",
                        "appProtocol": "kubernetes.io/h2c",
                    }
                ],
            },
        },
        {
            # The policy service's gRPC port answers ext_proc for anyone who can connect, and an
            # allowed call's reply carries the provider credential: only Envoy Gateway's proxies
            # may reach it.
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta(o.policy_service),
            "spec": {
                "podSelector": {"matchLabels": dict(o.policy_selector)},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": o.envoy_gateway_namespace}
                                },
                                "podSelector": {
                                    "matchLabels": {
                                        "app.kubernetes.io/managed-by": "envoy-gateway",
                                        "app.kubernetes.io/component": "proxy",
                                    }
                                },
                            }
                        ],
                        "ports": [{"port": o.policy_port, "protocol": "TCP"}],
                    }
                ],
            },
        },
        {
            # The gateway's gRPC access log to the settler, as an Envoy Gateway telemetry sink.
            # Referenced by the Gateway (spec.infrastructure.parametersRef) or its GatewayClass.
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "EnvoyProxy",
            "metadata": meta(o.name),
            "spec": {
                "telemetry": {
                    "accessLog": {
                        "settings": [
                            {
                                "matches": [f"xds.route_name.startsWith('httproute/{ns}/{o.name}/')"],
                                "sinks": [
                                    {
                                        "type": "ALS",
                                        "als": {
                                            "type": "HTTP",
                                            "logName": access_log["log_name"],
                                            "backendRefs": [
                                                {
                                                    "group": "",
                                                    "kind": "Service",
                                                    "name": o.policy_service,
                                                    "port": o.policy_port,
                                                }
                                            ],
                                        },
                                    }
                                ],
                            }
                        ]
                    }
                }
            },
        },
    ]
    return docs


# -- output -----------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data) -> bool:  # every object written out in full: no &id001 anchors
        return True


def _str(dumper: yaml.SafeDumper, s: str):
    return dumper.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s else None)


_Dumper.add_representer(str, _str)


def to_yaml(docs: list[dict], header: str = "") -> str:
    body = yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, width=120, explicit_start=True)
    return "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines()) + body


def _kv(pairs: list[str] | None, default: dict[str, str]) -> dict[str, str]:
    if not pairs:
        return dict(default)
    out = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        if not sep or not k:
            raise SystemExit(f"expected KEY=VALUE, got {p!r}")
        out[k] = v
    return out


def main(argv: list[str] | None = None) -> None:
    """Write the Kubernetes manifests that put relaygate's policy chain into a mesh (YAML)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m relaygate.envoy.mesh", description=main.__doc__)
    sub = p.add_subparsers(dest="mesh", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config-dir", default="config", help="the config directory (gateway.yaml, upstreams.yaml)")
    common.add_argument("--namespace", default="default")
    common.add_argument("--name", default="relaygate", help="name of the main object, prefix of the others")
    common.add_argument("--message-timeout-ms", type=int, default=2000, help="ext_proc message timeout")
    common.add_argument("--out", default="-", help="file to write (default: stdout)")
    i = sub.add_parser("istio", parents=[common], help="EnvoyFilter + Service + ServiceEntry for Istio sidecars")
    i.add_argument(
        "--selector",
        action="append",
        metavar="KEY=VALUE",
        help="app pod labels (repeatable; default relaygate.io/mesh=enabled)",
    )
    i.add_argument("--service", default="relaygate-mesh", help="the name apps call (a selector-less Service)")
    i.add_argument("--port", type=int, default=80, help="its port")
    i.add_argument("--cluster-domain", default="cluster.local")
    i.add_argument(
        "--policy-address",
        default=DEFAULT_POLICY_ADDRESS,
        help=f"the policy container's gRPC address as istio-proxy reaches it (default {DEFAULT_POLICY_ADDRESS})",
    )
    i.add_argument("--no-service-entry", action="store_true", help="no ServiceEntry for the provider hosts")
    e = sub.add_parser(
        "envoy-gateway", parents=[common], help="EnvoyExtensionPolicy + HTTPRoute + Backends for Envoy Gateway"
    )
    e.add_argument("--gateway", default="relaygate", help="the Gateway the HTTPRoute attaches to")
    e.add_argument("--gateway-namespace", default="", help="its namespace (default: --namespace)")
    e.add_argument("--hostname", action="append", default=[], help="HTTPRoute hostnames (repeatable)")
    e.add_argument("--policy-service", default="relaygate-policy")
    e.add_argument("--policy-port", type=int, default=9000)
    e.add_argument(
        "--policy-selector",
        action="append",
        metavar="KEY=VALUE",
        help="policy pod labels (default app.kubernetes.io/name=relaygate-policy)",
    )
    e.add_argument("--envoy-gateway-namespace", default="envoy-gateway-system")
    a = p.parse_args(argv)
    cfg = load_config(a.config_dir)
    if a.mesh == "istio":
        o = IstioOptions(
            namespace=a.namespace,
            name=a.name,
            selector=_kv(a.selector, IstioOptions().selector),
            service=a.service,
            port=a.port,
            cluster_domain=a.cluster_domain,
            policy_address=a.policy_address,
            service_entry=not a.no_service_entry,
            message_timeout_ms=a.message_timeout_ms,
        )
        docs = istio_manifests(cfg, o)
        notes = f"Checked against Istio {ISTIO_VERSION}. Install steps: deploy/mesh/README.md."
        skipped = [f"{u.name} ({u.host}:{u.port})" for u in cfg.upstreams if _is_ip(u.host)]
        if o.service_entry and skipped:
            notes += "\nNo ServiceEntry for upstreams addressed by IP: " + ", ".join(skipped) + "."
    else:
        o = EnvoyGatewayOptions(
            namespace=a.namespace,
            name=a.name,
            gateway=a.gateway,
            gateway_namespace=a.gateway_namespace,
            hostnames=tuple(a.hostname),
            policy_service=a.policy_service,
            policy_port=a.policy_port,
            policy_selector=_kv(a.policy_selector, EnvoyGatewayOptions().policy_selector),
            envoy_gateway_namespace=a.envoy_gateway_namespace,
            message_timeout_ms=a.message_timeout_ms,
        )
        docs = envoy_gateway_manifests(cfg, o)
        notes = (
            f"Checked against Envoy Gateway {ENVOY_GATEWAY_VERSION}. Install steps and limits: deploy/mesh/README.md.\n"
        )
        notes += "Lacks, next to the standalone gateway:\n" + "\n".join(f"- {x}" for x in ENVOY_GATEWAY_LIMITS)
    shown = [x for k, x in enumerate(argv) if x != "--out" and (k == 0 or argv[k - 1] != "--out")]
    shown = [x for x in shown if not x.startswith("--out=")]
    header = (
        "Generated by: python -m relaygate.envoy.mesh " + shlex.join(shown) + "\nDo not edit: regenerate.\n" + notes
    )
    text = to_yaml(docs, header)
    if a.out == "-":
        sys.stdout.write(text)
    else:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text)


if __name__ == "__main__":
    main()
