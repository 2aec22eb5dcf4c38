"""Who is calling: API keys, session tokens, workspace JWTs, the admin and fleet tokens.

Credentials arrive as ``Authorization: Bearer <token>`` or ``x-api-key: <token>``:

- ``ro_live_<id>_<secret>``: a long-lived key bound to a workspace; kind
  ``standard`` (every permission its scope grants) or ``read_only`` (health,
  usage and logs only). The same keys call the gateway.
- ``ro_session_<id>_<secret>``: a short-lived session made from a key or JWT,
  never with more rights than its maker; expires after ``session_ttl``, and
  ends as soon as the key that made it is revoked, rotated or expires (checked
  each time the session is used, not only when it was made).
- a JWT signed by a configured issuer (JWKS file or URL), naming its
  workspace in a claim (``workspace`` by default; a dotted path such as
  ``o.id`` reaches nested claims) and optionally a ``role``; ``aud`` is
  required unless the issuer's audience is null. Verified by
  relaygate/contract/jwtauth.py, the code the gateway runs too.
- the admin token (platform operators: workspaces, upstreams, fleet) and the
  fleet token (sidecars: bundles, registration, receipts).

Secrets are compared in constant time and stored only as peppered HMACs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import time
from dataclasses import dataclass, field

import sqlalchemy as sa

from relaygate.controlplane import schema
from relaygate.controlplane.errors import ApiError
from relaygate.contract import jwtauth
from relaygate.contract import keys as keyfmt
from relaygate.contract import scope as scopes
from relaygate.contract.scope import Scope

log = logging.getLogger("relaygate.controlplane.auth")

SESSION_PREFIX = keyfmt.SESSION_PREFIX

# Permissions a workspace principal can hold; a standard key holds those its scope lists.
# One definition (relaygate/contract/scope.py) for the control plane and the gateway: gateway:call is
# what the sidecar demands of every call and what /api/relay demands here.
WORKSPACE_PERMISSIONS = scopes.WORKSPACE_PERMISSIONS
READ_ONLY_PERMISSIONS = scopes.READ_ONLY_PERMISSIONS
KEY_KINDS = ("standard", "read_only")


@dataclass(frozen=True)
class Principal:
    kind: str  # key | session | jwt | admin | fleet
    subject: str  # key id, session id, JWT sub, "admin", instance id
    workspace: str | None
    role: str  # standard | read_only | admin | fleet
    permissions: frozenset = field(default_factory=frozenset)
    key_id: str | None = None
    token: str | None = field(default=None, repr=False)  # the key, session token or JWT itself, for /api/relay
    # What this principal may hand on (keys it mints, sessions it starts): for a key or a
    # session, the key's grant (a session's permissions narrowed to the session's); None for
    # the admin and fleet tokens.
    scope: Scope | None = None
    expires_ms: int | None = None  # when this credential itself stops working (None: never)

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.subject}"

    def can(self, permission: str) -> bool:
        return self.role == "admin" or permission in self.permissions


def permissions_for(kind: str, scope_permissions) -> frozenset:
    """The effective permissions (relaygate/contract/scope.py; the gateway uses the same function)."""
    return scopes.effective_permissions(kind, scope_permissions)


def unauthenticated(message: str) -> ApiError:
    return ApiError(401, "auth.unauthenticated", message, headers={"WWW-Authenticate": 'Bearer realm="relaygate"'})


def _split(token: str, prefix: str) -> tuple[str, str] | None:
    if not token.startswith(prefix):
        return None
    key_id, sep, secret = token[len(prefix) :].partition("_")
    if not sep or len(key_id) != 12 or not secret or len(secret) > 128:
        return None
    return key_id, secret


class Authenticator:
    def __init__(self, engine, pepper_source, settings) -> None:
        self.engine, self.pepper_source, self.settings = engine, pepper_source, settings
        self._issuers: list[jwtauth.Issuer] | None = None

    @staticmethod
    def token_of(headers) -> str | None:
        auth = headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip() or None
        return (headers.get("x-api-key") or "").strip() or None

    async def resolve(self, headers) -> Principal:
        token = self.token_of(headers)
        if not token:
            raise unauthenticated("missing credentials: send Authorization: Bearer <token> or x-api-key")
        if len(token) > 8192:
            raise unauthenticated("credential too long")
        if hmac.compare_digest(token.encode(), self.settings.admin_token.encode()):
            return Principal("admin", "admin", None, "admin")
        if hmac.compare_digest(token.encode(), self.settings.fleet_token.encode()):
            instance = (headers.get("X-Relaygate-Instance") or "unknown")[:200]
            return Principal("fleet", instance, None, "fleet")
        if token.startswith(keyfmt.PREFIX):
            return await self._key(token)
        # A session's and a JWT's own token travel with the principal too: /api/relay calls the
        # gateway with the caller's credential, which now accepts all three (docs/security.md).
        if token.startswith(SESSION_PREFIX):
            return dataclasses.replace(await self._session(token), token=token)
        if token.count(".") == 2:
            return dataclasses.replace(await self._jwt(token), token=token)
        raise unauthenticated("unrecognized credential")

    async def _key(self, token: str) -> Principal:
        parts = keyfmt.split_key(token)
        if parts is None:
            raise unauthenticated("malformed API key")
        async with self.engine.connect() as c:
            row = (
                (
                    await c.execute(
                        sa.select(schema.api_keys, schema.workspaces.c.deleted_ms.label("ws_deleted"))
                        .join(schema.workspaces, schema.workspaces.c.id == schema.api_keys.c.workspace_id)
                        .where(schema.api_keys.c.id == parts[0])
                    )
                )
                .mappings()
                .first()
            )
        pepper = await self.pepper_source()
        if row is None or not keyfmt.matches(pepper, row["salt"], row["hash"], parts[1]):
            raise unauthenticated("invalid API key")
        now = time.time() * 1000
        if row["revoked_ms"] is not None:
            raise unauthenticated("API key revoked")
        if row["expires_ms"] is not None and row["expires_ms"] <= now:
            raise unauthenticated("API key expired")
        if row["ws_deleted"] is not None:
            raise unauthenticated("workspace deleted")
        scope = Scope.of(row["kind"], row["scope"], row["expires_ms"])
        return Principal(
            "key",
            row["id"],
            row["workspace_id"],
            row["kind"],
            scope.permissions,
            key_id=row["id"],
            token=token,
            scope=scope,
            expires_ms=row["expires_ms"],
        )

    async def _session(self, token: str) -> Principal:
        parts = _split(token, SESSION_PREFIX)
        if parts is None:
            raise unauthenticated("malformed session token")
        async with self.engine.connect() as c:
            row = (
                (await c.execute(sa.select(schema.sessions).where(schema.sessions.c.id == parts[0]))).mappings().first()
            )
        pepper = await self.pepper_source()
        if row is None or not keyfmt.matches(pepper, row["salt"], row["hash"], parts[1]):
            raise unauthenticated("invalid session token")
        if row["revoked_ms"] is not None:
            raise unauthenticated("session ended")
        now = time.time() * 1000
        if row["expires_ms"] <= now:
            raise unauthenticated("session token expired")
        p = row["principal"]
        permissions = frozenset(p["permissions"])
        scope = Scope(
            kind=p["role"] if p["role"] in scopes.KINDS else "read_only",
            permissions=permissions,
            endpoints=frozenset(p["endpoints"] if p.get("endpoints") is not None else scopes.ENDPOINTS),
            models=tuple(p["models"] if p.get("models") is not None else ("*",)),
        )
        async with self.engine.connect() as c:
            # A session is only as alive as what made it: its key (revoked, rotated, expired,
            # workspace deleted) and the sessions it was made from are checked on every use.
            parents = list(p.get("sessions") or [])
            if parents:
                alive = (
                    await c.execute(
                        sa.select(sa.func.count())
                        .select_from(schema.sessions)
                        .where(
                            schema.sessions.c.id.in_(parents),
                            schema.sessions.c.revoked_ms.is_(None),
                            schema.sessions.c.expires_ms > now,
                        )
                    )
                ).scalar()
                if alive != len(set(parents)):
                    raise unauthenticated("session ended: the session that started it has ended")
            ws_deleted = (
                await c.execute(
                    sa.select(schema.workspaces.c.deleted_ms).where(schema.workspaces.c.id == row["workspace_id"])
                )
            ).scalar()
            key = None
            if p.get("key_id"):
                key = (
                    (await c.execute(sa.select(schema.api_keys).where(schema.api_keys.c.id == p["key_id"])))
                    .mappings()
                    .first()
                )
        if ws_deleted is not None:
            raise unauthenticated("workspace deleted")
        if p.get("key_id"):
            if key is None or key["revoked_ms"] is not None:
                raise unauthenticated("session ended: its key was revoked")
            if key["rotated_to"]:
                raise unauthenticated("session ended: its key was rotated")
            if key["expires_ms"] is not None and key["expires_ms"] <= now:
                raise unauthenticated("session ended: its key expired")
            key_scope = Scope.of(key["kind"], key["scope"], key["expires_ms"])
            scope = Scope(
                kind=key_scope.kind,
                permissions=permissions & key_scope.permissions,
                endpoints=key_scope.endpoints,
                models=key_scope.models,
                expires_ms=key_scope.expires_ms,
            )
        return Principal(
            "session",
            row["id"],
            row["workspace_id"],
            p["role"],
            scope.permissions,
            key_id=p.get("key_id"),
            scope=scope,
            expires_ms=row["expires_ms"],
        )

    def issuers(self) -> list[jwtauth.Issuer]:
        """The trusted issuers, as the gateways verify with (their bundles carry the same list)."""
        if self._issuers is None:
            self._issuers = [i.contract() for i in self.settings.jwt_issuers]
        return self._issuers

    async def _jwt(self, token: str) -> Principal:
        """relaygate/contract/jwtauth.py verifies (the sidecars run the same code); an unknown kid
        refetches the issuer's JWKS off the event loop, at most once per its min_refetch_seconds."""
        try:
            got = jwtauth.verify(token, self.issuers())
            if isinstance(got, jwtauth.NeedKeys):
                await asyncio.to_thread(got.keyset.refresh)
                got = jwtauth.verify(token, self.issuers(), refetch=False)
        except jwtauth.JwtRejected as e:
            raise unauthenticated(str(e)) from None
        assert isinstance(got, jwtauth.JwtPrincipal)
        scope = Scope(kind=got.role, permissions=got.permissions, endpoints=frozenset(got.endpoints), models=got.models)
        return Principal(
            "jwt",
            got.subject,
            got.workspace,
            got.role,
            got.permissions,
            scope=scope,
            expires_ms=int(got.expires_at * 1000),
        )
