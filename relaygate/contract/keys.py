"""Client API keys: ``ro_live_<id>_<secret>``, stored only as salted, peppered HMACs.

The key id is public (it names the key in receipts and logs); the secret part
never leaves the client. Keys are high-entropy random strings, so a keyed HMAC
(pepper held outside the key file) is the right cost: a slow password hash
would only add latency to every call.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

PREFIX = "ro_live_"
SESSION_PREFIX = "ro_session_"  # session tokens: ro_session_<id>_<secret>, same id and secret shape
_ALPHABET = string.ascii_letters + string.digits


def random_string(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def hash_secret(pepper: bytes, salt: str, secret: str) -> str:
    return hmac.new(pepper, (salt + ":" + secret).encode(), hashlib.sha256).hexdigest()


def new_key(pepper: bytes) -> tuple[str, dict[str, str]]:
    """Return (the full key to hand out once, the record to store)."""
    key_id, secret, salt = random_string(12), random_string(32), secrets.token_hex(16)
    return f"{PREFIX}{key_id}_{secret}", {
        "id": key_id,
        "salt": salt,
        "hash": hash_secret(pepper, salt, secret),
    }


def split_key(token: str, prefix: str = PREFIX) -> tuple[str, str] | None:
    """(key id, secret) for a well-formed key (or, with ``prefix`` SESSION_PREFIX, session token), else None."""
    if not token.startswith(prefix):
        return None
    rest = token[len(prefix) :]
    key_id, sep, secret = rest.partition("_")
    if not sep or len(key_id) != 12 or not secret or len(secret) > 128:
        return None
    return key_id, secret


def matches(pepper: bytes, record_salt: str, record_hash: str, secret: str) -> bool:
    return hmac.compare_digest(hash_secret(pepper, record_salt, secret), record_hash)
