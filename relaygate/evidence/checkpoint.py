"""Signed tree heads as checkpoints in the C2SP signed-note format.

    relaygate.audit/<log id>          origin
    1234                              tree size
    ma2JK9r...=                       root hash, base64
    timestamp 1795373776123           extension line: when it was signed (ms)
                                      blank line
    — relaygate-control-plane Ab3d...  signature: base64(4-byte key hash || Ed25519 signature)

The signature covers the note text up to and including the last body line's
newline; the key hash is the first 4 bytes of SHA-256(name || "\\n" || 0x01 ||
public key), as in the signed-note spec, so standard tooling can read it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from relaygate.evidence.signing import Signer

KEY_NAME = "relaygate-control-plane"
_DASH = "\u2014"


class CheckpointError(ValueError):
    pass


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    timestamp_ms: int
    note: str


def note_key_hash(name: str, public_key: Ed25519PublicKey) -> bytes:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n" + b"\x01" + raw).digest()[:4]


def sign_checkpoint(
    origin: str, size: int, root: bytes, timestamp_ms: int, signer: Signer, name: str = KEY_NAME
) -> str:
    body = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\ntimestamp {timestamp_ms}\n"
    sig = signer.private_key.sign(body.encode())
    blob = base64.b64encode(note_key_hash(name, signer.public_key) + sig).decode()
    return f"{body}\n{_DASH} {name} {blob}\n"


def parse(note: str) -> tuple[Checkpoint, str, list[tuple[str, bytes, bytes]]]:
    """(checkpoint, signed text, [(name, key hash, signature)]) or CheckpointError."""
    body, sep, sigs = note.partition("\n\n")
    if not sep:
        raise CheckpointError("checkpoint has no signature block")
    body += "\n"
    lines = body.split("\n")[:-1]
    if len(lines) < 3:
        raise CheckpointError("checkpoint needs origin, size and root lines")
    try:
        size = int(lines[1])
        root = base64.b64decode(lines[2], validate=True)
    except (ValueError, binascii.Error):
        raise CheckpointError("checkpoint size or root hash is malformed") from None
    if len(root) != 32 or size < 0:
        raise CheckpointError("checkpoint root must be 32 bytes")
    ts = 0
    for ext in lines[3:]:
        if ext.startswith("timestamp "):
            try:
                ts = int(ext.split(" ", 1)[1])
            except ValueError:
                raise CheckpointError("checkpoint timestamp is malformed") from None
    out = []
    for line in sigs.split("\n"):
        if not line:
            continue
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH:
            raise CheckpointError(f"malformed signature line: {line[:80]}")
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except (ValueError, binascii.Error):
            raise CheckpointError(f"malformed signature line: {line[:80]}") from None
        out.append((parts[1], raw[:4], raw[4:]))
    return Checkpoint(lines[0], size, root, ts, note), body, out


def verify_checkpoint(note: str, public_key: Ed25519PublicKey, name: str = KEY_NAME) -> Checkpoint:
    """The checkpoint, when a signature by ``public_key`` under ``name`` verifies; else CheckpointError."""
    cp, body, sigs = parse(note)
    want = note_key_hash(name, public_key)
    for sname, khash, sig in sigs:
        if sname == name and khash == want:
            try:
                public_key.verify(sig, body.encode())
                return cp
            except InvalidSignature:
                raise CheckpointError(f"checkpoint of size {cp.size}: signature does not verify") from None
    raise CheckpointError(f"checkpoint of size {cp.size} is not signed by the expected key")
