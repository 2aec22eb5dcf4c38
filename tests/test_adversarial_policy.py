"""Adversarial tests of workspace policies (issue 11, items 4 and 5).

The attacker holds a key of one workspace with the right to write that
workspace's policies. They try to (4) read another workspace's policy data,
through every way Rego reaches ``data`` (the shared namespace, the root,
``walk``, ``object.get``, dynamic refs, imports, the other policy's rules),
and leak it in a deny message; and (5) stall every workspace with a Rego rule
that loops over a huge range only when an input field says so (so the
control plane's compile check, which evaluates with an empty input, lets it
through). Checked through the control plane's dry run and through a real
gateway (Envoy + sidecar) that takes its bundles from the control plane.
"""
from __future__ import annotations

import asyncio
import json
import os
import threading
import time

import pytest

from extproc.workspace_policy import ActivePolicy, parse_document
from stack.processes import Stack
from tests.conftest import ControlPlane, Gateway, start_controlplane, start_full_stack
from tests.cpclient import eventually
from tests.httpcall import chat_body, curl

SECRET = "ACME-SECRET-7f3a9c"

VICTIM = f"""name: victim
effect: {{status: 403, code: policy.blocked}}
rego: |
  package victim
  import rego.v1
  deny contains sprintf("model %s is on the list", [input.model]) if input.model in policy_data.blocked_models
data:
  blocked_models: [gpt-4o]
  partner_token: {SECRET}
"""


def _thief(name: str, expr: str, imports: str = "", extra: str = "") -> str:
    body = f"  msg := sprintf(\"leak %v\", [{expr}])"
    return (f"name: {name}\nrego: |\n  package thief\n  import rego.v1\n{imports}"
            f"  deny contains msg if {{\n{extra}{body}\n  }}\n")


# Every way a workspace's Rego could reach data beyond its own policy_data.
THIEVES = {
    "shared-namespace": _thief("t1", "data.relaygate.policy_data"),
    "relaygate-root": _thief("t2", "data.relaygate"),
    "data-root": _thief("t3", "data"),
    "walk": _thief("t4", "[v | walk(data, [_, v]); is_string(v)]"),
    "object-get": _thief("t5", 'object.get(data, ["relaygate", "policy_data"], "none")'),
    "dynamic-ref": _thief("t6", "[v | some k; v := data[k]]"),
    "import": _thief("t7", "pd", imports="  import data.relaygate.policy_data as pd\n"),
    "other-rules": _thief("t8", "data.relaygate.custom"),
    "with-override": _thief("t9", "x", extra="    x := data.relaygate.policy_data with input as {}\n"),
}


def _leaks(text: str) -> bool:
    return SECRET in text


# -- item 4 through the control plane's dry run ------------------------------------------------

@pytest.fixture(scope="module")
def cp(tmp_path_factory):
    c = start_controlplane(tmp_path_factory.mktemp("advpol-cp"))
    yield c
    c.stop()


@pytest.mark.parametrize("way", sorted(THIEVES))
def test_dry_run_a_workspace_policy_cannot_read_another_workspaces_data(cp, way):
    acme, euro = cp.client("acme"), cp.client("euro")
    if not any(p["name"] == "victim" for p in acme.get("/v1/policies").json()["policies"]):
        assert acme.post("/v1/policies", yaml=VICTIM).status == 201
    created = euro.post("/v1/policies", yaml=THIEVES[way].replace("name: t", f"name: {way}-t"))
    assert not _leaks(created.text)
    if created.status == 400:       # refused at compile time: must say why, with a line
        err = created.json()["error"]
        assert err["code"] == "policy.invalid" and "data" in err["message"], err
        assert err["details"]["line"] is not None, err
        return
    assert created.status == 201, created.text
    pid = created.json()["id"]
    run = euro.post(f"/v1/policies/{pid}/dryrun",
                    {"request": {"endpoint": "chat.completions", "body": {"model": "gpt-4o-mini"}}})
    assert run.status == 200, run.text
    assert not _leaks(run.text), f"{way}: the dry run leaked acme's data: {run.json()['decision']}"
    euro.delete(f"/v1/policies/{pid}")


