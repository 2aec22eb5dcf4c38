"""`make run` (python -m devstack.run): start the whole stack on embedded defaults and show it working.

Starts the provider simulator, relaygate-extproc and Envoy from config/ and
policies/, sends a short tour of calls (curl, the openai and anthropic SDKs,
an allowed call, a stream and denials), prints what came back with each
call's signed receipt, then keeps serving until Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from relaygate.evidence.receipts import envelope_receipt
from devstack.processes import ROOT, Stack

DEMO_KEYS = {}
for line in (ROOT / "config" / "demo-keys.txt").read_text().splitlines():
    if line.startswith("acme (all"):
        DEMO_KEYS["acme"] = line.split()[-1]
    elif line.startswith("acme (embeddings"):
        DEMO_KEYS["acme-embed"] = line.split()[-1]
    elif line.startswith("euro"):
        DEMO_KEYS["euro"] = line.split()[-1]


def _say(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def _cacert(stack: Stack) -> list[str]:
    """curl's flag to trust the local CA (empty with --plaintext)."""
    return ["--cacert", str(stack.ca)] if stack.tls else []


def _shown_cacert(stack: Stack) -> str:
    return f" --cacert {stack.ca}" if stack.tls else ""


def _relay(stack: Stack, key: str, body: str) -> dict:
    """POST /api/relay with curl, as the tour shows it."""
    out = subprocess.run(
        ["curl", "-sS", *_cacert(stack), stack.cp_url + "/api/relay", "-H", f"x-api-key: {key}",
         "-H", "Content-Type: application/json", "-d", body],
        capture_output=True, text=True,
    ).stdout  # fmt: skip
    return json.loads(out)


def _receipt(stack: Stack, rid: str) -> dict:
    for _ in range(200):
        try:
            with urllib.request.urlopen(f"{stack.extproc_admin}/receipts/{rid}") as r:
                if r.status == 200:
                    return envelope_receipt(json.load(r))
        except urllib.error.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"receipt {rid} was not finalized")


def _curl(stack: Stack, key: str, ws: str, body: dict, extra: list[str] = ()) -> str:
    cmd = [
        "curl",
        "-sS",
        "-i",
        *_cacert(stack),
        f"{stack.gateway}/v1/{ws}/chat/completions",
        "-H",
        f"Authorization: Bearer {key}",
        "-H",
        "Content-Type: application/json",
        "-d",
        json.dumps(body),
        *extra,
    ]
    print(
        f"$ curl{_shown_cacert(stack)}",
        f"{stack.gateway}/v1/{ws}/chat/completions",
        "-H 'Authorization: Bearer ro_live_…'",
        f"-d '{json.dumps(body)}'",
    )
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    print(out.strip())
    rid = [
        line.split(":", 1)[1].strip() for line in out.splitlines() if line.lower().startswith("x-relayone-receipt-id:")
    ]
    return rid[0] if rid else ""


