"""What a workspace credential may do, as one lattice shared by the gateway and the control plane.

A :class:`Scope` has five dimensions: the key's kind (``read_only`` below
``standard``), its effective permissions, the gateway endpoints and models it
may call, and when it stops working. :func:`is_subset` orders scopes; every
path that makes a credential out of another (minting a key, rotating one,
starting a session) asks it, so a credential never hands out more than it
holds on any dimension.

:func:`may_call_gateway` is the one definition of which keys may spend
provider money: the sidecar asks it for every call and the control plane's
permission set for ``/api/relay`` is derived from the same constants, so the
direct gateway path and the relay always agree.

Model patterns follow ``policies/relaygate/scope.rego`` exactly: ``*`` alone
allows every model; a pattern without ``*`` is a literal name; a pattern with
``*`` is a Rego ``glob.match(pattern, [], model)``, whose default delimiter is
``.``, so ``*`` never matches a dot. Coverage of one pattern by another is
decided exactly for simple globs (literal characters and single ``*``) and
conservatively (only by an equal pattern, or by ``*``) for anything with other
glob syntax (``?``, ``[...]``, ``{a,b}``, ``**``, escapes).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

# Every gateway endpoint a key's scope can name (relaygate/decision/wire.py maps paths to them); the
# one list: config.py, the control plane and its OpenAPI document take it from here.
# bedrock.converse: Converse and ConverseStream; bedrock.invoke: InvokeModel and
# InvokeModelWithResponseStream (relaygate/decision/wire.py BEDROCK_OPERATIONS).
ENDPOINTS = (
    "chat.completions",
    "completions",
    "embeddings",
    "messages",
    "gemini.generate",
    "bedrock.converse",
    "bedrock.invoke",
)
KINDS = ("read_only", "standard")  # ordered: a kind is below every kind after it
GATEWAY_CALL = "gateway:call"  # may send calls through the gateway (spends money)
WORKSPACE_PERMISSIONS = (
    "policies:read",
    "policies:write",
    "keys:read",
    "keys:write",
    "budgets:read",
    "budgets:write",
    "logs:read",
    "usage:read",
    "health:read",
    GATEWAY_CALL,
    "agents:read",
    "agents:write",
    "evidence:read",
    "evidence:write",
    "workspace:read",
    "sessions:write",
)
READ_ONLY_PERMISSIONS = ("health:read", "usage:read", "logs:read")
# Permission names kept for keys stored before gateway:call existed: "relay" meant /api/relay,
# which is a gateway call made for the key.
LEGACY_ALIASES = {"relay": GATEWAY_CALL}

_SIMPLE = re.compile(r"[^?\[\]{}\\!*]*(?:\*[^?\[\]{}\\!*]+)*\*?")


def valid_pattern(pattern: str) -> bool:
    """A model pattern keys may be given: a literal name, or a glob whose only wildcard is ``*``.

    Other glob syntax is refused at minting: regorus fails the whole evaluation on an invalid
    glob (so a key holding one allows nothing, not even its other patterns), and coverage
    between such globs could only be decided conservatively.
    """
    return "*" not in pattern or bool(_SIMPLE.fullmatch(pattern))


def effective_permissions(kind: str, listed: Collection[object] | None) -> frozenset[str]:
    """The permissions a credential really holds.

    ``read_only`` holds exactly :data:`READ_ONLY_PERMISSIONS` whatever it lists. A standard
    credential that lists nothing (``None``: the key documents of YAML configs written before
    permissions existed) or lists ``*`` holds every permission; an explicit list holds those of
    its names that exist (so an empty list holds none).
    """
    if kind == "read_only":
        return frozenset(READ_ONLY_PERMISSIONS)
    if kind not in KINDS:
        return frozenset()
    if listed is None or "*" in listed:
        return frozenset(WORKSPACE_PERMISSIONS)
    names = (LEGACY_ALIASES.get(p, p) for p in listed if isinstance(p, str))
    return frozenset(p for p in names if p in WORKSPACE_PERMISSIONS)


def may_call_gateway(kind: str, listed: Collection[object] | None) -> bool:
    """Whether a key of this kind listing these permissions may send calls through the gateway."""
    return GATEWAY_CALL in effective_permissions(kind, listed)


@lru_cache(maxsize=4096)
def _glob(pattern: str) -> re.Pattern[str]:
    """The regex of a Rego glob with '.' as its only delimiter (simple globs only)."""
    return re.compile("[^.]*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def model_allowed(patterns: Iterable[str], model: str) -> bool:
    """Mirror of scope.rego's model_allowed, exact for ``*``, literals and simple globs."""
    for p in patterns:
        if p == "*" or p == model:
            return True
        if "*" in p and _SIMPLE.fullmatch(p) and _glob(p).fullmatch(model):
            return True
    return False


