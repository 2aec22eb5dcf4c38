"""docs/receipts.md's worked example is what the code produces, byte for byte."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relaygate.evidence import dsse
from relaygate.evidence.merkle import leaf_hash
from relaygate.evidence.receipts import leaf_bytes, sign_receipt, verify_receipt
from relaygate.evidence.signing import signer_for

DOC = (Path(__file__).resolve().parents[2] / "docs" / "receipts.md").read_text()


def _block(name: str) -> str:
    m = re.search(r"<!-- example:" + re.escape(name) + r" -->\n```[a-z]*\n(.*?)\n```", DOC, re.S)
    assert m, f"docs/receipts.md lacks the {name} example"
    return m[1]


def test_worked_example_matches_the_code():
    seed = bytes.fromhex(_block("seed"))
    assert seed == hashlib.sha256(b"relaygate docs example key").digest()
    signer = signer_for(Ed25519PrivateKey.from_private_bytes(seed))
    assert signer.public_pem().decode().strip() == _block("public-key").strip()
    receipt = json.loads(_block("receipt"))
    envelope, receipt_hash = sign_receipt(receipt, signer)
    assert dsse.payload(envelope).decode() == _block("payload")
    assert envelope == json.loads(_block("envelope"))
    assert verify_receipt(envelope, signer.public_key)
    hashes = dict(line.split() for line in _block("hashes").splitlines())
    assert hashes["receipt"] == receipt_hash
    assert hashes["leaf"] == leaf_hash(leaf_bytes(envelope)).hex()
    assert f"ed25519:{hashlib.sha256(signer.public_key.public_bytes_raw()).hexdigest()[:16]}" == signer.key_id
    assert f"DSSEv1 28 application/vnd.in-toto+json {len(dsse.payload(envelope))} " in DOC