def tour(stack: Stack) -> str:
    """The calls; returns the first call's receipt id (the observability step follows it)."""
    import anthropic
    import openai

    key = DEMO_KEYS["acme"]
    _say("1. An allowed call with curl (routed to openai-us, credential swapped, receipt returned)")
    rid = _curl(
        stack,
        key,
        "acme",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 20},
    )
    first = rid
    r = _receipt(stack, rid)
    print("receipt:", json.dumps({k: r[k] for k in ("id", "decision", "upstream", "usage", "cost")}, indent=1))

    # The SDKs trust the local CA through their HTTP client (a production gateway has a
    # certificate from a CA the system already trusts, and base_url stays the only change).
    http = {"http_client": openai.DefaultHttpxClient(verify=stack.client_ssl())} if stack.tls else {}
    _say("2. The openai SDK, streaming (base_url is the only change)")
    client = openai.OpenAI(base_url=f"{stack.gateway}/v1/acme", api_key=key, max_retries=0, **http)
    stream = client.chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "Stream a sentence"}]
    )
    print("".join(c.choices[0].delta.content or "" for c in stream if c.choices))

    _say("3. The anthropic SDK")
    claude = anthropic.Anthropic(
        base_url=f"{stack.gateway}/v1/acme",
        api_key=key,
        max_retries=0,
        **({"http_client": anthropic.DefaultHttpxClient(verify=stack.client_ssl())} if stack.tls else {}),
    )
    msg = claude.messages.create(
        model="claude-haiku-4-5", max_tokens=32, messages=[{"role": "user", "content": "Hi Claude"}]
    )
    print(msg.content[0].text, "| usage:", msg.usage.input_tokens, "in,", msg.usage.output_tokens, "out")

    _say("4. Sovereignty: workspace 'euro' may only reach EEA upstreams, so it is routed to openai-eu")
    rid = _curl(
        stack, DEMO_KEYS["euro"], "euro", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Bonjour"}]}
    )
    print("served by:", _receipt(stack, rid)["upstream"])

    _say("5. Sovereignty block: 'euro' asks for a model only a US upstream serves -> 451")
    _curl(stack, DEMO_KEYS["euro"], "euro", {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]})

    _say("6. Scope: an embeddings-only key calls chat -> 403")
    _curl(
        stack, DEMO_KEYS["acme-embed"], "acme", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
    )

    _say("7. A forged key -> 401, still with a receipt")
    _curl(stack, "ro_live_AAAAAAAAAAAA_forged", "acme", {"model": "gpt-4o-mini", "messages": []})

    if stack.controlplane:
        control_plane_tour(stack, key)
    return first


SPEND_BY_MODEL = "sum by (model) (relaygate_cost_usd_micros_total) / 1e6"
# The RelayPlane reference's POST /api/relay example, byte for byte (../shared/seeds): it names
# the reference's own models, which the catalog resolves as aliases (config/upstreams.yaml).
REFERENCE_RELAY_EXAMPLE = """{
  "to": "claude-3-sonnet",
  "payload": {
    "model": "claude-3-sonnet-20240229",
    "max_tokens": 1000,
    "messages": [
      {
        "role": "user",
        "content": "What is the capital of France?"
      }
    ]
  },
  "metadata": {
    "user_id": "user_123",
    "session": "session_456"
  }
}
"""
TOUR_MODELS = {"gpt-4o-mini", "claude-haiku-4-5", "claude-sonnet-4-5"}  # the models of the tour's allowed calls


def observability_tour(stack: Stack, prom, receiver, rid: str, step: int) -> None:
    """Prometheus has scraped the calls above; the first call's trace is in the receiver."""
    import urllib.parse

    from devstack.otlp import trace_of_receipt, tree

    if prom is not None:
        _say(f"{step}. Prometheus scrapes the sidecar, Envoy and the control plane: spend by model (USD)")
        print(f"$ curl {prom.url}/api/v1/query --data-urlencode 'query={SPEND_BY_MODEL}'")

        def scraped():  # every model the tour's allowed calls used, settled and scraped (2 s interval)
            rows = prom.query(SPEND_BY_MODEL)
            return rows if {r["metric"].get("model") for r in rows} >= TOUR_MODELS else None

        rows = _until(scraped, "Prometheus's scrape of the tour's spend", timeout=30)
        for row in sorted(rows, key=lambda r: r["metric"].get("model", "")):
            print(f"  {row['metric'].get('model', '?'):<20} {float(row['value'][1]):.6f}")
        print(f"graph: {prom.url}/graph?g0.expr={urllib.parse.quote(SPEND_BY_MODEL)}&g0.tab=0")
    if receiver is not None:
        step += prom is not None
        _say(f"{step}. Tracing: the receipt id leads to the call's trace (Envoy's spans and the policy decision)")
        out = stack.run_dir / "traces.jsonl"
        print(f"$ python -m devstack.otlp show {out} --receipt {rid}")

        def arrived():
            spans = trace_of_receipt(receiver.spans(), rid)
            return spans if {s["service"] for s in spans} >= {"relaygate-envoy", "relaygate-policy"} else None

        spans = _until(arrived, "the first call's trace", timeout=30)
        print(f"trace {spans[0]['trace_id']}")
        print(tree(spans))


POLICY = """name: no-gpt-4o
description: gpt-4o is not approved for acme
rego: |
  package no_gpt_4o
  import rego.v1
  deny contains "gpt-4o is not approved for acme" if input.model == "gpt-4o"
"""


