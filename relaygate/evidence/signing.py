"""Ed25519 signing keys for receipts: load or create, sign, verify.

Keys live in PEM files (private 0600). The key id is derived from the public
key so a verifier needs nothing but the public key to match a signature.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)


def key_id_for(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Signer:
    private_key: Ed25519PrivateKey
    key_id: str
    created_at: float = 0.0  # when the key was made (file mtime): its validity starts here

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.private_key.sign(message)).decode()

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write a private key atomically, mode 0600, fsynced (file and directory)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def signer_for(key: Ed25519PrivateKey, created_at: float = 0.0) -> Signer:
    return Signer(key, key_id_for(key.public_key()), created_at)


def load_or_create_signer(path: Path) -> Signer:
    """Load the PEM private key at *path*, creating it (mode 0600) if absent.

    The matching public key is written next to it as ``<name>.pub`` so that
    verifiers and the control plane can pick it up.
    """
    path = Path(path)
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path}: not an Ed25519 private key")
    else:
        key = Ed25519PrivateKey.generate()
        write_private_key(path, key)
    signer = signer_for(key, path.stat().st_mtime)
    pub_path = path.with_suffix(".pub")
    if not pub_path.exists() or pub_path.read_bytes() != signer.public_pem():
        pub_path.write_bytes(signer.public_pem())
    return signer


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """The Ed25519 public key in ``pem``; ValueError for anything else.

    cryptography raises UnsupportedAlgorithm (not a ValueError) for a key of a type it does not
    know (an unknown algorithm OID); that is "not an Ed25519 public key" too, so callers that
    read keys from bundles or requests need to catch only ValueError.
    """
    try:
        key = serialization.load_pem_public_key(pem)
    except UnsupportedAlgorithm as e:
        raise ValueError(f"not an Ed25519 public key ({e})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def verify(public_key: Ed25519PublicKey, message: bytes, signature_b64: str) -> bool:
    try:
        public_key.verify(base64.b64decode(signature_b64), message)
        return True
    except (InvalidSignature, ValueError):
        return False
