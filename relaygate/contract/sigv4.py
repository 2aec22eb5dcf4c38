"""AWS Signature Version 4, as the Bedrock surface needs it: both directions, one implementation.

- **Towards an upstream**: the policy service signs the call it allows with the platform's AWS
  credential (:func:`sign`), over the body it forwards, for the chosen upstream's host and region.
- **From a client**: a relaygate key can be used as an AWS access key pair. Nothing new is
  stored: the access key id is :data:`ACCESS_KEY_PREFIX` + the key's id, and the secret access key
  is derived from the key pepper and the key's salt (:func:`client_secret`), so whoever holds the
  pepper and the bundle (the sidecar, the control plane) can re-derive it and check a signature
  (:func:`parse_authorization`, :func:`canonical_request`, :func:`signature`); rotating or
  revoking the key changes or ends the pair.

Checked against botocore's own signer in tests/unit/test_sigv4.py. The canonical URI follows
botocore for every service but S3: the path as sent, percent-encoded once more (``%3A`` becomes
``%253A``), no dot-segment removal (a relaygate path has none).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "bedrock"  # the signing name of bedrock-runtime
ACCESS_KEY_PREFIX = "RGK"  # + the 12-letter key id: 15 letters and digits, what botocore takes as-is
REPLAY_WINDOW_SECONDS = 300  # X-Amz-Date may be this far from the gateway's clock, either way
_DERIVATION_LABEL = b"relaygate-sigv4\0"
_AMZ_DATE = re.compile(r"^\d{8}T\d{6}Z$")
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<cred>[^,\s]+),\s*SignedHeaders=(?P<signed>[a-z0-9;._-]+),\s*"
    r"Signature=(?P<sig>[0-9a-f]{64})$"
)
_REGION = re.compile(r"^[a-z0-9-]{1,32}$")


def access_key_id(key_id: str) -> str:
    """The AWS access key id of a relaygate key."""
    return ACCESS_KEY_PREFIX + key_id


def key_id_of(access_key: str) -> str | None:
    """The relaygate key id an access key id names, or None when it is not one of ours."""
    if not access_key.startswith(ACCESS_KEY_PREFIX):
        return None
    rest = access_key[len(ACCESS_KEY_PREFIX) :]
    return rest if len(rest) == 12 and rest.isascii() and rest.isalnum() else None


def client_secret(pepper: bytes, key_id: str, salt: str) -> str:
    """The secret access key of a relaygate key: base64url(HMAC-SHA256(pepper, label, id, salt)).

    Only the pepper's holders can compute it; a new salt (rotation mints a new key) changes it.
    """
    mac = hmac.new(pepper, _DERIVATION_LABEL + key_id.encode() + b"\0" + salt.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def amz_date(now: datetime | None = None) -> str:
    return (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


def parse_amz_date(value: str) -> float | None:
    """Epoch seconds of an X-Amz-Date value, or None when malformed."""
    if not _AMZ_DATE.match(value):
        return None
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def canonical_uri(path: str) -> str:
    """The path as sent (already percent-encoded), encoded once more, as botocore signs it."""
    return quote(path or "/", safe="/~")


def canonical_query(query: str) -> str:
    """Parameters sorted by name then value, each part URI-encoded (unreserved characters kept)."""
    if not query:
        return ""
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        pairs.append((quote(unquote(k), safe="-_.~"), quote(unquote(v), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _header_value(value: str) -> str:
    return " ".join(value.split())


def canonical_request(
    method: str, path: str, query: str, headers: Mapping[str, str], signed: Iterable[str], payload_hash: str
) -> str:
    """``headers`` by lower-case name; ``signed`` the lower-case names the signature covers."""
    names = sorted(signed)
    lines = "".join(f"{n}:{_header_value(headers.get(n, ''))}\n" for n in names)
    return "\n".join(
        [method.upper(), canonical_uri(path), canonical_query(query), lines, ";".join(names), payload_hash]
    )


def string_to_sign(date: str, scope: str, creq: str) -> str:
    return "\n".join([ALGORITHM, date, scope, hashlib.sha256(creq.encode()).hexdigest()])


def signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    k = hmac.new(("AWS4" + secret).encode(), day.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def signature(secret: str, date: str, region: str, service: str, creq: str) -> str:
    scope = f"{date[:8]}/{region}/{service}/aws4_request"
    sts = string_to_sign(date, scope, creq)
    return hmac.new(signing_key(secret, date[:8], region, service), sts.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Credential:
    """An AWS credential of the platform's (an upstream's): never logged, never shown."""

    access_key: str
    secret: str = field(repr=False)
    token: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, value: str) -> "Credential | None":
        """``ACCESS_KEY_ID:SECRET_ACCESS_KEY`` or ``ACCESS_KEY_ID:SECRET_ACCESS_KEY:SESSION_TOKEN``."""
        parts = value.split(":", 2)
        if len(parts) < 2 or not parts[0] or not parts[1] or (len(parts) == 3 and not parts[2]):
            return None
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


def sign(
    cred: Credential,
    method: str,
    host: str,
    path: str,
    body: bytes,
    region: str,
    service: str = SERVICE,
    content_type: str = "application/json",
    now: datetime | None = None,
) -> list[tuple[str, str]]:
    """Headers that sign a request (no query string) towards an AWS endpoint: Authorization,
    X-Amz-Date, X-Amz-Content-Sha256 and, with session credentials, X-Amz-Security-Token. The
    signature covers host, content-type, the date, the payload hash and the token."""
    date = amz_date(now)
    payload = hashlib.sha256(body).hexdigest()
    headers = {"host": host, "content-type": content_type, "x-amz-date": date, "x-amz-content-sha256": payload}
    if cred.token:
        headers["x-amz-security-token"] = cred.token
    creq = canonical_request(method, path, "", headers, headers, payload)
    sig = signature(cred.secret, date, region, service, creq)
    scope = f"{date[:8]}/{region}/{service}/aws4_request"
    auth = (
        f"{ALGORITHM} Credential={cred.access_key}/{scope}, SignedHeaders={';'.join(sorted(headers))}, Signature={sig}"
    )
    out = [("authorization", auth), ("x-amz-date", date), ("x-amz-content-sha256", payload)]
    if cred.token:
        out.append(("x-amz-security-token", cred.token))
    return out


@dataclass(frozen=True)
class ClientAuth:
    """A client's SigV4 Authorization header, parsed (not yet verified)."""

    access_key: str
    day: str
    region: str
    service: str
    signed: tuple[str, ...]
    signature: str = field(repr=False)


