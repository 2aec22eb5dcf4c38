"""Secrets at rest: AES-256-GCM under the master key ($RELAYGATE_MASTER_KEY).

Provider credentials, the key pepper and the control plane's private keys are
stored in the database only in this sealed form; the name is bound in as
associated data, so a ciphertext cannot be moved to another name.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class Sealer:
    def __init__(self, master_key: bytes) -> None:
        self._aes = AESGCM(master_key)

    def seal(self, name: str, value: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aes.encrypt(nonce, value, name.encode())

    def open(self, name: str, blob: bytes) -> bytes:
        return self._aes.decrypt(blob[:12], blob[12:], name.encode())
