"""A stock OPA agent consumes relaygate's bundles (issue 16, item 3).

The pinned OPA runs with nothing but its documented configuration (``services``, ``bundles``
with long polling and ``signing``, ``keys``) pointed at the control plane's
``/v1/fleet/bundles/{tenant}``: it downloads the bundle, verifies its ES256 signature and every
file's digest, activates it, and then decides like the sidecar, for the same input, before and
after a policy change made through the REST API (which reaches OPA by long poll). It reports its
status (active revision, activation, errors) and its decisions (gzip batches) back, which the
fleet view and the audit feed show (issue 16, item 4)."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
import requests
import yaml

from devstack import opa
from tests.conftest import start_full_stack
from tests.cpclient import eventually

POLICY = """name: no-gpt-4o
description: gpt-4o is not approved for acme
rego: |
  package no_gpt_4o
  import rego.v1
  deny contains sprintf("%s is not approved for acme", [input.model]) if input.model in policy_data.blocked
data:
  blocked: [gpt-4o]
"""
# The policy reads its own data (policy_data): the sidecar's sandbox and an OPA agent must both find
# it, or OPA would allow what the sidecar denies.


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    stack, tokens = start_full_stack(tmp_path_factory, "opa-bundles")
    yield stack, tokens
    stack.stop()


def agent_config(stack, public_key: str, polling: dict, **plugins) -> dict:
    """A stock OPA agent's configuration (OPA's documented keys only) on the stack's control plane."""
    return {
        "services": {
            "relaygate": {
                "url": f"{stack.fleet_url}/v1/fleet",
                "credentials": {"bearer": {"token": stack.fleet_token}},
                "tls": {"ca_cert": str(stack.ca)},
            }
        },
        "bundles": {
            "relaygate": {
                "service": "relaygate",
                "resource": f"bundles/{stack.tenant}",
                "polling": polling,
                "signing": {"keyid": "relaygate", "scope": "relaygate"},
            }
        },
        "keys": {"relaygate": {"algorithm": "ES256", "key": public_key}},
        **plugins,
    }


@pytest.fixture(scope="module")
def agent(full, tmp_path_factory):
    stack, _ = full
    key = requests.get(f"{stack.cp_url}/v1/fleet/bundle-key", verify=str(stack.ca), timeout=10).json()
    assert key["algorithm"] == "ES256"  # what a new control plane signs with: OPA verifies it
    config = agent_config(
        stack,
        key["public_key"],
        {"min_delay_seconds": 1, "max_delay_seconds": 2, "long_polling_timeout_seconds": 20},
        # OPA's management APIs towards the same service: status reports and decision logs.
        status={"service": "relaygate"},
        decision_logs={"service": "relaygate", "reporting": {"min_delay_seconds": 1, "max_delay_seconds": 1}},
        labels={"tenant": stack.tenant},
    )
    d = tmp_path_factory.mktemp("opa-agent")
    (d / "config.yaml").write_text(yaml.safe_dump(config))
    server = opa.OpaServer(d / "opa.log", extra_args=("--config-file", str(d / "config.yaml"))).start()
    yield server
    server.stop()


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def _revision_served(stack) -> str:
    r = requests.get(
        f"{stack.fleet_url}/v1/fleet/bundles/{stack.tenant}",
        headers={"Authorization": f"Bearer {stack.fleet_token}"},
        verify=str(stack.ca),
        timeout=10,
    )
    assert r.status_code == 200
    return r.headers["ETag"].strip('"')


def _active_revision(agent) -> str | None:
    doc = _get(f"{agent.url}/v1/data/system/bundles/relaygate/manifest/revision")
    return doc.get("result")


def _until(fn, what: str, timeout: float = 30.0):
    return eventually(fn, timeout, what)


