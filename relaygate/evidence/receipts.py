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


def statement(receipt: dict[str, Any]) -> dict[str, Any]:
    """The in-toto Statement for a receipt: subjects are the request and response body digests."""
    subjects: list[dict[str, Any]] = []
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


def sign_receipt(receipt: dict[str, Any], signer: Signer) -> tuple[dsse.Envelope, str]:
    """Return (DSSE envelope, receipt hash)."""
    body = canonical(statement(receipt))
    return dsse.sign(dsse.INTOTO, body, signer), digest(body)


def envelope_statement(envelope: dsse.Envelope) -> dict[str, Any]:
    """The statement inside an envelope; ValueError when the payload is not a JSON object."""
    st = orjson.loads(dsse.payload(envelope))
    if not isinstance(st, dict):
        raise ValueError("the envelope's payload is not a JSON object")
    return st


def envelope_receipt(envelope: dsse.Envelope) -> dict[str, Any]:
    """The receipt inside a signed envelope; ValueError when its predicate is not a JSON object."""
    r = envelope_statement(envelope)["predicate"]
    if not isinstance(r, dict):
        raise ValueError("the statement's predicate is not a JSON object")
    return r


def envelope_hash(envelope: dsse.Envelope) -> str:
    """The receipt hash: what the next receipt's prev_hash must be."""
    return digest(dsse.payload(envelope))


def leaf_bytes(envelope: dsse.Envelope) -> bytes:
    """The Merkle log leaf for a receipt: the canonical JSON of its whole envelope."""
    return canonical(envelope)


def verify_receipt(envelope: dsse.Envelope, public_key: Ed25519PublicKey) -> bool:
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


def verify_chain(envelopes: list[dsse.Envelope], public_key: Ed25519PublicKey) -> None:
    """Check signatures and prev_hash links of consecutive receipts; raise on the first break."""
    prev = None
    for i, env in enumerate(envelopes):
        r = envelope_receipt(env)
        if not verify_receipt(env, public_key):
            raise ValueError(f"receipt {i} ({r.get('id')}): bad signature")
        if prev is not None and r["prev_hash"] != prev:
            raise ValueError(f"receipt {i} ({r.get('id')}): chain broken")
        prev = envelope_hash(env)
