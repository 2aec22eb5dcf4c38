"""The control plane driving a real gateway: Envoy + sidecar take policy and keys from its bundles.

A policy created through the API blocks a call at the gateway and the call's
receipt reaches the audit feed; a revoked key stops working within seconds;
during a control-plane outage the gateway keeps enforcing the last bundle it
had (also across a sidecar restart), and the receipts it spooled arrive
exactly once when the control plane is back.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from relaygate.evidence.receipts import envelope_receipt, verify_receipt
from relaygate.evidence.signing import load_public_key
from tests.conftest import ControlPlane, Gateway, start_full_stack
from tests.cpclient import CP, eventually
from tests.httpcall import chat_body, curl
from devstack.processes import Stack

BLOCK_4O = """name: no-gpt-4o
description: gpt-4o is not approved in acme
effect: {status: 403, code: policy.blocked}
rego: |
  package anything
  import rego.v1
  deny contains "gpt-4o is not approved in acme" if input.model == "gpt-4o"
"""


class Full:
    """Gateway + control plane of one stack."""

    def __init__(self, stack: Stack, tokens: dict) -> None:
        self.stack, self.tokens = stack, tokens
        self.gw = Gateway(stack, tokens)
        self.cp = ControlPlane(stack, tokens)

    def call(self, key: str, model: str = "gpt-4o-mini", ws: str = "acme", **extra):
        return curl(
            self.gw.base(ws) + "/chat/completions",
            chat_body(model, **extra),
            {"authorization": f"Bearer {key}", "content-type": "application/json"},
        )


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    stack, tokens = start_full_stack(tmp_path_factory, "e2e")
    yield Full(stack, tokens)
    stack.stop()


def _audit(full: Full, **params):
    return full.cp.client("acme").get("/v1/audit/events", params=params).json()["events"]


def test_the_gateway_runs_on_the_control_planes_bundle(full):
    reply = full.call(full.tokens["acme"])
    assert reply.status == 200, reply.body
    receipt = full.gw.receipt_doc(reply.receipt_id)
    bundle = full.cp.fleet.get("/v1/fleet/bundles/default")
    assert receipt["decision"]["bundle"] == bundle.headers["etag"].strip('"')


def test_policy_created_through_the_api_blocks_at_the_gateway_and_lands_in_the_audit_feed(full):
    acme = full.cp.client("acme")
    assert full.call(full.tokens["acme"], "gpt-4o").status == 200
    created = acme.post("/v1/policies", yaml=BLOCK_4O)
    assert created.status == 201, created.text
    pid = created.json()["id"]
    blocked = eventually(
        lambda: (r := full.call(full.tokens["acme"], "gpt-4o")).status == 403 and r,
        10,
        "the policy reaching the gateway",
    )
    err = blocked.json()["error"]
    assert err["code"] == "policy.blocked" and "not approved" in err["message"]
    assert full.call(full.tokens["acme"], "gpt-4o-mini").status == 200  # other models unaffected
    assert full.call(full.tokens["euro"], "gpt-4o", ws="euro").json()["error"]["code"] != "policy.blocked"

    rid = err["receipt_id"]
    events = eventually(lambda: _audit(full, policy=pid, kind="gateway.call"), 15, "the receipt in the audit feed")
    assert rid in [e["id"] for e in events]
    event = acme.get(f"/v1/audit/events/{rid}").json()
    assert event["decision"] == "deny" and event["status"] == 403 and f"{pid}@1" in event["policies"]
    key_pem = full.stack.run_dir / "data" / "receipt-signing.pub"
    assert verify_receipt(event["receipt"], load_public_key(key_pem.read_bytes()))
    assert envelope_receipt(event["receipt"])["decision"]["policies"][-1] == f"{pid}@1"


def test_revoked_key_is_refused_by_the_gateway_within_seconds(full):
    acme = full.cp.client("acme")
    made = acme.post("/v1/keys", {"name": "short-lived", "scope": {"endpoints": ["chat.completions"]}}).json()
    eventually(lambda: full.call(made["secret"]).status == 200, 10, "the new key reaching the gateway")
    assert acme.post(f"/v1/keys/{made['key']['id']}/revoke").status == 200
    started = time.monotonic()
    refused = eventually(lambda: (r := full.call(made["secret"])).status == 401 and r, 10, "revocation")
    assert time.monotonic() - started < 5
    assert refused.json()["error"]["code"] == "auth.unauthenticated"


@pytest.mark.slow
def test_control_plane_outage_keeps_enforcing_and_receipts_arrive_exactly_once_after(full):
    capped = full.cp.client("capped")
    assert capped.post("/v1/policies", yaml=BLOCK_4O.replace("acme", "capped")).status == 201
    key = full.tokens["capped"]
    eventually(lambda: full.call(key, "gpt-4o", ws="capped").status == 403, 10, "the policy in force")
    full.stack.stop_one("controlplane")
    rids = []
    for i in range(5):
        r = full.call(key, "gpt-4o", ws="capped", content=f"during outage {i}")
        assert r.status == 403 and r.json()["error"]["code"] == "policy.blocked"  # still enforced
        ok = full.call(key, "gpt-4o-mini", ws="capped", content=f"during outage {i}")
        assert ok.status == 200
        rids += [r.receipt_id, ok.receipt_id]

    # The sidecar restarts while the control plane is still down: it starts from its bundle on disk.
    full.stack.stop_one("extproc")
    full.stack.start_extproc()
    after_restart = full.call(key, "gpt-4o", ws="capped")
    assert after_restart.status == 403 and after_restart.json()["error"]["code"] == "policy.blocked"
    rids.append(after_restart.receipt_id)
    assert "starting from the last good bundle on disk" in (full.stack.run_dir / "extproc.log").read_text()

    full.stack.start_controlplane()
    for rid in rids:
        eventually(
            lambda: capped.get(f"/v1/audit/events/{rid}").status == 200, 30, f"receipt {rid} shipped after the outage"
        )

    def shipped_ids():
        events = full.cp.admin.get("/v1/audit/events", params={"kind": "gateway.call", "limit": 1000}).json()
        return [e["id"] for e in events["events"]]

    spooled = {envelope_receipt(e)["id"] for e in full.gw.all_receipts()}
    eventually(lambda: spooled <= set(shipped_ids()), 30, "every spooled receipt at the control plane")
    ids = shipped_ids()
    assert len(ids) == len(set(ids)), "a receipt arrived twice"


def test_relay_goes_through_the_gateway_with_fallback_streaming_and_logs(full):
    acme = CP(full.cp.url, full.tokens["acme"], "x-api-key")
    plain = acme.post(
        "/api/relay",
        {
            "to": "gpt-4o-mini",
            "payload": {"messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 20},
            "metadata": {"user_id": "user_123", "session": "s-1"},
        },
    )
    assert plain.status == 200, plain.text
    r = plain.json()
    assert r["status_code"] == 200 and r["fallback_used"] is False and r["relay_id"].startswith("evt_rel_")
    assert r["body"]["choices"][0]["message"]["content"] and r["receipt_id"].startswith("rcpt_")
    assert type(r["latency_ms"]) is int and r["latency_ms"] >= 0  # an integer, as the reference shows (445)

    # dead-model's only upstream is down (503): the chain falls back to claude, in Anthropic's shape.
    marker = uuid.uuid4().hex  # finds this call's request among the module's others
    fb = acme.post(
        "/api/relay",
        {
            "to": "dead-model",
            "fallback": ["claude-sonnet-4-5"],
            "metadata": {"run": 7},
            "payload": {
                "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Hi {marker}"}]
            },
        },
    ).json()
    assert fb["fallback_used"] is True and fb["status_code"] == 200 and fb["model"] == "claude-sonnet-4-5"
    assert [a["status_code"] for a in fb["attempts"]] == [503, 200]
    assert all(type(a["latency_ms"]) is int for a in fb["attempts"])
    assert fb["body"]["type"] == "message"
    sent = full.gw.sim_request(marker, "anthropic-us")
    assert json.loads(sent["body"])["system"] == "Be brief." and sent["path"] == "/v1/messages"

    # Policy refusals are final: no fallback past a 403. The key may call only gpt-4o, so the
    # fallback would succeed if tried (and this does not lean on another test's policy).
    only_4o = CP(full.cp.url, full.tokens["acme-4o"], "x-api-key")
    denied = only_4o.post(
        "/api/relay",
        {
            "to": "gpt-4o-mini",
            "fallback": ["gpt-4o"],
            "payload": {"messages": [{"role": "user", "content": "refused"}]},
        },
    ).json()
    assert denied["status_code"] == 403 and denied["fallback_used"] is False, denied
    assert [a["status_code"] for a in denied["attempts"]] == [403]

    import requests

    with requests.post(
        full.cp.url + "/api/relay",
        stream=True,
        timeout=30,
        headers={"x-api-key": full.tokens["acme"], "Accept": "text/event-stream"},
        json={"to": "gpt-4o-mini", "payload": {"messages": [{"role": "user", "content": "s"}]}},
    ) as s:
        assert s.status_code == 200 and s.headers["Content-Type"].startswith("text/event-stream")
        assert s.headers["X-Relay-Fallback-Used"] == "false"
        events = [line for line in s.iter_lines() if line.startswith(b"data: ")]
    assert events[-1] == b"data: [DONE]" and len(events) > 5

    fb_rcpt = fb["attempts"][1]["receipt_id"]
    logs = eventually(
        lambda: [x for x in acme.get("/api/logs", params={"limit": 100}).json()["logs"] if x["request_id"] == fb_rcpt],
        15,
        "the relayed call in the logs",
    )
    entry = logs[0]
    assert entry["fallback"]["relay_id"] == fb["relay_id"] and entry["fallback"]["attempt"] == 1
    assert entry["fallback"]["failed_attempts"][0]["status_code"] == 503
    assert entry["metadata"] == {"run": 7} and entry["tokens"]["output"] and entry["estimated_cost_usd"] > 0

    csv_text = acme.get("/api/logs/export", params={"format": "csv"}).text
    assert csv_text.splitlines()[0].startswith("request_id,timestamp,latency_ms") and fb_rcpt in csv_text
    exported = json.loads(acme.get("/api/logs/export", params={"format": "json", "limit": 5}).text)
    assert len(exported) == 5 and all("request_id" in e for e in exported)

    usage = acme.get("/api/usage").json()
    models = {row["model"]: row for row in usage["by_model"]}
    assert models["gpt-4o-mini"]["requests"] >= 2 and models["gpt-4o-mini"]["avg_latency_ms"] > 0
    assert 0 < models["gpt-4o-mini"]["success_rate"] <= 1 and usage["total"]["estimated_cost_usd"] > 0
    assert {row["endpoint"] for row in usage["by_endpoint"]} >= {"chat.completions", "messages"}
    health = acme.get("/api/health").json()
    assert health["status"] == "ok" and health["services"]["database"] == "healthy"
    assert health["services"]["gateway"] == "healthy"


def test_agents_register_and_discover_by_capability(full):
    acme, euro = full.cp.client("acme", "x-api-key"), full.cp.client("euro")
    for i in range(3):
        assert (
            acme.post(
                "/api/register",
                {"name": f"Analyzer {i}", "capability": "text-analysis", "endpoint": f"https://a{i}.example/analyze"},
            ).status
            == 200  # as the reference's table says
        )
    acme.post("/api/register", {"name": "Translator", "capability": "translation", "endpoint": "https://t.example"})
    page = acme.get("/api/discover", params={"capability": "text-analysis", "limit": 2, "offset": 1}).json()
    assert page["total"] == 3 and page["limit"] == 2 and page["offset"] == 1 and len(page["agents"]) == 2
    assert euro.get("/api/discover").json()["total"] == 0
    bad = acme.post("/api/register", {"name": "x", "capability": "x", "endpoint": "ftp://nope"})
    assert bad.status == 400 and bad.json()["error"]["details"]["parameter"] == "endpoint"

    # Updatable and deletable, by the workspace that registered it only.
    agent = page["agents"][0]
    changed = acme.call("PATCH", f"/api/agents/{agent['id']}", {"endpoint": "https://a.example/v2"})
    assert changed.status == 200 and changed.json() == {**agent, "endpoint": "https://a.example/v2"}
    assert euro.call("PATCH", f"/api/agents/{agent['id']}", {"name": "mine now"}).status == 404
    assert euro.call("DELETE", f"/api/agents/{agent['id']}").status == 404
    assert acme.call("PATCH", f"/api/agents/{agent['id']}", {}).status == 400  # nothing to change
    assert acme.call("DELETE", f"/api/agents/{agent['id']}").status == 204
    assert acme.call("DELETE", f"/api/agents/{agent['id']}").status == 404
    left = acme.get("/api/discover", params={"capability": "text-analysis"}).json()
    assert left["total"] == 2 and agent["id"] not in {a["id"] for a in left["agents"]}


REFERENCE_RELAY = {  # the RelayPlane reference's POST /api/relay example (../shared/seeds)
    "to": "claude-3-sonnet",
    "payload": {
        "model": "claude-3-sonnet-20240229",
        "max_tokens": 1000,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
    },
    "metadata": {"user_id": "user_123", "session": "session_456"},
}


def test_the_reference_relay_example_works_verbatim(full):
    """to: claude-3-sonnet is no model of the catalog: it is an alias of claude-sonnet-4-5 there."""
    r = CP(full.cp.url, full.tokens["acme"], "x-api-key").post("/api/relay", REFERENCE_RELAY)
    assert r.status == 200, r.text
    out = r.json()
    assert out["status_code"] == 200 and out["model"] == "claude-3-sonnet", out
    assert out["body"]["type"] == "message" and out["body"]["content"][0]["text"]
    receipt = full.gw.receipt_doc(out["receipt_id"])
    assert receipt["model"]["requested"] == "claude-sonnet-4-5" and receipt["model"]["alias"] == "claude-3-sonnet"
    assert receipt["upstream"]["name"] == "anthropic-us" and receipt["request"]["endpoint"] == "messages"


def test_catalog_and_workspace_aliases_through_the_control_plane(full):
    acme = full.cp.client("acme")
    cat = acme.get("/v1/models")
    assert cat.status == 200, cat.text
    models = {m["id"]: m for m in cat.json()["models"]}
    assert models["gpt-4o"]["aliases"] == ["gpt-4", "gpt-4-turbo"] and models["gpt-4o"]["provider"] == "openai"
    assert [u["name"] for u in models["gpt-4o-mini"]["upstreams"]] == ["openai-us", "openai-eu"]
    assert cat.json()["workspace_aliases"] == {"fast": "gpt-4o-mini", "smart": "gpt-4"}

    admin = full.cp.admin
    # a workspace alias must name something the catalog resolves, and may not shadow a model
    bad = admin.put("/v1/workspaces/acme", {"model_aliases": {"x": "no-such-model"}})
    assert bad.status == 400 and bad.error["details"]["parameter"] == "model_aliases", bad.text
    shadow = admin.put("/v1/workspaces/acme", {"model_aliases": {"gpt-4o": "gpt-4o-mini"}})
    assert shadow.status == 400 and "shadow" in shadow.error["message"], shadow.text
    # an upstream may not make an alias name two models, nor alias a model's own name
    eu = admin.get("/v1/upstreams/openai-eu").json()
    spec = {k: eu[k] for k in ("name", "provider", "address", "region", "jurisdiction", "credential", "models")}
    clash = dict(spec, models={"gpt-4o-mini": {"input_per_1k": 0.2, "aliases": ["claude-3-sonnet"]}})
    r = admin.put("/v1/upstreams/openai-eu", clash)
    assert r.status == 400 and "names both" in r.error["message"], r.text
    own = dict(spec, models={"gpt-4o-mini": {"input_per_1k": 0.2, "aliases": ["gpt-4o"]}})
    r = admin.put("/v1/upstreams/openai-eu", own)
    assert r.status == 400 and "own name" in r.error["message"], r.text

    # a new workspace alias reaches the gateway in the next bundle and routes by its target
    ok = admin.put(
        "/v1/workspaces/acme", {"model_aliases": {"fast": "gpt-4o-mini", "smart": "gpt-4", "quick": "claude-3-haiku"}}
    )
    assert ok.status == 400, "claude-3-haiku is no alias of this catalog"
    ok = admin.put(
        "/v1/workspaces/acme",
        {"model_aliases": {"fast": "gpt-4o-mini", "smart": "gpt-4", "quick": "claude-3-sonnet"}},
    )
    assert ok.status == 200 and ok.json()["model_aliases"]["quick"] == "claude-3-sonnet", ok.text

    def quick():
        r = curl(
            full.gw.base("acme") + "/messages",
            json.dumps({"model": "quick", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
            {"x-api-key": full.tokens["acme"], "content-type": "application/json"},
        )
        return r if r.status == 200 else None

    r = eventually(quick, 15, "the workspace alias enforced at the gateway")
    assert full.gw.receipt_doc(r.receipt_id)["model"] == {
        "requested": "claude-sonnet-4-5",
        "served": "claude-sonnet-4-5",
        "alias": "quick",
    }