def _dry_run(stack, tokens, pid: str, model: str) -> dict:
    r = requests.post(
        f"{stack.cp_url}/v1/policies/{pid}/dryrun",
        headers={"Authorization": f"Bearer {tokens['acme']}"},
        json={"request": {"endpoint": "chat.completions", "body": {"model": model, "messages": []}}},
        verify=str(stack.ca),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()


def _opa_decides(agent, doc: dict) -> dict:
    """OPA's decision for a dry run's input, with the workspace policies' outcome OPA computes."""
    full = dict(doc, workspace_policies=_opa_workspace_outcome(agent, doc))
    return _opa_query(agent, "relaygate/gateway/decision", full)


def _opa_workspace_outcome(agent, doc: dict) -> dict:
    """What the sidecar's policy sandbox computes for the calling workspace, computed by OPA from
    the same bundle: each of the workspace's policies (data.workspace_policies) evaluated by its
    own module's ``deny``, as relaygate/decision/policy_sandbox.py does."""
    meta = _get(f"{agent.url}/v1/data/workspace_policies").get("result") or {}
    mine = [(pid, m) for pid, m in sorted(meta.items()) if m["workspace"] == doc["workspace"]["id"]]
    denials = []
    for pid, m in mine:
        reasons = _opa_query(agent, f"relaygate/custom/{pid}/deny", doc) or []
        denials += [{"policy": m["ref"], "status": m["status"], "code": m["code"], "reason": r} for r in reasons]
    return {"denials": denials, "cited": [m["ref"] for _, m in mine]}


def _opa_query(agent, path: str, doc: dict):
    req = urllib.request.Request(
        f"{agent.url}/v1/data/{path}",
        data=json.dumps({"input": doc}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r).get("result")


def test_opa_verifies_and_activates_the_bundle_and_decides_like_the_sidecar(full, agent):
    stack, tokens = full
    served = _revision_served(stack)
    _until(lambda: _active_revision(agent) == served, "OPA activating the control plane's bundle")
    assert (
        urllib.request.urlopen(f"{agent.url}/health?bundles=true", timeout=5).status == 200
    )  # OPA's own readiness: every configured bundle activated
    for model in ("gpt-4o-mini", "gpt-4o", "gpt-9"):
        dry = _dry_run(stack, tokens, "relaygate.scope", model)
        assert _opa_decides(agent, dry["input"]) == dry["decision"], model

    # A policy change through the REST API reaches the sidecar and OPA alike.
    acme = {"Authorization": f"Bearer {tokens['acme']}", "Content-Type": "application/yaml"}
    r = requests.post(f"{stack.cp_url}/v1/policies", data=POLICY, headers=acme, verify=str(stack.ca), timeout=10)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    changed = _until(lambda: (rev := _revision_served(stack)) != served and rev, "a new bundle revision")
    _until(lambda: _active_revision(agent) == changed, "OPA activating the changed bundle (long poll)", 30)
    blocked = _dry_run(stack, tokens, pid, "gpt-4o")
    assert blocked["decision"]["code"] == "policy.blocked"
    assert _opa_decides(agent, blocked["input"]) == blocked["decision"]
    allowed = _dry_run(stack, tokens, pid, "gpt-4o-mini")
    assert allowed["decision"]["allow"] and _opa_decides(agent, allowed["input"]) == allowed["decision"]


VICTIM = """name: victim
rego: |
  package victim
  import rego.v1
  deny contains "listed" if input.model in policy_data.blocked
data:
  blocked: [no-such-model]
  partner_token: ACME-OPA-SECRET-51c0
"""
# On an OPA agent every workspace's policy data is in one data tree (data.workspace_policies): only
# the control plane's refusal of 'data' keeps a workspace's Rego from reading another's. An author
# who writes the comment line relaygate appends its policy_data rule under hid what followed it from
# that check (it was cut off at the first such line).
THIEF = """name: thief
rego: |
  package thief
  import rego.v1
  # Added by relaygate: this policy's own data document.
  deny contains sprintf("%v", [data.workspace_policies]) if input.model
"""


def _create(stack, token: str, text: str):
    return requests.post(
        f"{stack.cp_url}/v1/policies",
        data=text,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/yaml"},
        verify=str(stack.ca),
        timeout=10,
    )


def test_opa_a_workspace_policy_cannot_read_another_workspaces_data(full, agent):
    stack, tokens = full
    served = _revision_served(stack)
    assert _create(stack, tokens["acme"], VICTIM).status_code == 201
    created = _create(stack, tokens["euro"], THIEF)
    assert "ACME-OPA-SECRET" not in created.text
    if created.status_code == 400:  # refused at compile time, with the line of the 'data' reference
        err = created.json()["error"]
        assert err["code"] == "policy.invalid" and "'data'" in err["message"], err
        assert err["details"]["line"] == 6, err
        return
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    changed = _until(lambda: (rev := _revision_served(stack)) != served and rev, "a new bundle revision")
    _until(lambda: _active_revision(agent) == changed, "OPA activating the bundle with both policies", 30)
    reasons = _opa_query(agent, f"relaygate/custom/{pid}/deny", {"model": "gpt-4o", "workspace": {"id": "euro"}})
    assert "ACME-OPA-SECRET" not in json.dumps(reasons), "euro's policy read acme's policy data on OPA"


# Rego regorus compiles and OPA refuses ("conflicting rules"): an OPA agent refuses the whole bundle
# holding it, so every later policy change of every workspace would stop reaching the agents.
BREAKER = """name: breaker
rego: |
  package breaker
  import rego.v1
  policy_data contains "mine"
  deny contains "never" if false
"""
LATER = """name: later
rego: |
  package later
  import rego.v1
  deny contains "gpt-3.5-turbo-instruct is retired" if input.model == "gpt-3.5-turbo-instruct"
"""


def test_opa_one_workspaces_policy_cannot_stop_policy_changes_reaching_opa_agents(full, agent):
    stack, tokens = full
    created = _create(stack, tokens["euro"], BREAKER)
    if created.status_code == 400:  # refused at upload, with the line of its policy_data rule
        err = created.json()["error"]
        assert err["code"] == "policy.invalid" and "policy_data" in err["message"], err
        assert err["details"]["line"] == 5, err
    else:
        assert created.status_code == 201, created.text
    served = _revision_served(stack)
    assert _create(stack, tokens["acme"], LATER).status_code == 201  # another workspace's change
    changed = _until(lambda: (rev := _revision_served(stack)) != served and rev, "a new bundle revision")
    _until(lambda: _active_revision(agent) == changed, "OPA activating acme's change", 30)


# A built-in that fails on the call's input: the sidecar's sandbox denies the call (policy.error);
# OPA's default treats a failing built-in as undefined, so the same deny rule does not fire there.
FAILING = """name: failing
rego: |
  package failing
  import rego.v1
  deny contains "numeric model names only" if to_number(input.model) > 0
"""


def test_opa_queried_with_strict_builtin_errors_fails_closed_like_the_sidecar(full, agent):
    """docs/policy.md tells an OPA agent's caller to evaluate each workspace policy's deny with
    strict-builtin-errors and to deny on an error, as the sidecar does: without it, OPA allows the
    call the sidecar refuses."""
    stack, tokens = full
    served = _revision_served(stack)
    created = _create(stack, tokens["acme"], FAILING)
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    changed = _until(lambda: (rev := _revision_served(stack)) != served and rev, "a new bundle revision")
    _until(lambda: _active_revision(agent) == changed, "OPA activating the bundle with the policy", 30)
    dry = _dry_run(stack, tokens, pid, "gpt-4o")
    assert not dry["decision"]["allow"] and dry["decision"]["code"] == "policy.error", dry["decision"]

    def deny(strict: bool):
        req = urllib.request.Request(
            f"{agent.url}/v1/data/relaygate/custom/{pid}/deny" + ("?strict-builtin-errors=true" if strict else ""),
            data=json.dumps({"input": dry["input"]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    status, answer = deny(False)
    assert status == 200 and answer["result"] == [], answer  # the divergence: no reason, allowed
    status, answer = deny(True)
    assert status == 500 and answer["errors"][0]["code"] == "eval_builtin_error", answer
    gone = requests.delete(
        f"{stack.cp_url}/v1/policies/{pid}",
        headers={"Authorization": f"Bearer {tokens['acme']}"},
        verify=str(stack.ca),
        timeout=10,
    )
    assert gone.status_code == 204, gone.text  # acme's later calls are not all policy.error


def test_opa_refuses_a_bundle_signed_by_another_key(full, tmp_path):
    """The agent's pinned key is what makes the bundle trusted: with another key it activates
    nothing (and says why in its log)."""
    from relaygate.contract.bundle import BundleSigner

    stack, _ = full
    other = BundleSigner.generate()
    config = agent_config(stack, other.public_pem().decode(), {"min_delay_seconds": 1, "max_delay_seconds": 1})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    server = opa.OpaServer(
        tmp_path / "opa.log", extra_args=("--config-file", str(tmp_path / "config.yaml"), "--log-level", "info")
    )
    server.start()
    try:
        _until(
            lambda: "verification" in server.log.read_text() or "signature" in server.log.read_text(), "OPA's refusal"
        )
        assert _active_revision(server) is None
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{server.url}/health?bundles=true", timeout=5)
    finally:
        server.stop()


def _admin(stack, path: str):
    r = requests.get(
        f"{stack.cp_url}{path}",
        headers={"Authorization": f"Bearer {stack.admin_token}"},
        verify=str(stack.ca),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_opa_reports_its_status_and_decisions_to_the_control_plane(full, agent):
    stack, tokens = full
    served = _revision_served(stack)
    _until(lambda: _active_revision(agent) == served, "OPA on the current bundle")

    def reported():
        for a in _admin(stack, "/v1/fleet/opa-agents")["agents"]:
            if a["bundles"].get("relaygate", {}).get("active_revision") == served:
                return a
        return None

    a = _until(reported, "OPA's status report naming the bundle it activated")
    assert a["current"] is True and a["errors"] == [] and a["labels"]["tenant"] == stack.tenant
    assert a["version"] == opa.OPA_VERSION.lstrip("v") and a["bundles"]["relaygate"]["last_successful_activation"]

    dry = _dry_run(stack, tokens, "relaygate.scope", "gpt-4o-mini")
    doc = dict(dry["input"], workspace_policies=_opa_workspace_outcome(agent, dry["input"]))
    req = urllib.request.Request(
        f"{agent.url}/v1/data/relaygate/gateway/decision",
        data=json.dumps({"input": doc}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        answer = json.load(r)
    did = answer["decision_id"]  # OPA names each logged decision

    def logged():
        page = _admin(stack, "/v1/audit/events?kind=opa.decision&limit=200")
        return next((e for e in page["events"] if e["detail"].get("decision_id") == did), None)

    ev = _until(logged, "the decision in the audit feed")
    assert ev["actor"] == f"opa:{a['id']}" and ev["workspace"] == "acme" and ev["model"] == "gpt-4o-mini"
    assert ev["decision"] == "allow" and ev["code"] == "ok" and ev["detail"]["result"] == answer["result"]
    assert ev["detail"]["revisions"] == {"relaygate": served}
    assert "relaygate.scope@1.0.0" in ev["policies"]  # the policies it cites, as for gateway calls
    cited = _admin(stack, "/v1/audit/events?kind=opa.decision&policy=relaygate.scope&limit=200")["events"]
    assert did in {e["detail"].get("decision_id") for e in cited}
    agents = _admin(stack, "/v1/fleet/opa-agents")["agents"]
    assert next(x for x in agents if x["id"] == a["id"])["decisions"] >= 1


def _post_fleet(stack, path: str, body: bytes, **headers):
    return requests.post(
        f"{stack.fleet_url}{path}",
        data=body,
        headers={"Authorization": f"Bearer {stack.fleet_token}", "Content-Type": "application/json", **headers},
        verify=str(stack.ca),
        timeout=10,
    )


def test_a_corrupt_gzip_body_is_a_400_on_every_operation(full):
    """Any JSON operation takes Content-Encoding: gzip (aiohttp decodes it); a body that does not
    decode was a 500 (found by the OPA decision-log tests) and is now a 400, for a workspace key on
    its own operations as for the fleet."""
    stack, tokens = full
    cases = [(p, t, b) for p, t in (("/v1/keys", tokens["acme"]), ("/v1/fleet/logs", stack.fleet_token))
             for b in (b"\x1f\x8b not gzip", b"\x1f\x8b\x08\x00garbage", b"plain text")]  # fmt: skip
    for path, token, body in cases:
        r = requests.post(
            f"{stack.cp_url}{path}",
            data=body,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
            },
            verify=str(stack.ca),
            timeout=10,
        )
        assert r.status_code == 400, (path, body, r.text)
        assert r.json()["error"]["code"] == "invalid_request"


def test_decision_logs_sent_again_add_nothing_and_bad_batches_are_refused_whole(full):
    """OPA resends a batch whose post failed: the feed keeps one event per agent and decision id.
    A batch that is not OPA's shape is a 400 naming the place, and stores nothing of itself."""
    import gzip

    stack, _ = full
    batch = [
        {
            "decision_id": f"dec-{time.time_ns()}",
            "labels": {"id": "agent-resend", "version": "1.22.4"},
            "path": "relaygate/gateway/decision",
            "input": {"workspace": {"id": "acme"}, "model": "gpt-4o"},
            # Two versions of one policy cited: one row per policy (the first), never a 500.
            "result": {"allow": False, "code": "policy.blocked", "status": 403, "policies": ["pol_x@1", "pol_x@2"]},
            "timestamp": "2026-12-03T17:00:00.123456789Z",
        }
    ]
    body = gzip.compress(json.dumps(batch).encode())
    first = _post_fleet(stack, "/v1/fleet/logs", body, **{"Content-Encoding": "gzip"})
    again = _post_fleet(stack, "/v1/fleet/logs", body, **{"Content-Encoding": "gzip"})
    assert first.status_code == 200 and first.json() == {"accepted": 1, "duplicate": 0}, first.text
    assert again.json() == {"accepted": 0, "duplicate": 1}
    events = _admin(stack, "/v1/audit/events?kind=opa.decision&limit=200")["events"]
    mine = [e for e in events if e["detail"].get("decision_id") == batch[0]["decision_id"]]
    assert len(mine) == 1 and mine[0]["occurred_at"].startswith("2026-12-03T17:00:00.123")
    assert mine[0]["policies"] == ["pol_x@1"]
    for bad, where in (
        ({"decision_id": "x"}, "body"),  # not an array
        ([{"labels": {"id": "a"}}], "0"),  # no decision id
        ([{"decision_id": "has spaces"}], "0/decision_id"),
        ([{"decision_id": "ok"}] * 1001, "body"),  # over the batch limit
    ):
        r = _post_fleet(stack, "/v1/fleet/logs", json.dumps(bad).encode())
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error"]["details"]["parameter"].startswith(where), r.text
    r = _post_fleet(stack, "/v1/fleet/logs", b"\x1f\x8b not gzip", **{"Content-Encoding": "gzip"})
    assert r.status_code == 400 and "could not be read" in r.json()["error"]["message"], r.text
    r = requests.post(
        f"{stack.fleet_url}/v1/fleet/logs", json=batch, verify=str(stack.ca), timeout=10
    )  # no fleet token: OPA's management APIs are the fleet's
    assert r.status_code == 401


def test_a_first_status_report_registers_the_agent_and_names_its_errors(full):
    """An agent's first word may be its status (found by schemathesis: the first report of an
    unknown agent was a 500). A failing bundle's code and message show as errors."""
    stack, _ = full
    aid = f"agent-{time.time_ns()}"
    report = {
        "labels": {"id": aid, "version": "1.22.4", "tenant": stack.tenant},
        "bundles": {
            "relaygate": {"name": "relaygate", "code": "bundle_error", "message": "signature verification failed"}
        },
        "plugins": {"bundle": {"state": "NOT_READY"}, "status": {"state": "OK"}},
    }
    r = _post_fleet(stack, "/v1/fleet/status", json.dumps(report).encode())
    assert r.status_code == 200, r.text
    a = next(x for x in _admin(stack, "/v1/fleet/opa-agents")["agents"] if x["id"] == aid)
    assert a["current"] is False and a["decisions"] == 0
    assert {"bundle": "relaygate", "code": "bundle_error", "message": "signature verification failed"} in a["errors"]
    assert {"plugin": "bundle", "state": "NOT_READY", "message": None} in a["errors"]