def _cp(
    stack: Stack,
    method: str,
    path: str,
    token: str,
    body: str | None = None,
    ctype: str = "application/json",
    show: bool = True,
) -> dict:
    cmd = ["curl", "-sS", *_cacert(stack), "-X", method, stack.cp_url + path, "-H", f"Authorization: Bearer {token}"]
    if body is not None:
        cmd += ["-H", f"Content-Type: {ctype}", "--data-binary", body]
    if show:
        shown = (
            f"-H 'Content-Type: {ctype}' --data-binary @policy.yaml"
            if ctype.endswith("yaml")
            else (f"-d '{body}'" if body else "")
        )
        print(
            f"$ curl{_shown_cacert(stack)} -X {method} {stack.cp_url}{path} -H 'Authorization: Bearer ro_live_…' "
            f"{shown}".rstrip()
        )
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out) if out.strip() else {}


def _until(check, what: str, timeout: float = 15.0):
    """Poll until ``check`` returns something truthy (a condition, never a fixed wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not happen within {timeout}s")


def ops_grpc_tour(stack: Stack) -> None:
    """The same fleet over the fleet-operations gRPC service, with its generated Python stub."""
    import grpc

    from relaygate.controlplane.fleetops import fleet_operations_pb2 as pb
    from relaygate.controlplane.fleetops import fleet_operations_pb2_grpc as pb_grpc

    print(f"    ... and over gRPC (127.0.0.1:{stack.ops_grpc_port}, relaygate.fleet.v1.FleetOperations):")
    target = f"127.0.0.1:{stack.ops_grpc_port}"
    with (
        grpc.secure_channel(target, grpc.ssl_channel_credentials(stack.pki.ca.read_bytes()))
        if stack.tls
        else grpc.insecure_channel(target)
    ) as channel:
        stub = pb_grpc.FleetOperationsStub(channel)
        auth = (("authorization", f"Bearer {stack.admin_token}"),)
        for i in stub.ListInstances(pb.ListInstancesRequest(), metadata=auth, timeout=10).instances:
            print(f"    ListInstances: {i.id} tenant={i.tenant} stale={i.stale} bundle={i.bundle_revision[:12]}")
        last = list(stub.StreamAuditEvents(pb.StreamAuditEventsRequest(kinds=["policy.*"]), metadata=auth, timeout=10))
        print(
            f"    StreamAuditEvents(kinds=policy.*): {len(last)} events, the last {last[-1].kind} by {last[-1].actor}"
        )


def control_plane_tour(stack: Stack, key: str) -> None:
    _say("8. The control plane: create a policy from YAML (workspace acme blocks gpt-4o)")
    print(POLICY)
    pol = _cp(stack, "POST", "/v1/policies", key, POLICY, "application/yaml")
    if pol.get("error", {}).get("code") == "policy.exists":  # left over from an interrupted run
        old = pol["error"]["message"].split("(")[1].split(")")[0]
        _cp(stack, "DELETE", f"/v1/policies/{old}", key, show=False)
        pol = _cp(stack, "POST", "/v1/policies", key, POLICY, "application/yaml", show=False)
    print(f"-> {pol['id']} version {pol['current_version']}; the sidecar's long poll picks up the new bundle")

    def blocked():
        out = subprocess.run(
            [
                "curl",
                "-sS",
                *_cacert(stack),
                f"{stack.gateway}/v1/acme/chat/completions",
                "-H",
                f"Authorization: Bearer {key}",
                "-H",
                "Content-Type: application/json",
                "-d",
                json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}),
            ],
            capture_output=True,
            text=True,
        ).stdout
        return out if '"policy.blocked"' in out else None

    print(f'$ curl{_shown_cacert(stack)} … /v1/acme/chat/completions -d \'{{"model": "gpt-4o", …}}\'')
    out = _until(blocked, "the policy reaching the gateway")
    print(out)
    rid = json.loads(out)["error"]["receipt_id"]

    _say("9. Dry run: evaluate the policy against an example, nothing enforced")
    dry = _cp(
        stack,
        "POST",
        f"/v1/policies/{pol['id']}/dryrun",
        key,
        json.dumps({"request": {"endpoint": "chat.completions", "body": {"model": "gpt-4o"}}}),
    )
    print(json.dumps(dry["decision"], indent=1))

    _say("10. The blocked call's signed receipt in the audit feed")
    ev = _until(
        lambda: (e := _cp(stack, "GET", f"/v1/audit/events/{rid}", key, show=False)).get("id") and e,
        "the receipt reaching the audit feed",
    )
    print(f"$ curl{_shown_cacert(stack)} {stack.cp_url}/v1/audit/events/{rid} -H 'Authorization: Bearer ro_live_…'")
    print(json.dumps({k: ev[k] for k in ("id", "kind", "decision", "status", "code", "policies")}, indent=1))
    print("signatures:", json.dumps(ev["receipt"]["signatures"]))

    _say("11. RelayPlane: /api/relay through the gateway; gpt-5 is served nowhere (404), so it falls back")
    relay = _relay(
        stack,
        key,
        json.dumps(
            {
                "to": "gpt-5",
                "fallback": ["claude-haiku-4-5"],
                "payload": {"max_tokens": 20, "messages": [{"role": "user", "content": "Hi"}]},
                "metadata": {"user_id": "user_123"},
            }
        ),
    )
    print(
        f"$ curl{_shown_cacert(stack)}",
        stack.cp_url + "/api/relay -H 'x-api-key: ro_live_…' -d "
        '\'{"to": "gpt-5", "fallback": ["claude-haiku-4-5"], …}\'',
    )
    print(
        json.dumps({k: relay[k] for k in ("relay_id", "status_code", "model", "fallback_used", "attempts")}, indent=1)
    )

    _say("    The RelayPlane reference's own example, verbatim: claude-3-sonnet is an alias in the catalog")
    relay = _relay(stack, key, REFERENCE_RELAY_EXAMPLE)
    print(f"$ curl{_shown_cacert(stack)}", stack.cp_url + "/api/relay -H 'x-api-key: ro_live_…' -d '")
    print(REFERENCE_RELAY_EXAMPLE.strip() + "'")
    served = _receipt(stack, relay["receipt_id"]) if relay.get("receipt_id") else {}
    print(
        json.dumps(
            {
                **{k: relay[k] for k in ("status_code", "latency_ms", "model", "receipt_id")},
                "body.content": relay["body"].get("content") if isinstance(relay["body"], dict) else relay["body"],
                "receipt model": served.get("model"),
            },
            indent=1,
        )
    )

    _say("12. Revoke the policy again (soft delete; its versions stay readable)")
    _cp(stack, "DELETE", f"/v1/policies/{pol['id']}", key)
    print("deleted")

    _say("13. Evidence: a bundle of this workspace's receipts, assembled as a job, verified offline")
    held = stack.run_dir / "held-checkpoint.json"  # a tree head the auditor keeps: the bundle must extend it
    held.write_text(json.dumps(_cp(stack, "GET", "/v1/audit/checkpoints/latest", key, show=False)))
    job = _cp(
        stack,
        "POST",
        "/v1/evidence/bundles",
        key,
        json.dumps({"components": ["receipts", "policies", "key_custody", "deployments", "fleet_posture"]}),
    )
    print(f"-> job {job['id']}: {job['status']}")
    done = _until(
        lambda: (j := _cp(stack, "GET", f"/v1/evidence/bundles/{job['id']}/status", key, show=False))["status"]
        in ("done", "failed")
        and j,
        "the evidence bundle",
        60,
    )
    print(f"   {done['status']}: {done['stats']} ({done['size_bytes']} bytes, sha256 {done['sha256'][:16]}…)")
    out = stack.run_dir / "evidence.tar.gz"
    subprocess.run(
        [
            "curl",
            "-sS",
            *_cacert(stack),
            "-o",
            str(out),
            "-H",
            f"Authorization: Bearer {key}",
            f"{stack.cp_url}/v1/evidence/bundles/{job['id']}",
        ],
        check=True,
    )
    root = stack.run_dir / "control-plane-root.pub"
    root.write_text(_cp(stack, "GET", "/v1/audit/keys", key, show=False)["root_public_key"])
    print(f"$ relaygate verify {out} --trusted-key {root} --after-checkpoint {held}")
    verify = subprocess.run(
        [
            sys.executable,
            "-m",
            "relaygate.evidence.cli",
            "verify",
            str(out),
            "--trusted-key",
            str(root),
            "--after-checkpoint",
            str(held),
        ],
        capture_output=True,
        text=True,
    )
    print(verify.stdout.strip())

    _say("14. The fleet: this gateway's Envoy took its listener, routes and clusters over xDS")
    print(
        f"$ curl{_shown_cacert(stack)} {stack.cp_url}/v1/fleet/instances -H 'Authorization: Bearer $RELAYGATE_ADMIN_TOKEN'"
    )
    inst = _until(
        lambda: next(
            (
                i
                for i in _cp(stack, "GET", "/v1/fleet/instances", stack.admin_token, show=False)["instances"]
                if i["id"] == stack.instance_id and i["xds"].get("applied")
            ),
            None,
        ),
        "the gateway's xDS posture",
    )
    print(
        json.dumps(
            {
                "id": inst["id"],
                "tenant": inst["tenant"],
                "stale": inst["stale"],
                "bundle_revision": inst["posture"].get("bundle_revision"),
                "xds": {k: inst["xds"].get(k) for k in ("connected", "applied", "last_nack")},
            },
            indent=1,
        )
    )
    print(
        f"$ curl{_shown_cacert(stack)} {stack.cp_url}/v1/fleet/health -H 'Authorization: Bearer $RELAYGATE_ADMIN_TOKEN'"
    )
    health = _cp(stack, "GET", "/v1/fleet/health", stack.admin_token, show=False)
    print(
        json.dumps(
            [
                {k: t.get(k) for k in ("tenant", "status", "instances", "live", "evidence_emission")}
                for t in health["tenants"]
            ],
            indent=1,
        )
    )
    if stack.ops_grpc_port:
        ops_grpc_tour(stack)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m devstack.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--gateway-port", type=int, default=8080)
    p.add_argument("--envoy-admin-port", type=int, default=9901)
    p.add_argument("--admin-port", type=int, default=9464, help="relaygate-extproc admin port")
    p.add_argument("--run-dir", default=str(ROOT / ".run"))
    p.add_argument("--workers", type=int, default=1, help="policy worker processes behind one Envoy cluster")
    p.add_argument("--cp-port", type=int, default=8090, help="control-plane API port")
    p.add_argument("--xds-port", type=int, default=18000, help="control-plane ADS (xDS) port Envoy connects to")
    p.add_argument("--ops-port", type=int, default=8094, help="control-plane fleet-operations gRPC port (0: off)")
    p.add_argument(
        "--no-control-plane", action="store_true", help="standalone sidecar reading config/ and policies/ itself"
    )
    p.add_argument("--database-url", default="", help="control-plane database (default: SQLite in the run dir)")
    p.add_argument("--demo-only", action="store_true", help="stop after the tour instead of serving")
    p.add_argument(
        "--plaintext",
        action="store_true",
        help="local development only: serve the gateway, control plane and xDS without TLS",
    )
    p.add_argument(
        "--fleet-mtls",
        action="store_true",
        help="the control plane also opens an mTLS-only fleet port (--fleet-port) for the sidecar, "
        "xDS requires client certificates, and the fleet token alone is refused",
    )
    p.add_argument("--fleet-port", type=int, default=8091, help="with --fleet-mtls: the fleet port")
    p.add_argument(
        "--prometheus-port", type=int, default=9090, help="a Prometheus scraping the stack (0: do not start one)"
    )
    p.add_argument(
        "--otlp-port",
        type=int,
        default=4317,
        help="a trace receiver Envoy and the sidecar send OTLP/gRPC to, spans kept in RUN_DIR/traces.jsonl "
        "(0: no tracing)",
    )
    a = p.parse_args(argv)
    os.umask(0o077)  # the run dir holds keys, databases and logs: owner-only (relaygate/contract/private_files.py)
    if a.plaintext and a.fleet_mtls:
        p.error("--fleet-mtls needs TLS (drop --plaintext)")
    stack = Stack(
        Path(a.run_dir),
        gateway_port=a.gateway_port,
        envoy_admin_port=a.envoy_admin_port,
        extproc_admin_port=a.admin_port,
        workers=a.workers,
        controlplane=not a.no_control_plane,
        cp_port=a.cp_port,
        xds_port=a.xds_port,
        ops_grpc_port=a.ops_port,
        database_url=a.database_url,
        tls=not a.plaintext,
        fleet_mtls=a.fleet_mtls,
        cp_fleet_port=a.fleet_port,
    )
    receiver = prom = None
    if a.otlp_port:
        from devstack.otlp import Receiver

        try:
            receiver = Receiver(a.otlp_port, out=Path(a.run_dir) / "traces.jsonl").start()
        except OSError as e:
            raise SystemExit(f"the trace receiver: {e} (pass --otlp-port, or 0 for no tracing)")
        stack.otlp_endpoint = receiver.address
    print(f"starting relaygate (logs in {a.run_dir}) ...", flush=True)
    if stack.tls:
        print(
            f"TLS: a local CA and certificates in {stack.pki.dir} (made with `cryptography`; reused while "
            f"valid)\n  CA certificate  {stack.ca}   (curl --cacert {stack.ca}; SDKs: verify=that file)",
            flush=True,
        )
    else:
        print("TLS is off (--plaintext): keys and tokens travel unencrypted; local development only", flush=True)
    try:
        stack.start()
        if a.prometheus_port:
            from devstack.prometheus import PrometheusServer, stack_targets

            prom = PrometheusServer(Path(a.run_dir) / "prometheus", a.prometheus_port)
            prom.start(stack_targets(stack), interval=2.0)
    except Exception as e:
        stack.stop()
        if receiver is not None:
            receiver.stop()
        raise SystemExit(
            f"could not start the stack: {e}\n(is something else on ports "
            f"{a.gateway_port}/{a.envoy_admin_port}/{a.admin_port}/{a.cp_port}/{a.xds_port}/{a.prometheus_port}? "
            "pass --gateway-port etc.)"
        )
    try:
        rid = tour(stack)
        observability_tour(stack, prom, receiver, rid, 15 if stack.controlplane else 8)
        print(
            f"""
