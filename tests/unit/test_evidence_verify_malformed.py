"""The offline verifier against keys and signatures of the wrong shape: a refusal, never a crash.

A small genuine bundle is built in-process with the evidence library (a control-plane root that
signs the tree head and the manifest, a sidecar key it countersigns, one receipt with its
inclusion proof and chain entry) and verifies pinned. Each attack then changes one thing the
attacker controls in a bundle or a key file: a custody event carrying a public key of a type
cryptography does not know (it raised UnsupportedAlgorithm, which is not a ValueError), a
signature that is not a string, ``signatures`` that is not a list, or a bundle file of valid JSON
but the wrong shape. Before relaygate/evidence was under mypy --strict these escaped verify_bundle
as exceptions (a traceback instead of a report).
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relaygate.evidence import dsse
from relaygate.evidence import evidence_bundle as eb
from relaygate.evidence.checkpoint import sign_checkpoint
from relaygate.evidence.cli import main as verify_main
from relaygate.evidence.custody import CONTROL_PLANE, event, iso_ms, sign_event
from relaygate.evidence.merkle import MerkleLog, leaf_hash
from relaygate.evidence.receipts import GENESIS_HASH, canonical, leaf_bytes, sign_receipt
from relaygate.evidence.signing import Signer, load_public_key, signer_for
from relaygate.evidence.verify import Report, verify_bundle

T0 = 1_795_000_000.0  # seconds; every event below is a second or so later


def _unknown_key_pem() -> str:
    """A SubjectPublicKeyInfo whose algorithm OID (1.3.101.121) no library knows."""
    der = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    der = der.replace(bytes.fromhex("06032b6570"), bytes.fromhex("06032b6579"))
    return "-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(der).decode() + "\n-----END PUBLIC KEY-----\n"


class Genuine:
    """The keys and parts of one genuine bundle; ``blob`` packs them, with changes."""

    def __init__(self) -> None:
        self.root = signer_for(Ed25519PrivateKey.generate())
        self.gw = signer_for(Ed25519PrivateKey.generate())
        self.custody = [
            sign_event(
                event("key.registered", CONTROL_PLANE, "tree-head", self.root, T0, event_id="cust_root"),
                self.root,
            ),
            sign_event(
                event("key.registered", "gw-1", "receipts", self.gw, T0 + 1, event_id="cust_gw"),
                self.gw,
                self.root,
            ),
        ]
        receipt = {
            "id": "rcpt_1",
            "seq": 1,
            "prev_hash": GENESIS_HASH,
            "issued_at": iso_ms(T0 + 2),
            "decision": {"policies": []},
        }
        self.envelope, self.hash = sign_receipt(receipt, self.gw)

    def blob(
        self,
        envelope: dsse.Envelope | None = None,
        custody: list[dsse.Envelope] | None = None,
        manifest_signer: Signer | None = None,
    ) -> bytes:
        env = self.envelope if envelope is None else envelope
        log = MerkleLog()
        log.append(leaf_hash(leaf_bytes(env)))
        root_hash = log.root()
        note = sign_checkpoint("relaygate.audit/test", 1, root_hash, int((T0 + 3) * 1000), self.root)
        files = {
            eb.RECEIPTS: eb.jsonl([{"event_id": "rcpt_1", "leaf_index": 0, "envelope": env}]),
            eb.INCLUSION: eb.jsonl([{"event_id": "rcpt_1", "leaf_index": 0, "tree_size": 1, "hashes": []}]),
            eb.CHECKPOINTS: canonical([note]),
            eb.CONSISTENCY: canonical([]),
            eb.CHAINS: eb.jsonl(
                [{"owner": "gw-1", "seq": 1, "hash": self.hash, "prev_hash": GENESIS_HASH, "included": True}]
            ),
            eb.CUSTODY: eb.jsonl(self.custody if custody is None else custody),
            eb.POLICIES: canonical({}),
        }
        manifest: dict[str, Any] = {
            "created_at": iso_ms(T0 + 4),
            "log": {"tree_size": 1, "root_hash": root_hash.hex()},
        }
        return eb.write(files, manifest, manifest_signer or self.root)


@pytest.fixture(scope="module")
def genuine() -> Genuine:
    return Genuine()


def _failures(report: Report) -> list[str]:
    return [f"[{f.check}] {f.message}" for f in report.failures]


def test_the_genuine_bundle_verifies_pinned(genuine):
    report = verify_bundle(genuine.blob(), genuine.root.public_key)
    assert report.ok and report.pinned, _failures(report)
    assert report.stats["receipts"] == 1


def test_load_public_key_refuses_a_key_type_cryptography_does_not_know():
    with pytest.raises(ValueError, match="not an Ed25519 public key"):
        load_public_key(_unknown_key_pem().encode())


def test_custody_event_with_a_key_of_unknown_type_is_refused_not_a_crash(genuine):
    """The attacker appends a key.registered whose public_key has an unknown algorithm OID."""
    forged = dsse.sign(
        "application/vnd.relaygate.custody+json",
        canonical(
            {
                "id": "cust_evil",
                "type": "key.registered",
                "owner": "gw-2",
                "purpose": "receipts",
                "at": iso_ms(T0 + 1.5),
                "previous_key_id": None,
                "key_id": "ed25519:0000000000000000",
                "public_key": _unknown_key_pem(),
            }
        ),
        genuine.root,
    )
    report = verify_bundle(genuine.blob(custody=[*genuine.custody, forged]), genuine.root.public_key)
    assert not report.ok
    assert [f.message for f in report.failures if f.check == "custody"] == [
        "not an Ed25519 public key (Unknown key type: 1.3.101.121)"
    ]
    # the genuine custody events still verify: the receipts check passes, the ring is intact
    assert not [f for f in report.failures if f.check == "receipts"], _failures(report)


@pytest.mark.parametrize("sig", [12345, ["AAAA"], {"sig": "AAAA"}, None])
def test_receipt_signature_that_is_not_a_string_fails_the_receipt(genuine, sig):
    env = {**genuine.envelope, "signatures": [{"keyid": genuine.gw.key_id, "sig": sig}]}
    report = verify_bundle(genuine.blob(envelope=env), genuine.root.public_key)
    assert not report.ok
    assert f"[receipts] signature does not verify with {genuine.gw.key_id} (receipt altered)" in _failures(report)


@pytest.mark.parametrize("signatures", [5, "abc", {"keyid": "x"}])
def test_receipt_whose_signatures_are_not_a_list_fails_the_receipt(genuine, signatures):
    env = {**genuine.envelope, "signatures": signatures}
    report = verify_bundle(genuine.blob(envelope=env), genuine.root.public_key)
    assert not report.ok
    assert any(m.startswith("[receipts] signed by unknown key") for m in _failures(report)), _failures(report)
    assert not dsse.verify_envelope(env, genuine.gw.public_key, dsse.INTOTO)
    assert dsse.keyids(env) == []


def test_receipt_signature_naming_no_key_id_is_an_unknown_key(genuine):
    """keyids keeps each signature's place: a first signature without a key id is not skipped."""
    good = genuine.envelope["signatures"][0]
    env = {**genuine.envelope, "signatures": [{"keyid": 7, "sig": good["sig"]}, good]}
    assert dsse.keyids(env) == [None, genuine.gw.key_id]
    report = verify_bundle(genuine.blob(envelope=env), genuine.root.public_key)
    assert any(m.startswith("[receipts] signed by unknown key None") for m in _failures(report)), _failures(report)


