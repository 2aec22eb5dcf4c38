"""Workspace JWTs: issuer configuration, public-key sets and verification, for the gateway and the control plane.

One implementation (the sidecar's decision library and the control plane's authenticator both call
:func:`verify`), so a token either side accepts the other accepts too.

An issuer (:class:`Issuer`) names its ``iss``, its public keys (a JWKS URL, or the JWKS document
itself: the control plane inlines a ``jwks_file`` into the bundles it ships, JWKS being public
keys), the algorithms it signs with (asymmetric only: ``none`` and the HMAC family are refused when
the issuer is configured, so a public key can never be used as an HMAC secret), the audience it
must name (``None``: no ``aud`` required, as Clerk's default session tokens carry none), the
claim that names the workspace (a dotted path such as ``o.id`` walks nested objects; a claim whose
own name contains dots, such as ``https://example.com/workspace``, is matched whole first) and the
role a token without a ``role`` claim gets.

:class:`KeySet` caches an issuer's keys. A known ``kid`` never causes a fetch. An unknown ``kid``
makes :func:`verify` answer :class:`NeedKeys` (the caller refreshes off its event loop, then asks
again) at most once per ``min_refetch`` seconds per key set; in between, unknown kids are refused
at once, so a flood of forged kids cannot hammer the issuer's JWKS endpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt

from relaygate.contract import scope as scopes
from relaygate.contract.keys import PREFIX, SESSION_PREFIX

log = logging.getLogger("relaygate.jwtauth")

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
DEFAULT_ALGORITHMS = ("RS256", "ES256", "EdDSA")
DEFAULT_AUDIENCE = "relaygate"
LEEWAY_SECONDS = 30
MIN_REFETCH_SECONDS = 30.0  # an unknown kid refetches an issuer's JWKS at most this often
# Keys fetched longer ago than this are fetched again before the next token is trusted: a key the
# issuer removed (rotated out, compromised) stops verifying within this, though its kid is known.
MAX_KEY_AGE_SECONDS = 300.0
MAX_TOKEN_BYTES = 8192


class IssuerConfigError(ValueError):
    pass


class JwtRejected(Exception):
    """The token is not accepted; the message says why (safe to show the caller)."""


@dataclass(frozen=True)
class Issuer:
    issuer: str
    audience: str | None = DEFAULT_AUDIENCE
    jwks_url: str | None = None
    jwks: Mapping[str, Any] | None = field(default=None, compare=False)  # an inline JWKS document
    workspace_claim: str = "workspace"
    default_role: str = "standard"
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    min_refetch: float = MIN_REFETCH_SECONDS
    max_key_age: float = MAX_KEY_AGE_SECONDS

    def document(self) -> dict[str, Any]:
        """What travels in a bundle (public keys and names only: an issuer holds no secret)."""
        doc: dict[str, Any] = {
            "issuer": self.issuer,
            "audience": self.audience,
            "workspace_claim": self.workspace_claim,
            "default_role": self.default_role,
            "algorithms": list(self.algorithms),
            "min_refetch_seconds": self.min_refetch,
            "max_key_age_seconds": self.max_key_age,
        }
        if self.jwks_url:
            doc["jwks_url"] = self.jwks_url
        if self.jwks is not None:
            doc["jwks"] = dict(self.jwks)
        return doc


def parse_issuer(d: Any, where: str) -> Issuer:
    """One issuer entry (a bundle's ``auth`` document, or a control-plane setting already read)."""
    if not isinstance(d, Mapping):
        raise IssuerConfigError(f"{where}: must be a mapping")
    iss = d.get("issuer")
    if not isinstance(iss, str) or not iss:
        raise IssuerConfigError(f"{where}: needs an issuer")
    url, doc = d.get("jwks_url"), d.get("jwks")
    if (url is None) == (doc is None):
        raise IssuerConfigError(f"{where}: needs exactly one of jwks_url and jwks")
    if url is not None and (not isinstance(url, str) or not url.startswith(("https://", "http://"))):
        raise IssuerConfigError(f"{where}: jwks_url must be an http(s) URL")
    if doc is not None:
        if not isinstance(doc, Mapping) or not isinstance(doc.get("keys"), list):
            raise IssuerConfigError(f"{where}: jwks must be a JWKS document ({{'keys': [...]}})")
        _keys_of(doc, where)
    aud = d.get("audience", DEFAULT_AUDIENCE)
    if aud is not None and (not isinstance(aud, str) or not aud):
        raise IssuerConfigError(f"{where}: audience must be a string, or null for none required")
    claim = d.get("workspace_claim", "workspace")
    if not isinstance(claim, str) or not claim or any(not p for p in claim.split(".")):
        raise IssuerConfigError(f"{where}: workspace_claim must be a claim name or a dotted path such as o.id")
    role = d.get("default_role", "standard")
    if role not in scopes.KINDS:
        raise IssuerConfigError(f"{where}: default_role must be one of {scopes.KINDS}")
    algs = d.get("algorithms", DEFAULT_ALGORITHMS)
    if isinstance(algs, str) or not isinstance(algs, Sequence) or not algs:
        raise IssuerConfigError(f"{where}: algorithms must be a non-empty list")
    bad = sorted(str(a) for a in algs if a not in ASYMMETRIC_ALGORITHMS)
    if bad:
        raise IssuerConfigError(
            f"{where}: algorithms {bad} refused: only asymmetric ones ({', '.join(sorted(ASYMMETRIC_ALGORITHMS))})"
        )
    refetch = d.get("min_refetch_seconds", MIN_REFETCH_SECONDS)
    if not isinstance(refetch, (int, float)) or isinstance(refetch, bool) or refetch < 0:
        raise IssuerConfigError(f"{where}: min_refetch_seconds must be a non-negative number")
    max_age = d.get("max_key_age_seconds", max(MAX_KEY_AGE_SECONDS, float(refetch)))
    if not isinstance(max_age, (int, float)) or isinstance(max_age, bool) or max_age < refetch:
        raise IssuerConfigError(f"{where}: max_key_age_seconds must be a number no smaller than min_refetch_seconds")
    return Issuer(
        issuer=iss,
        audience=aud,
        jwks_url=url,
        jwks=dict(doc) if doc is not None else None,
        workspace_claim=claim,
        default_role=role,
        algorithms=tuple(str(a) for a in algs),
        min_refetch=float(refetch),
        max_key_age=float(max_age),
    )


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The claim at ``path``: the claim of that exact name, else a dotted walk (``o.id``)."""
    if path in claims:
        return claims[path]
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _keys_of(doc: Mapping[str, Any], where: str = "JWKS") -> dict[str, jwt.PyJWK]:
    """Public keys by kid (a key without a kid under ""); symmetric (oct) keys are never used."""
    out: dict[str, jwt.PyJWK] = {}
    raw = doc.get("keys")
    if not isinstance(raw, list):
        raise IssuerConfigError(f"{where}: no 'keys' list")
    for k in raw:
        if not isinstance(k, dict) or k.get("kty") == "oct" or k.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(k)
        except jwt.PyJWTError:
            continue  # a key type this PyJWT cannot use: skipped, as PyJWKSet does
        out[str(k.get("kid", ""))] = key
    return out


class KeySet:
    """An issuer's public keys, fetched from its JWKS URL (or given) and cached.

    :meth:`key` never does I/O. :meth:`refresh` fetches (blocking: call it off the event loop),
    at most once per ``min_refetch`` seconds; concurrent callers wait for the one fetch. Keys
    fetched over ``max_age`` seconds ago are :meth:`stale`: :func:`verify` has them fetched again
    before it trusts a token, so a key the issuer removed stops verifying (a failed fetch keeps
    the keys it had, and is retried after ``max_age`` again).
    """

    def __init__(
        self,
        url: str | None = None,
        document: Mapping[str, Any] | None = None,
        min_refetch: float = 30.0,
        max_age: float = MAX_KEY_AGE_SECONDS,
    ) -> None:
        self.url, self.min_refetch, self.max_age = url, min_refetch, max(max_age, min_refetch)
        self._keys: dict[str, jwt.PyJWK] = _keys_of(document) if document is not None else {}
        self._lock = threading.Lock()
        self._last_fetch = -1e18  # monotonic time of the last fetch attempt
        self.last_error = ""
        self.version = 0  # moved by every fetch that changed the keys: verified tokens are re-checked

    def key(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return self._keys.get("") or (next(iter(self._keys.values())) if len(self._keys) == 1 else None)
        return self._keys.get(kid)

    def stale(self) -> bool:
        """Fetched (or last tried) over ``max_age`` seconds ago, or never (never for a given document)."""
        return self.url is not None and time.monotonic() - self._last_fetch >= self.max_age

    def refresh_due(self) -> bool:
        """Whether an unknown kid may refetch now (never for a given JWKS document)."""
        return self.url is not None and time.monotonic() - self._last_fetch >= self.min_refetch

    def refresh(self, timeout: float = 5.0) -> bool:
        """Fetch the JWKS if due (blocking). True if the key set was fetched by this call."""
        if self.url is None:
            return False
        with self._lock:
            if time.monotonic() - self._last_fetch < self.min_refetch:
                return False  # fetched meanwhile (or too recently): use what there is
            self._last_fetch = time.monotonic()
            try:
                req = urllib.request.Request(self.url, headers={"accept": "application/json"})
                with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 (http(s) checked at parse)
                    doc = json.loads(r.read(1 << 20))
                keys = _keys_of(doc, self.url)
            except (OSError, ValueError) as e:
                # Kept: the keys fetched before. Retried no sooner than min_refetch either.
                self.last_error = f"JWKS fetch from {self.url} failed: {e}"
                log.warning("%s; next attempt in %.0fs at the earliest", self.last_error, self.min_refetch)
                return False
            if set(keys) != set(self._keys) or any(keys[k].key_id != self._keys[k].key_id for k in keys):
                self.version += 1
            elif any(_public_numbers(keys[k]) != _public_numbers(self._keys[k]) for k in keys):
                self.version += 1  # same kids, other keys: an issuer that reuses kids
            self._keys, self.last_error = keys, ""
            return True


_KEYSETS: dict[tuple[str, str, float, float, str], KeySet] = {}
_KEYSETS_LOCK = threading.Lock()


def keyset_for(issuer: Issuer) -> KeySet:
    """The process's one key set for an issuer's keys (kept across config reloads, so a new
    bundle does not refetch what is cached)."""
    inline = json.dumps(issuer.jwks, sort_keys=True) if issuer.jwks is not None else ""
    ident = (issuer.issuer, issuer.jwks_url or "", issuer.min_refetch, issuer.max_key_age, inline)
    with _KEYSETS_LOCK:
        ks = _KEYSETS.get(ident)
        if ks is None:
            ks = _KEYSETS[ident] = KeySet(issuer.jwks_url, issuer.jwks, issuer.min_refetch, issuer.max_key_age)
        return ks


@dataclass(frozen=True)
class JwtPrincipal:
    """A verified token's principal."""

    subject: str
    issuer: str
    workspace: str
    role: str
    permissions: frozenset[str]
    endpoints: tuple[str, ...]
    models: tuple[str, ...]
    expires_at: float  # epoch seconds

    @property
    def name(self) -> str:
        """How receipts and audit events name it."""
        return f"jwt:{self.subject}"


@dataclass(frozen=True)
class NeedKeys:
    """The token's kid is not in its issuer's cached keys and a refetch is due: refresh
    ``keyset`` (off the event loop), then verify again with ``refetch=False``."""

    keyset: KeySet


def looks_like_jwt(token: str) -> bool:
    """Three dot-separated parts, and not one of our API keys or session tokens."""
    return token.count(".") == 2 and not token.startswith((PREFIX, SESSION_PREFIX))


def _public_numbers(k: jwt.PyJWK) -> Any:
    key = k.key
    return key.public_numbers() if hasattr(key, "public_numbers") else key


class VerifiedTokens:
    """Tokens verified recently, so a caller sending the same JWT on every call pays for one
    signature check (ES256/RS256: about 0.1 ms) per token, not per call.

    An entry is the principal a full verification produced, kept while the token would still
    verify: until its ``exp`` plus the leeway :func:`verify` allows, and only while its issuer is
    configured exactly as it was and the issuer's key set is the one it was checked against (a
    JWKS fetch that changed the keys drops every entry of that set). Keyed by the token's SHA-256
    (the whole token must match); bounded, oldest out first. Refusals are never kept.
    """

    def __init__(self, max_entries: int = 10_000, clock: Any = time.time) -> None:
        self.max_entries, self.clock = max_entries, clock
        self._entries: dict[bytes, tuple[JwtPrincipal, Issuer, KeySet, int]] = {}

    def get(self, digest: bytes, issuers: Iterable[Issuer]) -> tuple[JwtPrincipal, KeySet] | None:
        """The principal a token verified to, and the key set it was checked against; None if not kept."""
        hit = self._entries.get(digest)
        if hit is None:
            return None
        principal, issuer, keys, version = hit
        if (
            self.clock() >= principal.expires_at + LEEWAY_SECONDS
            or keys.version != version
            or not any(i is issuer or i == issuer for i in issuers)
        ):
            self._entries.pop(digest, None)
            return None
        return principal, keys

    def put(self, digest: bytes, principal: JwtPrincipal, issuer: Issuer, keys: KeySet, version: int) -> None:
        if len(self._entries) >= self.max_entries:
            for old in list(self._entries)[: max(1, self.max_entries // 10)]:
                self._entries.pop(old, None)
        self._entries[digest] = (principal, issuer, keys, version)


VERIFIED = VerifiedTokens()


def verify(
    token: str, issuers: Iterable[Issuer], *, refetch: bool = True, cache: VerifiedTokens | None = VERIFIED
) -> JwtPrincipal | NeedKeys:
    """The principal of a token signed by one of ``issuers``; raises :class:`JwtRejected`.

    A token verified before is answered from ``cache`` (:class:`VerifiedTokens`) while it
    would still verify; ``cache=None`` checks the signature every time."""
    if len(token) > MAX_TOKEN_BYTES:
        raise JwtRejected("token too long")
    issuers = tuple(issuers)
    digest = hashlib.sha256(token.encode()).digest() if cache is not None else b""
    if cache is not None:
        known = cache.get(digest, issuers)
        if known is not None:
            principal, held = known
            if not (refetch and held.stale()):
                return principal
            return NeedKeys(held)  # keys too old to trust: fetched again, then this token re-checked
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise JwtRejected("malformed token") from None
    issuer = next((i for i in issuers if i.issuer == unverified.get("iss")), None)
    if issuer is None:
        raise JwtRejected("token issuer is not trusted")
    if header.get("alg") not in issuer.algorithms:
        raise JwtRejected(f"token algorithm {header.get('alg')!r} is not one its issuer signs with")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise JwtRejected("malformed token (kid)")
    keys = keyset_for(issuer)
    if refetch and keys.stale():  # never fetched, or fetched over max_key_age ago
        return NeedKeys(keys)
    version = keys.version  # before the key is read: a fetch meanwhile makes the entry stale
    key = keys.key(kid)
    if key is None:
        if refetch and keys.refresh_due():
            return NeedKeys(keys)
        raise JwtRejected("token signed by an unknown key")
    required = ["exp", "iss", "sub"] + (["aud"] if issuer.audience is not None else [])
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=list(issuer.algorithms),
            audience=issuer.audience,
            issuer=issuer.issuer,
            options={"require": required, "verify_aud": issuer.audience is not None},
            leeway=LEEWAY_SECONDS,
        )
    except jwt.ExpiredSignatureError:
        raise JwtRejected("token expired") from None
    except (jwt.PyJWTError, ValueError) as e:
        raise JwtRejected(f"token rejected: {e}") from None
    principal = principal_of(claims, issuer)
    if cache is not None:
        cache.put(digest, principal, issuer, keys, version)
    return principal


def principal_of(claims: Mapping[str, Any], issuer: Issuer) -> JwtPrincipal:
    """The principal a verified token's claims describe (raises :class:`JwtRejected`)."""
    workspace = claim_at(claims, issuer.workspace_claim)
    if not isinstance(workspace, str) or not workspace:
        raise JwtRejected(f"token names no workspace (claim '{issuer.workspace_claim}')")
    role = claims.get("role", issuer.default_role)
    if role not in scopes.KINDS:
        raise JwtRejected(f"token role must be one of {scopes.KINDS}")
    perms = claims.get("permissions")
    granted = scopes.effective_permissions(role, perms if isinstance(perms, list) else None)
    endpoints: tuple[str, ...] = scopes.ENDPOINTS
    if "endpoints" in claims:  # narrows, never widens
        listed = claims["endpoints"]
        if not isinstance(listed, list):
            raise JwtRejected("token claim 'endpoints' must be a list")
        endpoints = tuple(e for e in scopes.ENDPOINTS if e in listed)
    models: tuple[str, ...] = ("*",)
    if "models" in claims:
        listed = claims["models"]
        if not isinstance(listed, list) or not all(isinstance(m, str) and scopes.valid_pattern(m) for m in listed):
            raise JwtRejected("token claim 'models' must be a list of model names or simple globs")
        models = tuple(listed)
    return JwtPrincipal(
        subject=str(claims["sub"])[:200],
        issuer=issuer.issuer,
        workspace=workspace,
        role=role,
        permissions=granted,
        endpoints=endpoints,
        models=models,
        expires_at=float(claims["exp"]),
    )