def is_sigv4(authorization: str) -> bool:
    return authorization.startswith(ALGORITHM + " ")


def parse_authorization(value: str) -> ClientAuth | str:
    """The parsed header, or why it is refused (a message for a 401)."""
    m = _AUTH.match(value.strip())
    if not m:
        return "malformed AWS4-HMAC-SHA256 Authorization header"
    parts = m["cred"].split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not parts[1].isdigit() or len(parts[1]) != 8:
        return "malformed SigV4 credential scope"
    access_key, day, region, service = parts[0], parts[1], parts[2], parts[3]
    if service != SERVICE:
        return f"SigV4 credential scope must name the service '{SERVICE}'"
    if not _REGION.match(region):
        return "malformed region in the SigV4 credential scope"
    signed = tuple(m["signed"].split(";"))
    if "host" not in signed or "x-amz-date" not in signed:
        return "the SigV4 signature must cover the host and x-amz-date headers"
    if list(signed) != sorted(set(signed)):
        return "SignedHeaders must be sorted and unique"
    return ClientAuth(access_key, day, region, service, signed, m["sig"])


def verify(
    auth: ClientAuth, secret: str, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
) -> bool:
    """Whether the client's signature is the one its secret makes over this very request and body.

    The payload hash is always the body's own SHA-256: a client that sent X-Amz-Content-Sha256
    (UNSIGNED-PAYLOAD, or another body's hash) must have it equal, or the call is refused.
    """
    payload = hashlib.sha256(body).hexdigest()
    claimed = headers.get("x-amz-content-sha256")
    if claimed is not None and claimed.strip() != payload:
        return False
    date = headers.get("x-amz-date", "")
    if date[:8] != auth.day:
        return False
    creq = canonical_request(method, path, query, headers, auth.signed, payload)
    expected = signature(secret, date, auth.region, auth.service, creq)
    return hmac.compare_digest(expected, auth.signature)