def test_manifest_signature_that_is_not_a_string_fails_the_manifest(genuine):
    files = eb.read(genuine.blob())
    files[eb.MANIFEST_SIG] = json.dumps(
        {
            "payloadType": eb.MANIFEST_TYPE,
            "payload": base64.b64encode(files[eb.MANIFEST]).decode(),
            "signatures": [{"keyid": genuine.root.key_id, "sig": {"not": "a string"}}],
        }
    ).encode()
    blob = _tar(files)
    report = verify_bundle(blob, genuine.root.public_key)
    assert not report.ok
    assert "[manifest] manifest signature does not verify with any control-plane key" in _failures(report)


def test_cli_with_a_trusted_key_of_unknown_type_exits_2_with_a_message(genuine, tmp_path, capsys):
    bundle = tmp_path / "bundle.tar.gz"
    bundle.write_bytes(genuine.blob())
    key = tmp_path / "root.pem"
    key.write_text(_unknown_key_pem())
    with pytest.raises(SystemExit) as exc:
        verify_main(["verify", str(bundle), "--trusted-key", str(key)])
    assert exc.value.code == 2
    assert "relaygate verify: not an Ed25519 public key" in capsys.readouterr().err


def _tar(files: dict[str, bytes]) -> bytes:
    """Repack files as they are (no new manifest, no new signature)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue())


@pytest.mark.parametrize(
    "name, data",
    [
        (eb.CONSISTENCY, b"[1]"),
        (eb.INCLUSION, b"5\n"),
        (eb.RECEIPTS, b"[]\n"),
        (eb.CHAINS, b"{}\n"),
        (eb.CHECKPOINTS, b"[5]"),
        (eb.CHECKPOINTS, b"[" * 200_000 + b"]" * 200_000),  # nested past the recursion limit
        (eb.RECEIPTS, b"[" * 200_000 + b"]" * 200_000 + b"\n"),
    ],
)
def test_a_bundle_file_of_the_wrong_shape_is_a_format_failure_not_a_crash(genuine, name, data):
    """Valid JSON of the wrong shape in a file the attacker controls (the manifest digest fails too)."""
    files = eb.read(genuine.blob())
    files[name] = data
    report = verify_bundle(_tar(files), genuine.root.public_key)
    assert not report.ok
    assert [m for m in _failures(report) if "has the wrong shape" in m], _failures(report)


def test_a_receipt_whose_predicate_is_not_an_object_is_a_failure_not_a_crash(genuine):
    env = dsse.sign(dsse.INTOTO, canonical({"_type": "x", "predicate": 5}), genuine.gw)
    report = verify_bundle(genuine.blob(envelope=env), genuine.root.public_key)
    assert not report.ok
    assert [m for m in _failures(report) if m.startswith("[format] a bundle file has the wrong shape")]


def _gzip_bomb(tmp_path, declared: int) -> bytes:
    """A tar of one file declared ``declared`` bytes long, all zeros, as concatenated gzip members
    (a few MB on disk): an auditor is handed it as an evidence bundle."""
    header = tarfile.TarInfo(eb.RECEIPTS)
    header.size = declared
    zeros = gzip.compress(b"\0" * (1 << 20))
    return (
        gzip.compress(header.tobuf(format=tarfile.GNU_FORMAT)) + zeros * (declared >> 20) + gzip.compress(b"\0" * 1024)
    )


def test_a_gzip_bomb_is_refused_before_it_expands(genuine, tmp_path):
    """A 3 GiB bomb verified with 1 GiB of address space: refused as past the 2 GiB limit (exit 1,
    a report), where the whole bundle used to be decompressed in memory before the limit was
    checked (MemoryError: a traceback; on a roomier machine, gigabytes taken for nothing)."""
    import resource
    import subprocess
    import sys

    bomb = tmp_path / "bomb.tar.gz"
    bomb.write_bytes(_gzip_bomb(tmp_path, 3 << 30))
    assert bomb.stat().st_size < 8 << 20
    key = tmp_path / "root.pem"
    key.write_bytes(
        genuine.root.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    run = subprocess.run(
        [sys.executable, "-m", "relaygate.evidence.cli", "verify", str(bomb), "--trusted-key", str(key)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
    )
    assert "Traceback" not in run.stderr and "MemoryError" not in run.stderr, run.stderr[-2000:]
    assert run.returncode == 1, (run.returncode, run.stdout, run.stderr[-2000:])
    assert "FAIL [format] bundle expands past 2 GiB" in run.stdout, run.stdout


def test_a_bundle_is_still_read_whole_within_the_limit(genuine):
    """The streamed reader gives back every file of a genuine bundle as it was written."""
    blob = genuine.blob()
    raw = tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob)))
    assert eb.read(blob) == {m.name: raw.extractfile(m).read() for m in raw.getmembers()}


def test_cli_with_a_held_checkpoint_nested_too_deep_exits_2_with_a_message(genuine, tmp_path, capsys):
    """--after-checkpoint FILE of JSON nested past Python's recursion limit: a message, not a
    RecursionError traceback."""
    bundle = tmp_path / "bundle.tar.gz"
    bundle.write_bytes(genuine.blob())
    held = tmp_path / "held.json"
    held.write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    with pytest.raises(SystemExit) as exc:
        verify_main(["verify", str(bundle), "--allow-unpinned", "--after-checkpoint", str(held)])
    assert exc.value.code == 2
    assert "relaygate verify: checkpoint file is JSON nested too deep" in capsys.readouterr().err