def test_each_policy_is_evaluated_with_only_its_own_data():
    """The mechanism under the compile check: even Rego that names ``data`` sees only its own policy's data."""
    from extproc.policy_sandbox import PolicySandbox, WorkspacePolicies
    victim = ActivePolicy("acme", "pol_victim", 1, parse_document(VICTIM))
    thief_doc = parse_document("name: t\nrego: |\n  package t\n  import rego.v1\n"
                               "  deny contains sprintf(\"%v\", [data]) if true\n"
                               "  deny contains sprintf(\"%v\", [[v | walk(data, [_, v])]]) if true\n"
                               "data: {mine: 1}\n")
    thief = ActivePolicy("euro", "pol_thief", 1, thief_doc)
    wp = WorkspacePolicies.from_active([victim, thief])
    sandbox = PolicySandbox(workers=1, timeout=5.0)

    niceness = []

    async def go():
        try:
            out = await sandbox.evaluate(wp, "euro", json.dumps({"model": "gpt-4o", "workspace": {"id": "euro"}}))
            niceness.extend(os.getpriority(os.PRIO_PROCESS, w.proc.pid) for w in sandbox._all)
            return out
        finally:
            await sandbox.close()
    outcome = asyncio.run(go())
    # A runaway policy burns CPU until its deadline: its worker yields to the gateway itself.
    assert niceness and all(n >= os.getpriority(os.PRIO_PROCESS, 0) + 10 for n in niceness), niceness
    reasons = [d["reason"] for d in outcome["denials"]]
    assert reasons and all("mine" in r for r in reasons), reasons
    assert not any(_leaks(r) or "blocked_models" in r or "pol_victim" in r for r in reasons), reasons
    assert outcome["cited"] == ["pol_thief@1"]


# -- items 4 and 5 through a real gateway ------------------------------------------------------

ABUSIVE = """name: slow-when-asked
rego: |
  package slow
  import rego.v1
  deny contains "never" if {
    input.user == "boom"
    some i in numbers.range(1, 1500000)
    i == -1
  }
"""

BENIGN = """name: no-gpt-4o
rego: |
  package benign
  import rego.v1
  deny contains "gpt-4o is not approved here" if input.model == "gpt-4o"
  deny contains "marker" if input.user == "marker"
"""


class Full:
    def __init__(self, stack: Stack, tokens: dict) -> None:
        self.stack, self.tokens = stack, tokens
        self.gw = Gateway(stack, tokens)
        self.cp = ControlPlane(stack, tokens)

    def call(self, ws: str, model: str = "gpt-4o-mini", **extra):
        return curl(self.gw.base(ws) + "/chat/completions", chat_body(model, **extra),
                    {"authorization": f"Bearer {self.tokens[ws]}", "content-type": "application/json"})


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    stack, tokens = start_full_stack(tmp_path_factory, "advpol")
    yield Full(stack, tokens)
    stack.stop()


def test_gateway_a_workspace_policy_cannot_leak_another_workspaces_data(full):
    acme, euro = full.cp.client("acme"), full.cp.client("euro")
    assert acme.post("/v1/policies", yaml=VICTIM).status == 201
    eventually(lambda: full.call("acme", "gpt-4o").status == 403, 15, "acme's policy reaching the gateway")
    created = {way: euro.post("/v1/policies", yaml=text.replace("name: t", f"name: {way}-t"))
               for way, text in THIEVES.items()}
    assert not any(_leaks(r.text) for r in created.values())
    live = [way for way, r in created.items() if r.status == 201]
    # Whatever the control plane let through must reach the gateway and still not see acme's data.
    marker = euro.post("/v1/policies", yaml=BENIGN.replace("no-gpt-4o", "euro-marker"))
    assert marker.status == 201, marker.text
    eventually(lambda: full.call("euro", user="marker").status == 403, 15, "euro's policies reaching the gateway")
    for model, user in (("gpt-4o-mini", "bob"), ("gpt-4o", "bob"), ("gpt-4o-mini", "marker")):
        reply = full.call("euro", model, user=user)
        assert not _leaks(reply.body.decode() if isinstance(reply.body, bytes) else str(reply.body)), (live, reply.body)
        if reply.receipt_id:
            assert not _leaks(json.dumps(full.gw.receipt_doc(reply.receipt_id)))
    for r in created.values():
        if r.status == 201:
            euro.delete(f"/v1/policies/{r.json()['id']}")
    euro.delete(f"/v1/policies/{marker.json()['id']}")


