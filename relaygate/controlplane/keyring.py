"""The control plane's own Ed25519 keys (bundle signing; later tree heads), sealed in the database.

Kept in the database rather than in files so every replica signs with the same
key; the PEM is sealed under the master key (see sealing.py).
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relaygate.controlplane.secretstore import SecretStore
from relaygate.evidence.signing import Signer, key_id_for

BUNDLE_KEY = "_signing:bundle"


def _pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


async def load_or_create(store: SecretStore, name: str) -> Signer:
    pem = await store.get(name)
    if pem is None:
        key = Ed25519PrivateKey.generate()
        await store.put(name, _pem(key))
        pem = await store.get(name)  # whichever replica won the race
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    return Signer(key, key_id_for(key.public_key()))


def new_signer() -> tuple[Signer, str]:
    key = Ed25519PrivateKey.generate()
    return Signer(key, key_id_for(key.public_key())), _pem(key)
