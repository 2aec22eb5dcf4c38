"""The control plane's own keys (bundle signing, custody), sealed in the database.

Kept in the database rather than in files so every replica signs with the same
key; the PEM is sealed under the master key (see sealing.py).
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relaygate.contract.bundle import BundleSigner
from relaygate.controlplane.secretstore import SecretStore
from relaygate.evidence.signing import Signer, key_id_for

BUNDLE_KEY = "_signing:bundle"


def _pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


async def load_or_create_bundle_signer(store: SecretStore) -> BundleSigner:
    """The bundle-signing key: ECDSA P-256 when made here (ES256, which OPA agents verify as well
    as sidecars); an Ed25519 key made by an older control plane is kept and signs EdDSA."""
    pem = await store.get(BUNDLE_KEY)
    if pem is None:
        await store.put(BUNDLE_KEY, BundleSigner.generate().private_pem())
        pem = await store.get(BUNDLE_KEY)  # whichever replica won the race
    return BundleSigner.of(serialization.load_pem_private_key(pem.encode(), password=None))


def new_signer() -> tuple[Signer, str]:
    key = Ed25519PrivateKey.generate()
    return Signer(key, key_id_for(key.public_key())), _pem(key)
