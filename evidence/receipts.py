"""The receipt format: canonical JSON (RFC 8785), hash chain, Ed25519 signature.

A signed receipt is ``{"receipt": {...}, "signature": {"alg", "key_id", "sig"}}``.
The signature covers the RFC 8785 canonical bytes of ``receipt``; the receipt's
hash (``sha256:<hex>`` of the same bytes) is what the next receipt carries as
``prev_hash``. See docs/receipts.md.
"""
from __future__ import annotations

import hashlib
from typing import Any

import orjson
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from evidence.signing import Signer, key_id_for, verify

RECEIPT_VERSION = 1
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


def sign_receipt(receipt: dict, signer: Signer) -> tuple[dict, str]:
    """Return (signed envelope, receipt hash)."""
    body = canonical(receipt)
    envelope = {
        "receipt": receipt,
        "signature": {"alg": "Ed25519", "key_id": signer.key_id, "sig": signer.sign(body)},
    }
    return envelope, digest(body)


def envelope_receipt(envelope: dict) -> dict:
    """The receipt inside a signed envelope."""
    return envelope["receipt"]


def receipt_hash(receipt: dict) -> str:
    return digest(canonical(receipt))


def verify_receipt(envelope: dict, public_key: Ed25519PublicKey) -> bool:
    """True when the envelope's signature is valid for its receipt and key."""
    sig = envelope.get("signature") or {}
    if sig.get("alg") != "Ed25519" or sig.get("key_id") != key_id_for(public_key):
        return False
    return verify(public_key, canonical(envelope["receipt"]), sig.get("sig", ""))


def verify_chain(envelopes: list[dict], public_key: Ed25519PublicKey) -> None:
    """Check signatures and prev_hash links of consecutive receipts; raise on the first break."""
    prev = None
    for i, env in enumerate(envelopes):
        if not verify_receipt(env, public_key):
            raise ValueError(f"receipt {i} ({env['receipt'].get('id')}): bad signature")
        if prev is not None and env["receipt"]["prev_hash"] != prev:
            raise ValueError(f"receipt {i} ({env['receipt'].get('id')}): chain broken")
        prev = receipt_hash(env["receipt"])
