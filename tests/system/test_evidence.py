"""Evidence end to end: signed receipts -> Merkle log -> evidence bundle -> offline verification.

Real traffic through Envoy and the sidecar, a sidecar key rotation and a
tree-head key rotation along the way, a bundle assembled through the API,
verified by `relaygate verify` with no network, then tampered with in every way
the issue lists, each caught with its own message.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relaygate.evidence import dsse
from relaygate.evidence import evidence_bundle as eb
from relaygate.evidence.checkpoint import sign_checkpoint, verify_checkpoint
from relaygate.evidence.custody import iso_ms
from relaygate.evidence.merkle import leaf_hash, verify_consistency, verify_inclusion
from relaygate.evidence.receipts import canonical, envelope_statement, leaf_bytes, sign_receipt
from relaygate.evidence.signing import load_public_key, signer_for
from relaygate.evidence.verify import verify_bundle
from devstack.processes import Stack
from tests.conftest import POLICY_DIR, Gateway, write_config
from tests.cpclient import CP, eventually
from tests.httpcall import chat_body, curl


@pytest.fixture(scope="module")
def ev(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evidence")
    tokens = write_config(tmp / "config")
    stack = Stack(
        tmp / "run",
        config_dir=tmp / "config",
        policy_dir=POLICY_DIR,
        controlplane=True,
        unreachable={"openai-dead"},
        instance_id="ev-sidecar",
        cp_extra_args=["--checkpoint-interval", "1"],
    )
    stack.start()
    gw = Gateway(stack, tokens)
    cp = CP(stack.cp_url, tokens["acme"])
    admin = CP(stack.cp_url, stack.admin_token)

    def traffic(n: int, tag: str) -> list[str]:
        rids = []
        for i in range(n):
            h = {"authorization": f"Bearer {tokens['acme']}", "content-type": "application/json"}
            model = ["gpt-4o-mini", "no-such-model", "claude-sonnet-4-5"][i % 3]
            path = "/messages" if model.startswith("claude") else "/chat/completions"
            body = chat_body(model, content=f"{tag} {i}", max_tokens=5)
            rids.append(curl(gw.base("acme") + path, body, h).receipt_id)
        for rid in rids:
            eventually(lambda: cp.get(f"/v1/audit/events/{rid}").status == 200, 20, f"{rid} at the control plane")
        return rids

    state = {"stack": stack, "gw": gw, "cp": cp, "admin": admin, "tokens": tokens, "tmp": tmp}
    state["before"] = traffic(6, "before rotation")
    key_file = stack.run_dir / "data" / "receipt-signing.pem"
    state["old_key"] = serialization.load_pem_private_key(key_file.read_bytes(), None)
    rot = admin.post("/v1/fleet/credentials/rotate", {"kind": "receipt_signing", "instance_id": "ev-sidecar"})
    assert rot.status == 202, rot.text
    rid = rot.json()["rotation_id"]
    done = eventually(
        lambda: (r := admin.get(f"/v1/fleet/credentials/rotations/{rid}").json())["status"] == "done" and r,
        20,
        "the sidecar rotating its key",
    )
    state["rotation"] = done
    state["after"] = traffic(6, "after sidecar rotation")
    tree = admin.post("/v1/fleet/credentials/rotate", {"kind": "tree_head"})
    assert tree.status == 200 and tree.json()["custody_event"]["type"] == "key.introduced"
    state["after_tree"] = traffic(3, "after tree rotation")
    yield state
    stack.stop()


def _bundle(ev, body=None) -> bytes:
    cp = ev["cp"]
    job = cp.post("/v1/evidence/bundles", body or {"components": list(eb.COMPONENTS)})
    assert job.status == 202, job.text
    jid = job.json()["id"]
    seen = []

    def ready():
        r = cp.get(f"/v1/evidence/bundles/{jid}")
        seen.append(r.json()["progress"] if r.status == 202 else 1.0)
        return r if r.status == 200 else None

    reply = eventually(ready, 60, "the evidence bundle")
    assert reply.headers["content-type"] == "application/gzip"
    status = cp.get(f"/v1/evidence/bundles/{jid}/status").json()
    assert status["status"] == "done" and status["progress"] == 1.0 and status["sha256"]
    ev.setdefault("jobs", []).append(jid)
    return cp.session.get(
        f"{cp.url}/v1/evidence/bundles/{jid}", headers={"Authorization": f"Bearer {cp.token}"}
    ).content


@pytest.fixture(scope="module")
def bundle(ev) -> bytes:
    blob = _bundle(ev)
    assert ev["cp"].get(f"/v1/evidence/bundles/{ev['jobs'][0]}/status").json()["stats"]["receipts"] >= 15
    return blob


def _trusted(ev) -> Path:
    keys = CP(ev["stack"].cp_url).get("/v1/audit/keys").json()
    path = ev["tmp"] / "cp-root.pub"
    path.write_text(keys["root_public_key"])
    return path


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "relaygate.evidence.cli", "verify", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_bundle_verifies_offline_with_the_cli(ev, bundle, tmp_path):
    path = tmp_path / "bundle.tar.gz"
    path.write_bytes(bundle)
    out = _cli(path, "--trusted-key", _trusted(ev))
    assert out.returncode == 0, out.stdout
    assert "VERIFIED" in out.stdout and "(pinned)" in out.stdout
    report = json.loads(_cli(path, "--trusted-key", _trusted(ev), "--json").stdout)
    assert report["ok"] and report["pinned"] and report["stats"]["receipts"] >= 15
    checks = {c["check"] for c in report["checks"]}
    assert {"manifest", "digests", "custody", "checkpoints", "consistency", "receipts", "chain", "policies"} <= checks
    files = eb.read(bundle)
    manifest = json.loads(files[eb.MANIFEST])
    assert {f["path"] for f in manifest["files"]} >= {
        eb.RECEIPTS,
        eb.INCLUSION,
        eb.CHECKPOINTS,
        eb.CUSTODY,
        eb.POLICIES,
        eb.DEPLOYMENTS,
        eb.POSTURE,
    }
    custody = [json.loads(line) for line in files[eb.CUSTODY].splitlines()]
    kinds = [json.loads(base64.b64decode(e["payload"]))["type"] for e in custody]
    assert kinds.count("key.introduced") >= 2  # the sidecar's and the control plane's rotations
    receipts = [json.loads(line) for line in files[eb.RECEIPTS].splitlines()]
    signers = {r["envelope"]["signatures"][0]["keyid"] for r in receipts}
    assert len(signers) == 2  # receipts before and after the sidecar's rotation


def test_server_side_verify_agrees(ev, bundle):
    jid = ev["jobs"][0]
    report = ev["cp"].get(f"/v1/evidence/bundles/{jid}/verify").json()
    assert report["ok"] and "(pinned)" in report["trust"] and not report["failures"]


def test_audit_event_carries_a_verifiable_inclusion_proof_and_checkpoints_are_consistent(ev):
    cp = ev["cp"]
    keys = CP(cp.url).get("/v1/audit/keys").json()
    rid = ev["after"][0]
    event = cp.get(f"/v1/audit/events/{rid}").json()
    p = event["inclusion_proof"]
    current = load_public_key(keys["current_public_key"].encode())
    head = verify_checkpoint(p["checkpoint"], current)
    verify_inclusion(
        p["leaf_index"],
        p["tree_size"],
        leaf_hash(leaf_bytes(event["receipt"])),
        [bytes.fromhex(h) for h in p["hashes"]],
        head.root,
    )
    again = cp.get("/v1/audit/proofs/inclusion", params={"event_id": rid}).json()
    assert again["leaf_index"] == p["leaf_index"]
    first = cp.get("/v1/audit/checkpoints", params={"limit": 1000}).json()["checkpoints"][-1]
    latest = cp.post("/v1/audit/checkpoints").json()
    proof = cp.get("/v1/audit/proofs/consistency", params={"first": first["size"], "second": latest["size"]}).json()
    verify_consistency(
        first["size"],
        latest["size"],
        bytes.fromhex(first["root_hash"]),
        bytes.fromhex(latest["root_hash"]),
        [bytes.fromhex(h) for h in proof["hashes"]],
    )
    assert ev["cp"].get("/v1/audit/proofs/consistency", params={"first": 5, "second": 10**9}).status == 400
    other = CP(cp.url, ev["tokens"]["euro"]).get("/v1/audit/proofs/inclusion", params={"event_id": rid})
    assert other.status == 404


def test_bundle_job_is_scoped_and_validated(ev):
    euro = CP(ev["stack"].cp_url, ev["tokens"]["euro"])
    assert euro.get(f"/v1/evidence/bundles/{ev['jobs'][0]}").status == 404
    bad = ev["cp"].post("/v1/evidence/bundles", {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"})
    assert bad.status == 400 and bad.json()["error"]["details"]["parameter"] == "to"
    assert ev["cp"].post("/v1/evidence/bundles", {"components": ["nonsense"]}).status == 400
    empty = _bundle(ev, {"from": "2000-01-01T00:00:00Z", "to": "2000-01-02T00:00:00Z", "components": ["receipts"]})
    assert eb.read(empty)[eb.RECEIPTS] == b""
    assert verify_bundle(empty).ok  # nothing in the range, still a signed, consistent bundle


# -- tampering ----------------------------------------------------------------------------------


def _repack(files: dict, fix: bool = True) -> bytes:
    """Re-tar ``files``; with ``fix`` the attacker also rewrites the manifest digests (but cannot re-sign)."""
    files = dict(files)
    if fix:
        m = json.loads(files[eb.MANIFEST])
        m["files"] = [
            {"path": p, "sha256": eb.sha256_hex(files[p]), "bytes": len(files[p])}
            for p in sorted(files)
            if p not in (eb.MANIFEST, eb.MANIFEST_SIG)
        ]
        files[eb.MANIFEST] = canonical(m)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    import gzip

    return gzip.compress(raw.getvalue())


def _rows(files) -> list[dict]:
    return [json.loads(line) for line in files[eb.RECEIPTS].splitlines()]


def _set_rows(files, rows) -> None:
    files[eb.RECEIPTS] = eb.jsonl(rows)


def _messages(blob: bytes, ev) -> str:
    report = verify_bundle(blob, load_public_key(_trusted(ev).read_bytes()))
    assert not report.ok
    return "\n".join(f"{f.check}: {f.message} [{f.file or ''} {f.receipt or ''}]" for f in report.failures)


def test_one_byte_of_a_receipt_changed(ev, bundle):
    files = eb.read(bundle)
    rows = _rows(files)
    payload = bytearray(base64.b64decode(rows[2]["envelope"]["payload"]))
    at = payload.index(b'"usd_micros":') + len(b'"usd_micros":')
    payload[at] = ord("9") if payload[at] != ord("9") else ord("8")  # one digit of the cost
    rows[2]["envelope"]["payload"] = base64.b64encode(bytes(payload)).decode()
    _set_rows(files, rows)
    msgs = _messages(_repack(files), ev)
    assert "signature does not verify with" in msgs and "(receipt altered)" in msgs and rows[2]["event_id"] in msgs
    assert "manifest signature does not verify" in msgs


def test_a_receipt_removed(ev, bundle):
    files = eb.read(bundle)
    rows = _rows(files)
    gone = rows.pop(4)
    _set_rows(files, rows)
    msgs = _messages(_repack(files), ev)
    assert "is listed as included but is not in receipts.jsonl (removed)" in msgs
    assert gone["event_id"] not in [r["event_id"] for r in rows]


def test_two_receipts_swapped(ev, bundle):
    files = eb.read(bundle)
    rows = _rows(files)
    rows[1]["envelope"], rows[3]["envelope"] = rows[3]["envelope"], rows[1]["envelope"]
    _set_rows(files, rows)
    msgs = _messages(_repack(files), ev)
    assert "not in the signed log at leaf" in msgs
    assert f"row names {rows[1]['event_id']} but the signed receipt is" in msgs


def test_a_receipt_resigned_with_an_unknown_key(ev, bundle):
    files = eb.read(bundle)
    rows = _rows(files)
    st = envelope_statement(rows[5]["envelope"])
    intruder = signer_for(Ed25519PrivateKey.generate())
    st["predicate"]["cost"]["usd_micros"] = 0
    rows[5]["envelope"], _ = sign_receipt(st["predicate"], intruder)
    _set_rows(files, rows)
    msgs = _messages(_repack(files), ev)
    assert f"signed by unknown key {intruder.key_id}" in msgs


def test_a_tree_head_forged(ev, bundle):
    files = eb.read(bundle)
    notes = json.loads(files[eb.CHECKPOINTS])
    forger = signer_for(Ed25519PrivateKey.generate())
    from relaygate.evidence.checkpoint import parse

    cp, _, _ = parse(notes[-1])
    notes[-1] = sign_checkpoint(cp.origin, cp.size, bytes(32), cp.timestamp_ms, forger)
    files[eb.CHECKPOINTS] = canonical(notes)
    msgs = _messages(_repack(files), ev)
    assert f"checkpoint of size {cp.size}: signature does not verify with any control-plane tree-head key" in msgs


def test_a_manifest_digest_altered(ev, bundle):
    files = eb.read(bundle)
    m = json.loads(files[eb.MANIFEST])
    target = next(f for f in m["files"] if f["path"] == eb.POSTURE)
    target["sha256"] = "0" * 64
    files[eb.MANIFEST] = canonical(m)
    msgs = _messages(_repack(files, fix=False), ev)
    assert f"{eb.POSTURE} does not match its manifest digest" in msgs
    assert "manifest signature does not verify" in msgs


def test_a_policy_version_missing(ev, bundle):
    files = eb.read(bundle)
    index = json.loads(files[eb.POLICIES])
    ref = "relaygate.sovereignty@1.0.0"
    del files[index.pop(ref)["path"]]
    files[eb.POLICIES] = canonical(index)
    msgs = _messages(_repack(files), ev)
    assert f"receipt cites {ref}, which is not in the bundle" in msgs


def test_a_receipt_signed_by_a_retired_key(ev, bundle):
    """Someone holding the sidecar's old private key signs a receipt after the key was retired."""
    files = eb.read(bundle)
    rows = _rows(files)
    old = signer_for(ev["old_key"])
    late = envelope_statement(rows[-1]["envelope"])["predicate"]
    late["issued_at"] = iso_ms(time.time())
    rows[-1]["envelope"], _ = sign_receipt(late, old)
    _set_rows(files, rows)
    msgs = _messages(_repack(files), ev)
    assert f"signed by {old.key_id} after its retirement at" in msgs


