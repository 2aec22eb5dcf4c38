"""DSSE envelopes (Dead Simple Signing Envelope, v1) with Ed25519.

``{"payloadType", "payload": base64, "signatures": [{"keyid", "sig": base64}]}``;
each signature covers the pre-authentication encoding
``PAE(type, body) = "DSSEv1" SP len(type) SP type SP len(body) SP body``
(lengths in ASCII decimal bytes), so the payload type is signed too.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from relaygate.evidence.signing import Signer, key_id_for, verify

# An envelope is JSON read from untrusted input (a bundle, a request), so its fields are
# checked where they are used rather than trusted to have the shape sign() gives them.
Envelope = dict[str, Any]

INTOTO = "application/vnd.in-toto+json"


class EnvelopeError(ValueError):
    pass


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def sign(payload_type: str, payload: bytes, signer: Signer) -> Envelope:
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": signer.key_id, "sig": signer.sign(pae(payload_type, payload))}],
    }


def add_signature(envelope: Envelope, signer: Signer) -> Envelope:
    """A countersignature over the same payload."""
    sig = {"keyid": signer.key_id, "sig": signer.sign(pae(envelope["payloadType"], payload(envelope)))}
    return {**envelope, "signatures": [*envelope["signatures"], sig]}


def payload(envelope: Envelope) -> bytes:
    try:
        return base64.b64decode(envelope["payload"], validate=True)
    except (KeyError, TypeError, binascii.Error):
        raise EnvelopeError("envelope payload is not base64") from None


def _signatures(envelope: Envelope) -> list[dict[str, Any]]:
    """The signature objects of an envelope; none when ``signatures`` is not a list."""
    sigs = envelope.get("signatures")
    return [s for s in sigs if isinstance(s, dict)] if isinstance(sigs, list) else []


def keyids(envelope: Envelope) -> list[str | None]:
    """The key id of each signature, in order; None where a signature names no (string) key id."""
    return [k if isinstance(k := s.get("keyid"), str) else None for s in _signatures(envelope)]


def verify_envelope(envelope: Envelope, public_key: Ed25519PublicKey, payload_type: str | None = None) -> bool:
    """True when a signature with this key's id verifies over PAE(type, payload).

    False (never an exception) for any malformed envelope: ``signatures`` that is not a list,
    or a signature that is not a base64 string, is a signature that does not verify.
    """
    try:
        if payload_type is not None and envelope.get("payloadType") != payload_type:
            return False
        body = pae(envelope["payloadType"], payload(envelope))
    except (EnvelopeError, KeyError, TypeError, AttributeError):
        return False
    kid = key_id_for(public_key)
    return any(
        s.get("keyid") == kid and isinstance(s.get("sig"), str) and verify(public_key, body, s["sig"])
        for s in _signatures(envelope)
    )
