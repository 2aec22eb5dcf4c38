"""Receipts: an in-toto Statement in a DSSE envelope, canonical JSON inside, hash-chained.

A signed receipt is a DSSE envelope (relaygate/evidence/dsse.py) whose payload is the
RFC 8785 canonical JSON of an in-toto Statement v1::

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": "request", "digest": {"sha256": ...}},
                 {"name": "response", "digest": {"sha256": ...}}],
     "predicateType": "https://relaygate.dev/receipt/v2",
     "predicate": {...the receipt...}}

The receipt's hash is ``sha256:<hex>`` of those payload bytes; the next receipt
of the same sidecar carries it as ``prev_hash`` and its ``seq`` is one more, so
each sidecar's receipts form a hash chain. The Merkle log's leaf for a receipt
is the canonical JSON of its whole envelope. See docs/receipts.md.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from relaygate.evidence import dsse
from relaygate.evidence.signing import Signer

RECEIPT_VERSION = 2
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://relaygate.dev/receipt/v2"
GENESIS_HASH = "sha256:" + "0" * 64

_MAX_SAFE_INT = 2**53 - 1


def _orjson_is_canonical(obj: Any) -> bool:
    """True when orjson with sorted keys produces exactly the RFC 8785 bytes.

    That holds for ASCII object keys (so code-point order equals UTF-16 order),
    integers within IEEE-754's exact range, strings (both escape only the
    same characters; tests check every BMP code point), bools and null. Floats
    need RFC 8785's number formatting, so they take the reference path.
    """
    if isinstance(obj, str) or obj is None or isinstance(obj, bool):
        return True
    if isinstance(obj, int):
        return -_MAX_SAFE_INT <= obj <= _MAX_SAFE_INT
    if isinstance(obj, dict):
        return all(isinstance(k, str) and k.isascii() and _orjson_is_canonical(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return all(_orjson_is_canonical(v) for v in obj)
    return False


def canonical(obj: Any) -> bytes:
    """RFC 8785 canonical JSON: orjson where it is provably identical (60x faster), else rfc8785."""
    if _orjson_is_canonical(obj):
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    return rfc8785.dumps(obj)


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def statement(receipt: dict) -> dict:
    """The in-toto Statement for a receipt: subjects are the request and response body digests."""
    subjects = []
    for name in ("request", "response"):
        d = (receipt.get(name) or {}).get("digest")
        if isinstance(d, str) and d.startswith("sha256:"):
            subjects.append({"name": name, "digest": {"sha256": d[7:]}})
    if not subjects:  # in-toto needs one; a call with neither body seen is named by its id
        subjects.append(
            {
                "name": f"receipt:{receipt['id']}",
                "digest": {"sha256": hashlib.sha256(receipt["id"].encode()).hexdigest()},
            }
        )
    return {"_type": STATEMENT_TYPE, "subject": subjects, "predicateType": PREDICATE_TYPE, "predicate": receipt}


def sign_receipt(receipt: dict, signer: Signer) -> tuple[dict, str]:
    """Return (DSSE envelope, receipt hash)."""
    body = canonical(statement(receipt))
    return dsse.sign(dsse.INTOTO, body, signer), digest(body)


def envelope_statement(envelope: dict) -> dict:
    return orjson.loads(dsse.payload(envelope))


def envelope_receipt(envelope: dict) -> dict:
    """The receipt inside a signed envelope."""
    return envelope_statement(envelope)["predicate"]


def envelope_hash(envelope: dict) -> str:
    """The receipt hash: what the next receipt's prev_hash must be."""
    return digest(dsse.payload(envelope))


def leaf_bytes(envelope: dict) -> bytes:
    """The Merkle log leaf for a receipt: the canonical JSON of its whole envelope."""
    return canonical(envelope)


def verify_receipt(envelope: dict, public_key: Ed25519PublicKey) -> bool:
    """True when the envelope is signed by this key and its payload is a canonical receipt statement."""
    if not dsse.verify_envelope(envelope, public_key, dsse.INTOTO):
        return False
    try:
        st = envelope_statement(envelope)
        return (
            st.get("_type") == STATEMENT_TYPE
            and st.get("predicateType") == PREDICATE_TYPE
            and canonical(st) == dsse.payload(envelope)
        )
    except (ValueError, dsse.EnvelopeError):
        return False


def verify_chain(envelopes: list[dict], public_key: Ed25519PublicKey) -> None:
    """Check signatures and prev_hash links of consecutive receipts; raise on the first break."""
    prev = None
    for i, env in enumerate(envelopes):
        r = envelope_receipt(env)
        if not verify_receipt(env, public_key):
            raise ValueError(f"receipt {i} ({r.get('id')}): bad signature")
        if prev is not None and r["prev_hash"] != prev:
            raise ValueError(f"receipt {i} ({r.get('id')}): chain broken")
        prev = envelope_hash(env)