\033[1mrelaygate is running.\033[0m
  gateway         {stack.gateway}/v1/<workspace>/chat/completions | /completions | /embeddings | /messages
  demo keys       config/demo-keys.txt
  receipts        {stack.extproc_admin}/receipts   (one: /receipts/<id>; public key: /signing-key)
  metrics         {stack.extproc_admin}/metrics  and Envoy's http://127.0.0.1:{a.envoy_admin_port}/stats/prometheus
  Prometheus      {prom.url if prom else "not started (--prometheus-port 0)"}   (alert rules: prometheus/alerts.yml)
  traces          {f"OTLP/gRPC on {receiver.address}, kept in {stack.run_dir / 'traces.jsonl'}" if receiver else "off (--otlp-port 0)"}
  TLS             {f"CA {stack.ca} (gateway, control plane and xDS)" if stack.tls else "off (--plaintext)"}""",
            flush=True,
        )
        if stack.controlplane:
            print(
                f"""  control plane   {stack.cp_url}/v1 (RelayOne) and {stack.cp_url}/api (RelayPlane); OpenAPI at /v1/openapi.json
  xDS (ADS)       127.0.0.1:{stack.xds_port}   (Envoy's bootstrap names only this and its identity: {stack.run_dir}/envoy.json)
  fleet ops gRPC  {f"127.0.0.1:{stack.ops_grpc_port} (relaygate.fleet.v1.FleetOperations, admin token)" if stack.ops_grpc_port else "off (--ops-port 0)"}
  fleet port      {stack.fleet_url if stack.fleet_mtls else "none (the sidecar uses the API port; --fleet-mtls adds an mTLS port)"}
  admin token     {stack.admin_token}   (demo value; set RELAYGATE_ADMIN_TOKEN in production)""",
                flush=True,
            )
        print("Ctrl-C stops everything.", flush=True)
        if not a.demo_only:
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
        if prom is not None:
            prom.stop()
        if receiver is not None:
            receiver.stop()
        print("stopped.")


if __name__ == "__main__":
    main()
