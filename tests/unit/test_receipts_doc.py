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


def _field_table() -> dict[str, set[str]]:
    """docs/receipts.md's field table: top-level field -> the sub-fields its row names."""
    start = DOC.index("| field | meaning |")
    rows = DOC[start : DOC.index("\n\n", start)].splitlines()[2:]
    out: dict[str, set[str]] = {}
    for row in rows:
        _, fields, meaning, _ = row.split("|")
        # Sub-fields are the backticked names before a row's first ": `" (what follows are values).
        subs = set(re.findall(r"`(\w+)`", meaning.split(": `")[0])) - {"null", "complete", "incomplete"}
        for f in re.findall(r"`(\w+)`", fields):
            out[f] = subs
    return out


def test_the_receipt_field_table_names_exactly_what_a_receipt_carries(tmp_path):
    """Drift check: a receipt finalized by the sidecar's own code (allowed call, settled from its
    access-log outcome) has exactly the fields and sub-fields docs/receipts.md lists."""
    from relaygate.contract.config import Upstream
    from relaygate.decision.draft import call_draft
    from relaygate.decision.ledger import Hold, InMemoryLedger
    from relaygate.extproc.settlement import Finalizer
    from relaygate.extproc.spool import Spool

    up = Upstream(
        name="openai-us",
        provider="openai",
        host="127.0.0.1",
        port=1,
        tls=False,
        base_path="",
        region="us-east-1",
        jurisdiction="us",
        credential="x",
        models={},
    )
    draft = call_draft(
        ts=1.0,
        decision={"allow": True, "status": 200, "code": "ok", "reasons": [], "policies": [], "bundle": "r1"},
        path="/v1/acme/chat/completions",
        workspace="acme",
        key_id="k" * 12,
        endpoint="chat.completions",
        body=b"{}",
        model="gpt-4o-mini",
        alias="fast",  # the optional model.alias: present when the client named the model by an alias
        upstream=up,
        price=(150, 600),
        worst=(10, 20),
        holds=[Hold("b", "w", 30, "tokens")],
        credential="session:" + "s" * 12,  # a session's call: the one optional field is there too
    )
    outcome = {
        "status": 200,
        "flags": "",
        "bytes": 10,
        "latency_us": 5,
        "upstream_answered": True,
        "usage": {"input_tokens": 3, "output_tokens": 4, "model": "gpt-4o-mini"},
        "digest": None,
    }
    spool = Spool(tmp_path / "receipts.db")
    signer = signer_for(Ed25519PrivateKey.generate())
    fin = Finalizer(spool, InMemoryLedger(), signer, "s1")
    spool.add_pending("rcpt_x", draft)
    fin.finalize([("rcpt_x", draft, outcome)])
    from relaygate.evidence.receipts import envelope_receipt

    receipt = envelope_receipt(spool.envelope("rcpt_x"))
    spool.close()
    table = _field_table()
    assert set(receipt) == set(table), f"receipt fields {sorted(receipt)} vs docs {sorted(table)}"
    for field, subs in table.items():
        value = receipt[field]
        if isinstance(value, dict):
            assert set(value) == subs, f"{field}: receipt has {sorted(value)}, docs list {sorted(subs)}"
        else:
            assert not subs, f"{field} is a scalar in the receipt but docs list sub-fields {sorted(subs)}"
