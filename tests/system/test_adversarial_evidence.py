"""Evidence against a forger: bundles built by someone who does not hold the control plane's keys.

The attacker has a genuine bundle (from a real stack: Envoy, the sidecar, the control plane, a
sidecar key rotation and a tree-head key rotation) and keys of their own. They prepend their own
"root" to the custody chain, replay the genuine root's registration with their countersignature
(so the pinned key still appears in the chain), register more keys countersigned by their root,
and sign manifests and tree heads with them. The auditor pins the genuine root
(`--trusted-key`) and may hold a checkpoint from earlier (`--after-checkpoint`). Every forgery
must fail through the real CLI with its own message; the server-side verifier must agree.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relaygate.evidence import dsse
from relaygate.evidence import evidence_bundle as eb
from relaygate.evidence.checkpoint import parse, sign_checkpoint
from relaygate.evidence.custody import CONTROL_PLANE, event, event_of, iso_ms, sign_event, to_ms
from relaygate.evidence.merkle import MerkleLog, leaf_hash
from relaygate.evidence.receipts import canonical, envelope_receipt, leaf_bytes
from relaygate.evidence.signing import signer_for
from tests.cpclient import CP, eventually
from tests.system.test_evidence import _bundle, _cli, _repack, _trusted, bundle, ev  # noqa: F401  (module fixtures)


# -- the forger's toolkit ---------------------------------------------------------------------------


def _custody(files) -> list[dict]:
    return [json.loads(line) for line in files[eb.CUSTODY].splitlines() if line.strip()]


def _rows(files, name=eb.RECEIPTS) -> list[dict]:
    return [json.loads(line) for line in files[name].splitlines() if line.strip()]


def _notes(files) -> list[str]:
    return json.loads(files[eb.CHECKPOINTS])


class Forger:
    """Keys of the attacker's own and a custody chain that names the genuine root in it."""

    def __init__(self, files) -> None:
        self.root = signer_for(Ed25519PrivateKey.generate())  # "A": the attacker's root
        self.tree = signer_for(Ed25519PrivateKey.generate())  # "A2": the attacker's tree-head key
        self.manifest = json.loads(files[eb.MANIFEST])
        genuine = _custody(files)
        first = event_of(genuine[0])
        assert first["owner"] == CONTROL_PLANE and first["type"] == "key.registered"
        self.genuine_root = first["key_id"]
        t_root = to_ms(first["at"])
        # The latest time any genuine control-plane signature in the bundle needs its key valid.
        last_cp = max([parse(n)[0].timestamp_ms for n in _notes(files)] + [t_root])
        self.tree_at = last_cp + 5
        mine = sign_event(
            event(
                "key.registered",
                CONTROL_PLANE,
                "root",
                self.root,
                (t_root - 1000) / 1000,
                event_id="cust_attacker_root",
            ),
            self.root,
        )
        replay = dsse.add_signature(genuine[0], self.root)  # genuine, plus A's countersignature
        tree = sign_event(
            event(
                "key.registered",
                CONTROL_PLANE,
                "tree-head",
                self.tree,
                self.tree_at / 1000,
                event_id="cust_attacker_tree",
            ),
            self.tree,
            self.root,
        )
        self.custody = [mine, replay, *genuine[1:], tree]

    def pack(self, files: dict, signer, log: dict | None = None) -> bytes:
        """Re-sign the manifest over ``files`` with ``signer`` (valid from its registration)."""
        files = {k: v for k, v in files.items() if k not in (eb.MANIFEST, eb.MANIFEST_SIG)}
        files[eb.CUSTODY] = eb.jsonl(self.custody)
        manifest = {k: v for k, v in self.manifest.items() if k != "files"}
        manifest["created_at"] = iso_ms((self.tree_at + 10) / 1000)
        if log is not None:
            manifest["log"] = log
        return eb.write(files, manifest, signer)


@pytest.fixture()
def files(bundle):
    return eb.read(bundle)