def test_gateway_an_abusive_policy_stalls_only_its_own_offending_calls(full):
    """acme's rule loops 1.5M times when the caller says user=boom; capped (with its own policy) keeps working."""
    acme, euro = full.cp.client("acme"), full.cp.client("capped")
    created = acme.post("/v1/policies", yaml=ABUSIVE)
    assert created.status == 201, created.text            # the empty-input compile check cannot see it
    pid = created.json()["id"]
    benign = euro.post("/v1/policies", yaml=BENIGN.replace("no-gpt-4o", "euro-benign"))
    assert benign.status == 201, benign.text
    eventually(lambda: full.call("capped", user="marker").status == 403, 15, "capped's policy reaching the gateway")
    bundle_rev = full.cp.fleet.get("/v1/fleet/bundles/default").headers["etag"].strip('"')
    eventually(lambda: full.gw.receipt_doc(full.call("acme").receipt_id)["decision"]["bundle"] == bundle_rev, 15,
               "acme's abusive policy reaching the gateway")

    stop = threading.Event()
    abusive, neighbour = [], []

    def attacker():
        while not stop.is_set():
            t = time.monotonic()
            abusive.append((full.call("acme", user="boom"), time.monotonic() - t))

    def victim():
        for _ in range(40):
            t = time.monotonic()
            neighbour.append((full.call("capped"), time.monotonic() - t))

    attackers = [threading.Thread(target=attacker) for _ in range(4)]
    for t in attackers:
        t.start()
    try:
        eventually(lambda: len(abusive) >= 2, 30, "the first abusive calls to finish")
        victims = [threading.Thread(target=victim) for _ in range(2)]
        for t in victims:
            t.start()
        for t in victims:
            t.join(120)
    finally:
        stop.set()
        for t in attackers:
            t.join(60)
    assert len(neighbour) == 80
    bad = [(r.status, r.body) for r, _ in neighbour if r.status != 200]
    assert not bad, f"capped's calls failed while acme's policy was abusive: {bad[:3]}"
    worst = max(s for _, s in neighbour)
    assert worst < 5.0, f"capped's slowest call took {worst:.2f}s"      # generous: a stalled loop takes far longer
    codes = {(r.status, r.json()["error"]["code"]) for r, _ in abusive}
    assert codes <= {(500, "policy.error"), (503, "policy.error")}, codes
    limited = [r for r, _ in abusive if r.status == 500]
    assert limited, "no abusive call hit the evaluation limit"
    assert "evaluation limit" in limited[0].json()["error"]["message"]
    receipt = full.gw.receipt_doc(limited[0].receipt_id)
    assert receipt["decision"]["code"] == "policy.error" and receipt["decision"]["status"] == 500
    assert f"{pid}@1" in receipt["decision"]["policies"]
    # The offending call only: acme's ordinary calls still pass its policy.
    assert full.call("acme").status == 200
    acme.delete(f"/v1/policies/{pid}")
    euro.delete(f"/v1/policies/{benign.json()['id']}")


def test_a_policy_that_is_slow_even_on_empty_input_is_refused_at_creation(cp):
    slow = ABUSIVE.replace('input.user == "boom"', "true").replace("slow-when-asked", "always-slow")
    t = time.monotonic()
    r = cp.client("swiss").post("/v1/policies", yaml=slow)
    assert r.status == 400, r.text
    assert r.json()["error"]["code"] == "policy.invalid" and "evaluation limit" in r.json()["error"]["message"]
    assert time.monotonic() - t < 10
    # The control plane was not stalled meanwhile.
    assert cp.client("acme").get("/v1/policies").status == 200