def pattern_covers(parent: str, child: str) -> bool:
    """Every model ``child`` allows is allowed by ``parent`` (sound; exact for simple globs).

    Exactness argument: replace each ``*`` of the child by a fresh character that is not a dot
    and occurs nowhere in the parent; that string is one the child allows, and the parent
    matches it only if its own ``*`` consume the child's ``*`` (and its literals match the
    child's literals), which is the symbolic match below.
    """
    if parent == "*" or parent == child:
        return True
    if "*" not in parent or not _SIMPLE.fullmatch(parent):
        return False  # a literal covers only itself; complex globs only their equal
    if "*" in child and not _SIMPLE.fullmatch(child):
        return False  # a complex child glob: only "*" or its equal covers it
    # Symbolic match: parent tokens against child tokens, where the child's '*' is a token
    # only a parent '*' can consume, and no parent '*' consumes a '.'.
    p, c = parent, child

    @lru_cache(maxsize=None)
    def m(i: int, j: int) -> bool:
        if i == len(p):
            return j == len(c)
        if p[i] == "*":
            if m(i + 1, j):
                return True
            return j < len(c) and c[j] != "." and m(i, j + 1)
        return j < len(c) and c[j] != "*" and c[j] == p[i] and m(i + 1, j + 1)

    return m(0, 0)


@dataclass(frozen=True)
class Scope:
    """A credential's grant. ``expires_ms`` None means it never expires."""

    kind: str = "standard"
    permissions: frozenset[str] = field(default_factory=lambda: frozenset(WORKSPACE_PERMISSIONS))
    endpoints: frozenset[str] = field(default_factory=lambda: frozenset(ENDPOINTS))
    models: tuple[str, ...] = ("*",)
    expires_ms: int | None = None

    @classmethod
    def of(cls, kind: str, scope: dict[str, Any] | None, expires_ms: int | None) -> "Scope":
        """The scope of a stored key (its kind, scope document and expiry)."""
        scope = scope or {}
        return cls(
            kind=kind,
            permissions=effective_permissions(kind, scope.get("permissions")),
            endpoints=frozenset(scope["endpoints"] if scope.get("endpoints") is not None else ENDPOINTS),
            models=tuple(scope["models"] if scope.get("models") is not None else ("*",)),
            expires_ms=expires_ms,
        )

    def allows(
        self,
        *,
        permission: str | None = None,
        endpoint: str | None = None,
        model: str | None = None,
        at_ms: int | None = None,
    ) -> bool:
        """Whether a call with these attributes is within this scope (None: not asked)."""
        if permission is not None and permission not in self.permissions:
            return False
        if endpoint is not None and endpoint not in self.endpoints:
            return False
        if model is not None and not model_allowed(self.models, model):
            return False
        if at_ms is not None and self.expires_ms is not None and at_ms >= self.expires_ms:
            return False
        return True


def excess(child: Scope, parent: Scope) -> list[str]:
    """How ``child`` exceeds ``parent``, one phrase per dimension (empty: it is a subset)."""
    out: list[str] = []
    if KINDS.index(child.kind) > KINDS.index(parent.kind):
        out.append(f"kind {child.kind} above {parent.kind}")
    if extra := sorted(child.permissions - parent.permissions):
        out.append("permissions " + ", ".join(extra))
    if extra := sorted(child.endpoints - parent.endpoints):
        out.append("endpoints " + ", ".join(extra))
    if extra := [m for m in child.models if not any(pattern_covers(p, m) for p in parent.models)]:
        out.append("models " + ", ".join(extra))
    if parent.expires_ms is not None and (child.expires_ms is None or child.expires_ms > parent.expires_ms):
        out.append("a later expiry" if child.expires_ms is not None else "no expiry")
    return out


def is_subset(child: Scope, parent: Scope) -> bool:
    """The lattice order: ``child`` can do nothing ``parent`` cannot, on every dimension."""
    return not excess(child, parent)
