"""Log retention by plan, with a clock the test controls (retention.prune takes ``now``), against a
control plane driving a real gateway, on SQLite and on PostgreSQL.

Past its plan's retention a workspace's control-plane events are gone and its receipts pruned:
out of the request logs and the feed's filters, their body gone, yet each still a leaf of the
Merkle log, its inclusion proof still served and verifying for whoever kept the signed receipt,
the tree itself unchanged. Workspaces on longer plans, or none, keep theirs.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from relaygate.controlplane import db, retention
from relaygate.controlplane.plans import DEFAULT_PLANS
from relaygate.evidence.merkle import leaf_hash, verify_inclusion
from relaygate.evidence.receipts import leaf_bytes
from tests.conftest import ControlPlane, Gateway, start_full_stack
from tests.cpclient import eventually
from tests.httpcall import chat_body, curl

DAY_MS = 86_400_000


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def full(request, tmp_path_factory):
    url = ""
    if request.param == "postgresql":
        pg = request.getfixturevalue("postgres")
        pg.reset_database()
        url = pg.url
    stack, tokens = start_full_stack(tmp_path_factory, f"retention-{request.param}", database_url=url)
    url = url or f"sqlite:///{stack.cp_data / 'controlplane.db'}"
    yield ControlPlane(stack, tokens), Gateway(stack, tokens), url
    stack.stop()


def _call(gw: Gateway, cp: ControlPlane, ws: str) -> str:
    r = curl(
        gw.base(ws) + "/chat/completions",
        chat_body("gpt-4o-mini", max_tokens=4),
        {"authorization": f"Bearer {cp.tokens[ws]}", "content-type": "application/json"},
    )
    assert r.receipt_id, r.body  # allowed or refused (swiss: sovereignty), a decided call has its receipt
    return r.receipt_id


class Patient:
    """A control-plane client that waits out 429s (acme is put on the free plan: 10 calls/s)."""

    def __init__(self, client) -> None:
        self.client = client

    def __getattr__(self, method):
        call = getattr(self.client, method)

        def patient(*a, **kw):
            deadline = time.monotonic() + 20
            while (r := call(*a, **kw)).status == 429 and time.monotonic() < deadline:
                time.sleep(0.2)
            return r

        return patient


def _relay_records(url: str, ws: str) -> int:
    """The workspace's /api/relay records (their metadata), read from the database itself."""
    import sqlalchemy as sa

    from relaygate.controlplane import schema

    async def go():
        engine = db.create_engine(url)
        try:
            async with engine.connect() as c:
                q = sa.select(sa.func.count()).where(schema.relay_calls.c.workspace_id == ws)
                return (await c.execute(q)).scalar()
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _prune(url: str, now_ms: int) -> dict:
    async def go():
        engine = db.create_engine(url)
        try:
            return await retention.prune(engine, {k: dict(v) for k, v in DEFAULT_PLANS.items()}, 60.0, now_ms)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_retention_by_plan_prunes_logs_and_keeps_receipts_provable(full):
    cp, gw, url = full
    admin = cp.admin
    assert admin.put("/v1/workspaces/acme", {"plan": "free"}).status == 200  # 7 days
    assert admin.put("/v1/workspaces/euro", {"plan": "team"}).status == 200  # 30 days
    acme, euro, swiss = (Patient(cp.client(ws)) for ws in ("acme", "euro", "swiss"))
    assert acme.get("/v1/workspaces/acme/limits").json()["limits"]["log_retention_days"] == 7
    pol = acme.post(
        "/v1/policies",
        yaml='name: retention-probe\nrego: |\n  package probe\n  import rego.v1\n  deny contains "x" if input.model == "none"\n',
    )
    assert pol.status == 201, pol.text
    rids = {ws: _call(gw, cp, ws) for ws in ("acme", "euro", "swiss")}
    relayed = acme.post(
        "/api/relay",
        {
            "to": "gpt-4o-mini",
            "payload": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
            "metadata": {"session": "retention-probe-session"},
        },
    )
    assert relayed.status == 200, relayed.text
    eventually(lambda: "retention-probe-session" in acme.get("/api/logs").text, 30, "the relayed call in the logs")
    assert _relay_records(url, "acme") >= 1
    # every receipt in the log, and the acme receipt's signed envelope and proof kept by its holder
    kept = eventually(
        lambda: (e := acme.get(f"/v1/audit/events/{rids['acme']}").json()).get("inclusion_proof") and e,
        30,
        "the acme receipt in the Merkle log",
    )
    for ws, client in (("euro", euro), ("swiss", swiss)):
        eventually(lambda: client.get(f"/v1/audit/events/{rids[ws]}").status == 200, 30, f"the {ws} receipt")
    envelope = kept["receipt"]
    before = acme.get("/v1/audit/checkpoints/latest").json()

    # eight days on: acme (7 days) loses its logs, euro (30) and swiss (no plan) keep theirs
    now = kept_ms = int(time.time() * 1000)
    done = _prune(url, now + 8 * DAY_MS)
    assert done["acme"]["receipts_pruned"] >= 1 and done["acme"]["events_deleted"] >= 1, done
    assert "euro" not in done and "swiss" not in done, done

    gone = acme.get(f"/v1/audit/events/{rids['acme']}").json()
    assert gone["kind"] == "gateway.call.pruned" and gone["receipt"] is None and gone["model"] is None
    assert rids["acme"] not in {
        e["id"] for e in acme.get("/v1/audit/events", params={"kind": "gateway.call"}).json()["events"]
    }
    assert rids["acme"] not in acme.get("/api/logs").text
    assert "retention-probe-session" not in acme.get("/api/logs").text
    assert _relay_records(url, "acme") == 0 and _relay_records(url, "swiss") == 0  # its metadata is gone too
    assert pol.json()["id"] not in acme.get("/v1/audit/events", params={"kind": "policy.*", "limit": 200}).text
    assert euro.get(f"/v1/audit/events/{rids['euro']}").json()["kind"] == "gateway.call"
    assert swiss.get(f"/v1/audit/events/{rids['swiss']}").json()["receipt"] is not None

    # still provable: the leaf is untouched, the proof is served and verifies for the kept receipt
    proof = acme.get("/v1/audit/proofs/inclusion", params={"event_id": rids["acme"]})
    assert proof.status == 200, proof.text
    p = proof.json()
    head = acme.get("/v1/audit/checkpoints/latest").json()
    assert head["size"] >= before["size"]
    if head["size"] == p["tree_size"]:
        root = bytes.fromhex(head["root_hash"])
    else:
        root = bytes.fromhex(before["root_hash"]) if before["size"] == p["tree_size"] else None
    assert root is not None
    verify_inclusion(
        p["leaf_index"], p["tree_size"], leaf_hash(leaf_bytes(envelope)), [bytes.fromhex(h) for h in p["hashes"]], root
    )
    # and an evidence bundle over the pruned range still assembles and verifies, without it
    made = acme.post("/v1/evidence/bundles", {"components": ["receipts"]})
    assert made.status == 202, made.text
    job = made.json()["id"]
    status = eventually(
        lambda: (s := acme.get(f"/v1/evidence/bundles/{job}/status").json())["status"] in ("done", "failed") and s,
        60,
        "the evidence job",
    )
    assert status["status"] == "done", status
    assert acme.get(f"/v1/evidence/bundles/{job}/verify").json()["ok"] is True

    # a month on: euro's go too; swiss, on no plan, never
    done = _prune(url, kept_ms + 31 * DAY_MS)
    assert done.get("euro", {}).get("receipts_pruned", 0) >= 1, done
    assert _prune(url, kept_ms + 400 * DAY_MS).get("swiss") is None
    assert swiss.get(f"/v1/audit/events/{rids['swiss']}").json()["kind"] == "gateway.call"
    # pruning again changes nothing
    assert "acme" not in _prune(url, kept_ms + 8 * DAY_MS)