def _verify(tmp_path: Path, blob: bytes, *args) -> subprocess.CompletedProcess:
    path = tmp_path / f"bundle-{time.monotonic_ns()}.tar.gz"
    path.write_bytes(blob)
    return _cli(path, *args)


def _pinned(ev, tmp_path, blob, *args) -> subprocess.CompletedProcess:
    out = _verify(tmp_path, blob, "--trusted-key", _trusted(ev), *args)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAILED" in out.stdout.splitlines()[0], out.stdout
    return out


# -- the forgeries ------------------------------------------------------------------------------------


def test_root_substitution_with_a_countersigned_replay_of_the_genuine_root(ev, files, tmp_path):
    """The chain starts with the attacker's root; the genuine root's registration follows, countersigned."""
    forger = Forger(files)
    files[eb.POSTURE] = canonical([{"id": "nobody", "posture": {"note": "rewritten by the forger"}}])
    blob = forger.pack(files, forger.root)
    out = _pinned(ev, tmp_path, blob)
    assert f"starts with root {forger.root.key_id}, not the pinned root {forger.genuine_root}" in out.stdout
    assert f"manifest is signed by {forger.root.key_id}, which does not chain to the pinned root" in out.stdout


def test_attacker_key_countersigned_by_its_own_root_cannot_sign_a_truncated_tree_head(ev, files, tmp_path):
    """Truncate-and-resign: keep the first half of the log, rebuild the tree, sign a new head with A2."""
    forger = Forger(files)
    rows = sorted(_rows(files), key=lambda r: r["leaf_index"])
    kept = rows[: len(rows) // 2]
    assert len(kept) >= 3
    tree = MerkleLog()
    for i, r in enumerate(kept):
        r["leaf_index"] = i
        tree.append(leaf_hash(leaf_bytes(r["envelope"])))
    size, root = len(kept), tree.root()
    note = sign_checkpoint(parse(_notes(files)[-1])[0].origin, size, root, forger.tree_at + 1, forger.tree)
    files[eb.RECEIPTS] = eb.jsonl(kept)
    files[eb.INCLUSION] = eb.jsonl(
        [
            {
                "event_id": r["event_id"],
                "leaf_index": r["leaf_index"],
                "tree_size": size,
                "hashes": [h.hex() for h in tree.inclusion_proof(r["leaf_index"], size)],
            }
            for r in kept
        ]
    )
    files[eb.CHECKPOINTS] = canonical([note])
    files[eb.CONSISTENCY] = canonical([])
    last = {}
    for r in kept:
        rc = envelope_receipt(r["envelope"])
        last[rc["sidecar"]] = max(last.get(rc["sidecar"], -1), rc["seq"])
    files[eb.CHAINS] = eb.jsonl([s for s in _rows(files, eb.CHAINS) if s["seq"] <= last.get(s["owner"], -1)])
    blob = forger.pack(files, forger.tree, {"origin": "relaygate.audit/v1", "tree_size": size, "root_hash": root.hex()})
    out = _pinned(ev, tmp_path, blob)
    assert (
        f"custody event cust_attacker_tree (key.registered {forger.tree.key_id}): a second control-plane "
        "root" in out.stdout
    ), out.stdout
    assert f"checkpoint of size {size}: signature does not verify with any control-plane tree-head key" in out.stdout
    assert f"manifest is signed by {forger.tree.key_id}, which does not chain to the pinned root" in out.stdout


def test_dropping_denial_receipts_and_resigning_the_manifest(ev, files, tmp_path):
    forger = Forger(files)
    rows = _rows(files)
    denied = [r for r in rows if not envelope_receipt(r["envelope"])["decision"]["allow"]]
    assert denied, "the traffic has denials (an unknown model)"
    gone = {r["event_id"] for r in denied}
    gone_seq = {(envelope_receipt(r["envelope"])["sidecar"], envelope_receipt(r["envelope"])["seq"]) for r in denied}
    files[eb.RECEIPTS] = eb.jsonl([r for r in rows if r["event_id"] not in gone])
    files[eb.INCLUSION] = eb.jsonl([p for p in _rows(files, eb.INCLUSION) if p["event_id"] not in gone])
    files[eb.CHAINS] = eb.jsonl(
        [{**s, "included": False} if (s["owner"], s["seq"]) in gone_seq else s for s in _rows(files, eb.CHAINS)]
    )
    out = _pinned(ev, tmp_path, forger.pack(files, forger.root))
    assert f"manifest is signed by {forger.root.key_id}, which does not chain to the pinned root" in out.stdout
    # The same forgery with the attacker's tree key: refused the same way.
    out = _pinned(ev, tmp_path, forger.pack(files, forger.tree))
    assert f"manifest is signed by {forger.tree.key_id}, which does not chain to the pinned root" in out.stdout


def test_server_side_verify_refuses_a_forged_bundle_in_its_store(ev, files, tmp_path):
    """Someone with write access to the bundle store (the database's evidence_blobs) swaps a stored
    bundle for a forgery."""
    import sqlite3

    forger = Forger(files)
    files[eb.POSTURE] = canonical([])
    forged = forger.pack(files, forger.root)
    jid = _bundle_id(ev)
    with sqlite3.connect(ev["stack"].cp_data / "controlplane.db") as db:
        assert db.execute("UPDATE evidence_blobs SET data = ? WHERE id = ?", (forged, jid)).rowcount == 1
    cp = ev["cp"]
    served = cp.session.get(f"{cp.url}/v1/evidence/bundles/{jid}", headers={"Authorization": f"Bearer {cp.token}"})
    assert served.content == forged  # the store is what the control plane serves
    report = ev["cp"].get(f"/v1/evidence/bundles/{jid}/verify").json()
    assert report["ok"] is False, report
    messages = [f["message"] for f in report["failures"]]
    assert any(
        f"manifest is signed by {forger.root.key_id}, which does not chain to the pinned root" in m for m in messages
    ), messages


def _bundle_id(ev) -> str:
    """A fresh stored bundle of the workspace (so the module's shared one stays intact)."""
    _bundle(ev)
    return ev["jobs"][-1]


# -- freshness ------------------------------------------------------------------------------------


def _held_checkpoint(ev, tmp_path) -> tuple[Path, dict]:
    cp = ev["cp"]
    signed = cp.post("/v1/audit/checkpoints")
    assert signed.status == 201, signed.text
    latest = cp.get("/v1/audit/checkpoints/latest").json()
    path = tmp_path / f"held-{latest['size']}.json"
    path.write_text(json.dumps(latest))
    return path, latest


def test_stale_replay_fails_against_a_held_checkpoint(ev, bundle, tmp_path):
    """The bundle is genuine but old: the auditor already holds a newer signed tree head."""
    old_size = max(parse(n)[0].size for n in json.loads(eb.read(bundle)[eb.CHECKPOINTS]))
    rid = _one_call(ev, "after the first bundle")
    eventually(lambda: ev["cp"].get(f"/v1/audit/events/{rid}").status == 200, 20, "the receipt ingested")
    held, latest = _held_checkpoint(ev, tmp_path)
    assert latest["size"] > old_size
    out = _pinned(ev, tmp_path, bundle, "--after-checkpoint", held)
    assert (
        f"stale: the bundle's newest tree head has size {old_size}, older than the checkpoint you hold "
        f"(size {latest['size']})"
    ) in out.stdout, out.stdout
    # A bundle assembled now verifies against the same held checkpoint (it extends it).
    fresh = _verify(tmp_path, _bundle(ev), "--trusted-key", _trusted(ev), "--after-checkpoint", held)
    assert fresh.returncode == 0, fresh.stdout
    assert f"consistent with the checkpoint you hold (size {latest['size']})" in fresh.stdout
    # The signed note alone (no JSON around it) is accepted too.
    note = tmp_path / "held.note"
    note.write_text(latest["checkpoint"])
    again = _verify(tmp_path, _bundle(ev), "--trusted-key", _trusted(ev), "--after-checkpoint", note)
    assert again.returncode == 0, again.stdout


def test_a_held_checkpoint_older_than_the_bundle_is_checked_with_a_requested_proof(ev, tmp_path):
    """The auditor's checkpoint predates the bundle's first tree head: the bundle must carry a
    consistency proof from it (requested with consistency_from), or the check fails saying so."""
    held, latest = _held_checkpoint(ev, tmp_path)
    for i in range(2):  # two tree heads after the held one, so the bundle's first is not it
        between = _one_call(ev, f"between the held checkpoint and the range {i}")
        eventually(lambda: ev["cp"].get(f"/v1/audit/events/{between}").status == 200, 20, "the receipt ingested")
        assert ev["cp"].post("/v1/audit/checkpoints").json()["size"] > latest["size"] + i
    since = iso_ms(time.time())
    time.sleep(0.01)  # the next call starts strictly after `since` (ms resolution)
    rid = _one_call(ev, "inside the range")
    eventually(lambda: ev["cp"].get(f"/v1/audit/events/{rid}").status == 200, 20, "the receipt ingested")
    body = {"from": since, "components": ["receipts"]}
    plain = _bundle(ev, body)
    assert latest["size"] not in {parse(n)[0].size for n in json.loads(eb.read(plain)[eb.CHECKPOINTS])}
    out = _pinned(ev, tmp_path, plain, "--after-checkpoint", held)
    assert f"no consistency proof from the checkpoint you hold (size {latest['size']})" in out.stdout, out.stdout
    proved = _bundle(ev, {**body, "consistency_from": [latest["size"]]})
    out = _verify(tmp_path, proved, "--trusted-key", _trusted(ev), "--after-checkpoint", held)
    assert out.returncode == 0, out.stdout
    assert f"consistent with the checkpoint you hold (size {latest['size']}): a consistency proof" in out.stdout
    bad = ev["cp"].post("/v1/evidence/bundles", {"consistency_from": [-1]})
    assert bad.status == 400, bad.text


def test_a_held_checkpoint_from_a_split_view_is_inconsistent(tmp_path):
    """A control plane that shows this auditor a different log (a fork) than the one it held before.

    Built wholly here: the forger is the control plane itself (holding the pinned root), so every
    signature is genuine and only consistency with what the auditor holds can catch it."""
    root = signer_for(Ed25519PrivateKey.generate())
    t0 = time.time() - 60
    custody = [sign_event(event("key.registered", CONTROL_PLANE, "tree-head", root, t0, event_id="cust_root"), root)]
    log_a = MerkleLog([leaf_hash(b"leaf %d" % i) for i in range(8)])
    log_b = MerkleLog([leaf_hash(b"leaf %d" % i) if i != 2 else leaf_hash(b"rewritten") for i in range(8)])
    ts = int((t0 + 10) * 1000)
    notes = [
        sign_checkpoint("relaygate.audit/v1", 4, log_b.root(4), ts, root),
        sign_checkpoint("relaygate.audit/v1", 8, log_b.root(8), ts + 1, root),
    ]
    files = {
        eb.RECEIPTS: b"",
        eb.INCLUSION: b"",
        eb.CHAINS: b"",
        eb.CUSTODY: eb.jsonl(custody),
        eb.CHECKPOINTS: canonical(notes),
        eb.CONSISTENCY: canonical(
            [
                {"first": 4, "second": 8, "hashes": [h.hex() for h in log_b.consistency_proof(4, 8)]},
                {"first": 3, "second": 8, "hashes": [h.hex() for h in log_b.consistency_proof(3, 8)]},
            ]
        ),
    }
    blob = eb.write(
        files,
        {
            "created_at": iso_ms(t0 + 20),
            "log": {"origin": "relaygate.audit/v1", "tree_size": 8, "root_hash": log_b.root(8).hex()},
        },
        root,
    )
    pin = tmp_path / "root.pub"
    pin.write_bytes(root.public_pem())
    bundle_path = tmp_path / "fork.tar.gz"
    bundle_path.write_bytes(blob)
    ok = _cli(bundle_path, "--trusted-key", pin)
    assert ok.returncode == 0, ok.stdout  # on its own the forked bundle is self-consistent
    for size, what in ((4, "fork"), (3, "inconsistent")):
        held = tmp_path / f"held-{size}.json"
        held.write_text(
            json.dumps(
                {
                    "size": size,
                    "checkpoint": sign_checkpoint("relaygate.audit/v1", size, log_a.root(size), ts - 5, root),
                }
            )
        )
        out = _cli(bundle_path, "--trusted-key", pin, "--after-checkpoint", held)
        assert out.returncode == 1, out.stdout
        if what == "fork":
            assert (
                f"fork: the bundle's checkpoint of size {size} has a different root than the checkpoint "
                "you hold" in out.stdout
            ), out.stdout
        else:
            assert f"the bundle's tree is not consistent with the checkpoint you hold (size {size})" in out.stdout, (
                out.stdout
            )
    # A held checkpoint signed by a key outside the pinned chain is refused, not trusted.
    stranger = signer_for(Ed25519PrivateKey.generate())
    held = tmp_path / "held-stranger.json"
    held.write_text(json.dumps({"checkpoint": sign_checkpoint("relaygate.audit/v1", 8, log_b.root(8), ts, stranger)}))
    out = _cli(bundle_path, "--trusted-key", pin, "--after-checkpoint", held)
    assert out.returncode == 1 and "the checkpoint you hold is not signed by a tree-head key" in out.stdout, out.stdout


def _one_call(ev, tag: str) -> str:
    from tests.httpcall import chat_body, curl

    h = {"authorization": f"Bearer {ev['tokens']['acme']}", "content-type": "application/json"}
    return curl(
        ev["gw"].base("acme") + "/chat/completions", chat_body("gpt-4o-mini", content=tag, max_tokens=5), h
    ).receipt_id


# -- unpinned -------------------------------------------------------------------------------------------


def test_unpinned_run_exits_non_zero_without_allow_unpinned(ev, files, tmp_path):
    # The genuine bundle, no pin: every check passes but the trust is self-asserted.
    blob_path = tmp_path / "b.tar.gz"
    blob_path.write_bytes(_repack(files, fix=False))
    out = _cli(blob_path)
    assert out.returncode == 3, out.stdout + out.stderr
    assert "trust is only self-asserted" in out.stderr and "NOT pinned" in out.stdout
    assert "VERIFIED" not in out.stdout.splitlines()[0]
    allowed = _cli(blob_path, "--allow-unpinned")
    assert allowed.returncode == 0, allowed.stdout
    assert "trust is only self-asserted" in allowed.stderr
    # An attacker's wholly self-made world is just as self-consistent: the reason pinning is required.
    forger = Forger(files)
    forged = tmp_path / "forged.tar.gz"
    forged.write_bytes(
        eb.write(
            {eb.POSTURE: canonical([]), eb.CUSTODY: eb.jsonl(forger.custody[:1])},
            {"created_at": iso_ms(time.time())},
            forger.root,
        )
    )
    out = _cli(forged)
    assert out.returncode != 0 and "trust is only self-asserted" in out.stderr
    js = _cli(blob_path, "--json")
    assert js.returncode == 3 and json.loads(js.stdout)["pinned"] is False


def test_genuine_bundle_still_verifies_pinned(ev, bundle, tmp_path):
    out = _verify(tmp_path, bundle, "--trusted-key", _trusted(ev))
    assert out.returncode == 0 and "VERIFIED" in out.stdout and "(pinned)" in out.stdout, out.stdout
    keys = CP(ev["stack"].cp_url).get("/v1/audit/keys").json()
    assert keys["root_key_id"] in out.stdout  # the pinned key is named


def test_a_bundle_without_receipts_still_chains_its_signer_to_the_root(ev, tmp_path):
    """After a tree-head rotation the manifest's signer is not the root: the bundle must carry the
    custody chain that links the two, whatever components were asked for."""
    blob = _bundle(ev, {"components": ["deployments"]})
    out = _verify(tmp_path, blob, "--trusted-key", _trusted(ev))
    assert out.returncode == 0, out.stdout
