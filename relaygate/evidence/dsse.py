"""DSSE envelopes (Dead Simple Signing Envelope, v1) with Ed25519.

``{"payloadType", "payload": base64, "signatures": [{"keyid", "sig": base64}]}``;
each signature covers the pre-authentication encoding
``PAE(type, body) = "DSSEv1" SP len(type) SP type SP len(body) SP body``
(lengths in ASCII decimal bytes), so the payload type is signed too.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from relaygate.evidence.signing import Signer, key_id_for, verify

INTOTO = "application/vnd.in-toto+json"


class EnvelopeError(ValueError):
    pass


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def sign(payload_type: str, payload: bytes, signer: Signer) -> dict:
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": signer.key_id, "sig": signer.sign(pae(payload_type, payload))}],
    }


def add_signature(envelope: dict, signer: Signer) -> dict:
    """A countersignature over the same payload."""
    sig = {"keyid": signer.key_id, "sig": signer.sign(pae(envelope["payloadType"], payload(envelope)))}
    return {**envelope, "signatures": [*envelope["signatures"], sig]}


def payload(envelope: dict) -> bytes:
    try:
        return base64.b64decode(envelope["payload"], validate=True)
    except (KeyError, TypeError, binascii.Error):
        raise EnvelopeError("envelope payload is not base64") from None


def keyids(envelope: dict) -> list[str]:
    return [s.get("keyid") for s in envelope.get("signatures") or [] if isinstance(s, dict)]


def verify_envelope(envelope: dict, public_key: Ed25519PublicKey, payload_type: str | None = None) -> bool:
    """True when a signature with this key's id verifies over PAE(type, payload)."""
    try:
        if payload_type is not None and envelope.get("payloadType") != payload_type:
            return False
        body = pae(envelope["payloadType"], payload(envelope))
    except (EnvelopeError, KeyError, TypeError, AttributeError):
        return False
    kid = key_id_for(public_key)
    return any(
        isinstance(s, dict) and s.get("keyid") == kid and verify(public_key, body, s.get("sig", ""))
        for s in envelope.get("signatures") or []
    )
