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

from relaygate.decision.workspace_policy import ActivePolicy, parse_document
from devstack.processes import Stack
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
    body = f'  msg := sprintf("leak %v", [{expr}])'
    return (
        f"name: {name}\nrego: |\n  package thief\n  import rego.v1\n{imports}"
        f"  deny contains msg if {{\n{extra}{body}\n  }}\n"
    )


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
    if created.status == 400:  # refused at compile time: must say why, with a line
        err = created.json()["error"]
        assert err["code"] == "policy.invalid" and "data" in err["message"], err
        assert err["details"]["line"] is not None, err
        return
    assert created.status == 201, created.text
    pid = created.json()["id"]
    run = euro.post(
        f"/v1/policies/{pid}/dryrun", {"request": {"endpoint": "chat.completions", "body": {"model": "gpt-4o-mini"}}}
    )
    assert run.status == 200, run.text
    assert not _leaks(run.text), f"{way}: the dry run leaked acme's data: {run.json()['decision']}"
    euro.delete(f"/v1/policies/{pid}")


def test_each_policy_is_evaluated_with_only_its_own_data():
    """The mechanism under the compile check: even Rego that names ``data`` sees only its own policy's data."""
    from relaygate.decision.policy_sandbox import PolicySandbox, WorkspacePolicies

    victim = ActivePolicy("acme", "pol_victim", 1, parse_document(VICTIM))
    thief_doc = parse_document(
        "name: t\nrego: |\n  package t\n  import rego.v1\n"
        '  deny contains sprintf("%v", [data]) if true\n'
        '  deny contains sprintf("%v", [[v | walk(data, [_, v])]]) if true\n'
        "data: {mine: 1}\n"
    )
    thief = ActivePolicy("euro", "pol_thief", 1, thief_doc)
    wp = WorkspacePolicies.from_active([victim, thief])
    sandbox = PolicySandbox(workers=1, timeout=5.0)

    niceness = []

    async def go():
        try:
            out = await sandbox.evaluate(wp, "euro", json.dumps({"model": "gpt-4o", "workspace": {"id": "euro"}}))
            niceness.extend(os.getpriority(os.PRIO_PROCESS, w.pid) for w in sandbox._all)
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


def test_a_runaway_evaluation_only_gets_cpu_nobody_else_wants_and_its_replacement_is_a_fork():
    """Item 5's mechanism: past a few ms an evaluation's worker is SCHED_IDLE (it burns only spare CPU
    until its deadline); the worker killed at the deadline is replaced by a fork of the zygote that
    imported regorus once (not a new interpreter per runaway call); a benign policy keeps a
    normal-priority worker, and a demoted worker that answered in time is not reused."""
    from relaygate.decision.policy_sandbox import DEMOTE_AFTER, PolicySandbox, PolicyTimeout, WorkspacePolicies

    slow = lambda n: ActivePolicy("acme", "pol_slow", 1, parse_document(ABUSIVE.replace("1500000", str(n))))  # noqa: E731
    sandbox = PolicySandbox(workers=2, timeout=1.5)
    seen: dict = {}

    def ppid(pid):
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])

    async def watch(stop):
        while not stop.is_set():
            for w in list(sandbox._all):
                try:
                    if os.sched_getscheduler(w.pid) == os.SCHED_IDLE:
                        seen.setdefault("idle", w.pid)
                except ProcessLookupError:
                    pass
            await asyncio.sleep(0.005)

    async def go():
        try:
            wp = WorkspacePolicies.from_active([slow(50000000)])  # ~15 s of CPU
            fast = json.dumps({"user": "ok"})
            assert (await sandbox.evaluate(wp, "acme", fast))["denials"] == []
            first = {w.pid for w in sandbox._all}
            zygote = sandbox._zygote.proc.pid
            assert all(ppid(pid) == zygote for pid in first)
            assert all(os.sched_getscheduler(pid) == os.SCHED_OTHER for pid in first)
            stop = asyncio.Event()
            watcher = asyncio.ensure_future(watch(stop))
            with pytest.raises(PolicyTimeout):
                await sandbox.evaluate(wp, "acme", json.dumps({"user": "boom"}))
            stop.set()
            await watcher
            assert seen.get("idle") in first, "the runaway evaluation's worker was never lowered to SCHED_IDLE"
            for _ in range(200):  # the replacement comes up
                if len(sandbox._all) == 2 and seen["idle"] not in {w.pid for w in sandbox._all}:
                    break
                await asyncio.sleep(0.01)
            now = {w.pid for w in sandbox._all}
            assert seen["idle"] not in now and len(now) == 2
            assert all(ppid(pid) == zygote for pid in now), "the replacement is not a fork of the zygote"
            assert all(os.sched_getscheduler(pid) == os.SCHED_OTHER for pid in now)
            # Slow but within the deadline: answered, then the demoted worker is retired.
            seen.clear()
            wp2 = WorkspacePolicies.from_active([slow(150000)])  # ~50 ms of CPU
            stop = asyncio.Event()
            watcher = asyncio.ensure_future(watch(stop))
            before = {w.pid for w in sandbox._all}
            t0 = time.monotonic()
            out = await sandbox.evaluate(wp2, "acme", json.dumps({"user": "boom"}))
            stop.set()
            await watcher
            assert out["denials"] == [] and time.monotonic() - t0 > DEMOTE_AFTER
            assert seen.get("idle") in before
            for _ in range(200):
                if len(sandbox._all) == 2 and seen["idle"] not in {w.pid for w in sandbox._all}:
                    break
                await asyncio.sleep(0.01)
            assert seen["idle"] not in {w.pid for w in sandbox._all}, "a demoted worker went back to the pool"
        finally:
            await sandbox.close()

    asyncio.run(go())