def test_the_verifier_reports_an_unpinned_root_and_refuses_a_foreign_pin(ev, bundle, tmp_path):
    path = tmp_path / "b.tar.gz"
    path.write_bytes(bundle)
    out = _cli(path)
    assert out.returncode == 3 and "NOT pinned" in out.stdout and "trust is only self-asserted" in out.stderr
    assert _cli(path, "--allow-unpinned").returncode == 0
    foreign = tmp_path / "foreign.pub"
    foreign.write_bytes(signer_for(Ed25519PrivateKey.generate()).public_pem())
    out = _cli(path, "--trusted-key", foreign)
    assert out.returncode == 1 and "is not a control-plane key of this bundle's custody chain" in out.stdout
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"not a bundle")
    assert _cli(garbage).returncode == 1
    assert _cli(tmp_path / "missing.tar.gz").returncode == 2


def test_dsse_signatures_cover_the_payload_type(ev, bundle):
    rows = _rows(eb.read(bundle))
    env = dict(rows[0]["envelope"], payloadType="application/json")
    key = load_public_key((ev["stack"].run_dir / "data" / "receipt-signing.pub").read_bytes())
    assert not dsse.verify_envelope(env, key)


@pytest.mark.slow
def test_single_file_verifier_from_make_runs_without_the_project(ev, bundle, tmp_path):
    root = Path(__file__).resolve().parents[2]
    # pip (inside make) reaches the package index with the machine's trust store, not the test CA
    # that conftest puts in SSL_CERT_FILE & co for this process's clients.
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    build = subprocess.run(["make", "-C", str(root), "verifier"], capture_output=True, text=True, timeout=600, env=env)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    pyz = root / "dist" / "relaygate-verify.pyz"
    path = tmp_path / "bundle.tar.gz"
    path.write_bytes(bundle)
    base_python = Path(sys.base_prefix) / "bin" / "python3"  # no venv, none of the project's packages
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SHIV_ROOT": str(tmp_path / "shiv")}
    out = subprocess.run(
        [str(base_python), "-I", str(pyz), "verify", str(path), "--trusted-key", str(_trusted(ev))],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "VERIFIED" in out.stdout
    files = eb.read(bundle)
    files[eb.POSTURE] = b"[]"
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(_repack(files))
    out = subprocess.run(
        [str(base_python), "-I", str(pyz), "verify", str(bad), "--trusted-key", str(_trusted(ev))],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 1 and "manifest signature does not verify" in out.stdout
