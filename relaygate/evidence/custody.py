"""Key custody: who held which signing key when, as a chain of signed events.

Each event is a DSSE envelope (payload type ``application/vnd.relaygate.custody+json``)
over canonical JSON such as::

    {"id": "cust_…", "type": "key.introduced", "owner": "gw-1", "purpose": "receipts",
     "key_id": "ed25519:…", "public_key": "-----BEGIN PUBLIC KEY-----…",
     "previous_key_id": "ed25519:…", "at": "2026-11-22T18:00:00.000Z"}

- ``key.registered``: a first key, signed by itself (possession); for a sidecar
  key also countersigned by the control plane. The control plane's first
  tree-head key is the root of trust, and the only control-plane key ever registered:
  every later key must chain back to it (an auditor pins it; see KeyRing).
- ``key.introduced``: a new key, signed by the previous key (which it retires
  at ``at``), by itself, and (for sidecars) countersigned by the control plane.
- ``credential.rotated``: a provider credential was replaced (never the
  secret), signed by the control plane.

:class:`KeyRing` replays events and answers whether a key was valid at a time:
a receipt signed by a retired key after its retirement is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from relaygate.evidence import dsse
from relaygate.evidence.receipts import canonical
from relaygate.evidence.signing import Signer, key_id_for, load_public_key

PAYLOAD_TYPE = "application/vnd.relaygate.custody+json"
CONTROL_PLANE = "control-plane"


class CustodyError(ValueError):
    pass


def iso_ms(ts: float) -> str:
    """RFC 3339 UTC with milliseconds; four-digit years (strftime does not zero-pad below 1000)."""
    dt = datetime.fromtimestamp(ts, timezone.utc)
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}."
        f"{dt.microsecond // 1000:03d}Z"
    )


def to_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000 + 0.5)


def event(
    type_: str,
    owner: str,
    purpose: str,
    key: Signer | None,
    at: float,
    *,
    event_id: str,
    previous_key_id: str | None = None,
    public_key_pem: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": event_id,
        "type": type_,
        "owner": owner,
        "purpose": purpose,
        "at": iso_ms(at),
        "previous_key_id": previous_key_id,
        **extra,
    }
    if key is not None:
        doc["key_id"] = key.key_id
        doc["public_key"] = public_key_pem or key.public_pem().decode()
    elif public_key_pem is not None:
        doc["key_id"] = key_id_for(load_public_key(public_key_pem.encode()))
        doc["public_key"] = public_key_pem
    return doc


def sign_event(doc: dict[str, Any], *signers: Signer) -> dsse.Envelope:
    env = dsse.sign(PAYLOAD_TYPE, canonical(doc), signers[0])
    for s in signers[1:]:
        env = dsse.add_signature(env, s)
    return env


def event_of(envelope: dsse.Envelope) -> dict[str, Any]:
    if envelope.get("payloadType") != PAYLOAD_TYPE:
        raise CustodyError("not a custody event")
    doc = orjson.loads(dsse.payload(envelope))
    if not isinstance(doc, dict):
        raise CustodyError("the custody event is not a JSON object")
    return doc


@dataclass
class KeyInfo:
    key_id: str
    owner: str
    purpose: str
    public_key: Ed25519PublicKey
    valid_from_ms: int
    retired_ms: int | None = None


class KeyRing:
    """Replays custody events in order and admits a key only when the ring already vouches for it.

    The ring is anchored at one control-plane root: the pinned key (``trusted_root``) when the
    auditor has one, else the first control-plane key the chain registers, which is only
    self-asserted (anyone can write such a chain for keys of their own). From the root on, every
    key must be vouched for by a key already in the ring at that point of the replay:

    - the root is the only control-plane ``key.registered``; later control-plane keys are
      ``key.introduced`` by their predecessor (a second "root" is refused, so a forger cannot
      register a key of their own next to the genuine chain);
    - a sidecar's ``key.registered`` must be countersigned by a control-plane key of the ring;
    - a ``key.introduced`` must be signed by its previous key (in the ring) and, for a sidecar,
      countersigned by a control-plane key of the ring.

    Signatures by keys outside the ring are ignored, never trusted: a genuine event replayed with
    an attacker's extra countersignature does not make the attacker's key trusted, and a chain
    that starts with another root than the pinned one is refused at that event. A refused event
    raises CustodyError naming the event; its key stays out of the ring, so anything it signed
    fails later with its own message.
    """

    def __init__(self, trusted_root: str | None = None) -> None:
        self.keys: dict[str, KeyInfo] = {}
        self.trusted_root = trusted_root
        self.root: str | None = None
        self.warnings: list[str] = []

    @property
    def anchor(self) -> str | None:
        """The root every key must chain to: the pinned key, else the chain's own first root."""
        return self.trusted_root or self.root

    def _cp_keys(self) -> list[KeyInfo]:
        return [k for k in self.keys.values() if k.owner == CONTROL_PLANE]

    def _signed_by(self, env: dsse.Envelope, key: KeyInfo) -> bool:
        return dsse.verify_envelope(env, key.public_key, PAYLOAD_TYPE)

    def _countersigned(self, env: dsse.Envelope, at: int) -> bool:
        """Signed by a control-plane key of the ring that was not retired before ``at``."""
        return any(self._signed_by(env, k) for k in self._cp_keys() if k.retired_ms is None or k.retired_ms >= at)

    def _outside(self) -> str:
        return (
            f"a control-plane key of the custody chain anchored at root {self.anchor}"
            if self.anchor
            else "a control-plane key (the chain has no root yet)"
        )

    def apply(self, env: dsse.Envelope) -> dict[str, Any]:
        doc = event_of(env)
        what = f"custody event {doc.get('id')} ({doc.get('type')} {doc.get('key_id', '')})"
        at = to_ms(doc["at"])
        if doc["type"] == "credential.rotated":
            if not self._countersigned(env, at):
                raise CustodyError(f"{what}: not signed by {self._outside()}")
            return doc
        new_pub = load_public_key(doc["public_key"].encode())
        if key_id_for(new_pub) != doc["key_id"]:
            raise CustodyError(f"{what}: key_id does not match the public key")
        if not dsse.verify_envelope(env, new_pub, PAYLOAD_TYPE):
            raise CustodyError(f"{what}: not signed by the key it introduces (no proof of possession)")
        if doc["key_id"] in self.keys:
            raise CustodyError(f"{what}: key {doc['key_id']} was introduced before")
        owner, purpose = doc["owner"], doc["purpose"]
        if doc["type"] == "key.registered":
            if owner == CONTROL_PLANE:
                if self.root is not None:
                    raise CustodyError(
                        f"{what}: a second control-plane root next to {self.root}; a "
                        "control-plane key registered after the root is not vouched for "
                        "(its successors are key.introduced by their predecessor)"
                    )
                if self.trusted_root and self.trusted_root != doc["key_id"]:
                    raise CustodyError(
                        f"{what}: the custody chain starts with root {doc['key_id']}, not the "
                        f"pinned root {self.trusted_root}"
                    )
                self.root = doc["key_id"]
            elif not self._countersigned(env, at):
                raise CustodyError(f"{what}: not countersigned by {self._outside()}")
            for k in self.keys.values():  # a re-registration replaces the owner's active key
                if k.owner == owner and k.purpose == purpose and k.retired_ms is None:
                    k.retired_ms = at
                    self.warnings.append(f"{what}: replaced {k.key_id} without an introduction signed by it")
        elif doc["type"] == "key.introduced":
            prev = self.keys.get(doc.get("previous_key_id") or "")
            if prev is None:
                raise CustodyError(
                    f"{what}: previous key {doc.get('previous_key_id')} is unknown (not in the "
                    f"custody chain anchored at root {self.anchor})"
                )
            if prev.owner != owner or prev.purpose != purpose:
                raise CustodyError(f"{what}: previous key {prev.key_id} belongs to {prev.owner}/{prev.purpose}")
            if prev.retired_ms is not None and prev.retired_ms < at:
                raise CustodyError(f"{what}: previous key {prev.key_id} was already retired")
            if not self._signed_by(env, prev):
                raise CustodyError(f"{what}: not signed by the previous key {prev.key_id}")
            if owner != CONTROL_PLANE and not self._countersigned(env, at):
                raise CustodyError(f"{what}: not countersigned by {self._outside()}")
            prev.retired_ms = at
        else:
            raise CustodyError(f"{what}: unknown event type")
        self.keys[doc["key_id"]] = KeyInfo(doc["key_id"], owner, purpose, new_pub, at)
        return doc

    def check(self, key_id: str | None, at_ms: int, purpose: str | None = None) -> KeyInfo:
        """The key, when it was valid at ``at_ms``; else CustodyError saying why not (None: a
        signature that names no key id)."""
        k = self.keys.get(key_id) if key_id is not None else None
        if k is None or (purpose and k.purpose != purpose):
            raise CustodyError(
                f"signed by unknown key {key_id} (not in the custody chain anchored at root {self.anchor})"
            )
        if at_ms < k.valid_from_ms:
            raise CustodyError(
                f"signed by {key_id} before the key existed (valid from {iso_ms(k.valid_from_ms / 1000)})"
            )
        if k.retired_ms is not None and at_ms > k.retired_ms:
            raise CustodyError(f"signed by {key_id} after its retirement at {iso_ms(k.retired_ms / 1000)}")
        return k