def test_a_workspace_whose_evaluations_keep_running_long_waits_for_its_share_and_others_do_not():
    """Each workspace's evaluations may use a share of one worker's time (burst 1 s): once acme's
    runaway calls used it, acme's next evaluation waits for the time to refill (it is not refused:
    refusing at once invites a flood of cheap retries) while euro's runs at once."""
    from relaygate.decision.policy_sandbox import PolicySandbox, PolicyTimeout, WorkspacePolicies

    slow = ActivePolicy("acme", "pol_slow", 1, parse_document(ABUSIVE.replace("1500000", "500000000")))
    other = ActivePolicy("euro", "pol_benign", 1, parse_document(BENIGN))
    wp = WorkspacePolicies.from_active([slow, other])
    sandbox = PolicySandbox(workers=3, timeout=0.3, queue_timeout=5.0, share=0.25)

    async def go():
        try:
            timeouts = 0
            while sandbox._time_left("acme", time.monotonic()) >= 0:
                with pytest.raises(PolicyTimeout):
                    await sandbox.evaluate(wp, "acme", json.dumps({"user": "boom"}))
                timeouts += 1
            assert 3 <= timeouts <= 5, timeouts  # 1 s of burst at 0.3 s per runaway call
            owed = -sandbox._time_left("acme", time.monotonic()) / sandbox.share
            t = time.monotonic()
            euro = await sandbox.evaluate(wp, "euro", json.dumps({"model": "gpt-4o"}))
            euro_took = time.monotonic() - t
            t = time.monotonic()
            acme = await sandbox.evaluate(wp, "acme", json.dumps({"user": "ok"}))
            acme_took = time.monotonic() - t
            return owed, euro, euro_took, acme, acme_took
        finally:
            await sandbox.close()

    owed, euro, euro_took, acme, acme_took = asyncio.run(go())
    assert [d["reason"] for d in euro["denials"]] == ["gpt-4o is not approved here"]
    assert euro_took < 0.25, f"euro waited {euro_took:.2f}s for acme's share"
    assert acme["denials"] == [] and acme_took >= owed - euro_took - 0.05, (acme_took, owed)


def test_the_sandbox_processes_end_with_the_sidecar_even_on_sigkill(tmp_path):
    """The zygote holds only a socket to the sidecar: when the sidecar dies uncleanly it sees
    end-of-file and exits, and its workers die with it, one in the middle of a runaway evaluation
    included (nothing keeps running tenant Rego or holding memory after a crash)."""
    import signal
    import subprocess
    import sys

    script = tmp_path / "owner.py"
    script.write_text(
        "import asyncio, json, sys\n"
        "from relaygate.decision.policy_sandbox import PolicySandbox, WorkspacePolicies\n"
        "from relaygate.decision.workspace_policy import ActivePolicy, parse_document\n"
        f"doc = parse_document({ABUSIVE.replace('1500000', '500000000')!r})\n"  # minutes of CPU
        "wp = WorkspacePolicies.from_active([ActivePolicy('acme', 'pol_x', 1, doc)])\n"
        "async def go():\n"
        "    s = PolicySandbox(workers=2, timeout=30)\n"
        "    await s.evaluate(wp, 'acme', json.dumps({'user': 'ok'}))\n"
        "    while len(s._all) < 2:\n"
        "        await asyncio.sleep(0.01)\n"
        "    print(json.dumps([s._zygote.proc.pid] + [w.pid for w in s._all]), flush=True)\n"
        "    await s.evaluate(wp, 'acme', json.dumps({'user': 'boom'}))\n"
        "asyncio.run(go())\n"
    )
    owner = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    pids = json.loads(owner.stdout.readline())
    assert len(pids) == 3
    time.sleep(0.2)  # a worker is inside the runaway evaluation now
    owner.send_signal(signal.SIGKILL)
    owner.wait()

    def alive(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 15
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [p for p in pids if alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, f"sandbox processes outlived their sidecar: {left}"


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
        return curl(
            self.gw.base(ws) + "/chat/completions",
            chat_body(model, **extra),
            {"authorization": f"Bearer {self.tokens[ws]}", "content-type": "application/json"},
        )


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    stack, tokens = start_full_stack(tmp_path_factory, "advpol")
    yield Full(stack, tokens)
    stack.stop()


def test_gateway_a_workspace_policy_cannot_leak_another_workspaces_data(full):
    acme, euro = full.cp.client("acme"), full.cp.client("euro")
    assert acme.post("/v1/policies", yaml=VICTIM).status == 201
    eventually(lambda: full.call("acme", "gpt-4o").status == 403, 15, "acme's policy reaching the gateway")
    created = {
        way: euro.post("/v1/policies", yaml=text.replace("name: t", f"name: {way}-t")) for way, text in THIEVES.items()
    }
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
    assert created.status == 201, created.text  # the empty-input compile check cannot see it
    pid = created.json()["id"]
    benign = euro.post("/v1/policies", yaml=BENIGN.replace("no-gpt-4o", "euro-benign"))
    assert benign.status == 201, benign.text
    eventually(lambda: full.call("capped", user="marker").status == 403, 15, "capped's policy reaching the gateway")
    bundle_rev = full.cp.fleet.get("/v1/fleet/bundles/default").headers["etag"].strip('"')
    eventually(
        lambda: full.gw.receipt_doc(full.call("acme").receipt_id)["decision"]["bundle"] == bundle_rev,
        15,
        "acme's abusive policy reaching the gateway",
    )

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
    assert worst < 5.0, f"capped's slowest call took {worst:.2f}s"  # generous: a stalled loop takes far longer
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
