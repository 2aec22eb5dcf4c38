"""Gateway configuration: YAML files in one directory, or the same documents in a policy bundle.

Files (all optional but ``upstreams.yaml``): ``gateway.yaml`` (limits and
defaults), ``workspaces.yaml``, ``keys.yaml``, ``upstreams.yaml``,
``budgets.yaml``, ``auth.yaml`` (``jwt_issuers``: workspace JWTs the gateway
accepts, relaygate/contract/jwtauth.py) and ``secrets.yaml``. A bundle adds a
``sessions`` document (live session tokens; never their secrets). Environment variables override secrets:
``RELAYGATE_KEY_PEPPER`` and ``RELAYGATE_SECRET_<NAME>`` (name upper-cased,
``-`` as ``_``). Every error names the file and the offending entry.
The loaded :class:`GatewayConfig` is immutable; a reload builds a new one.
A control plane ships the same documents inside its signed policy bundle
(relaygate/contract/bundle.py), parsed by the same :func:`from_documents`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from relaygate.contract.envsecret import EnvSecretError, env_secret
from relaygate.contract.preauth import PreAuthLimits, parse as parse_preauth

from relaygate.contract import jwtauth
from relaygate.contract import scope as key_scope
from relaygate.contract import sigv4

ENDPOINTS = key_scope.ENDPOINTS
PROVIDERS = ("openai", "anthropic", "google", "bedrock")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class ModelPrice:
    input_micros_per_1k: int  # USD millionths per 1,000 input tokens
    output_micros_per_1k: int
    max_output_tokens: int
    # Other names callers may use for this model (the RelayPlane reference's "claude-3-sonnet",
    # "gpt-4", ...): the gateway resolves them to this model before anything else sees the call.
    aliases: tuple[str, ...] = ()


# Client request headers each provider gets by default (lower case; a trailing '*' is a prefix).
# Everything else a client sends is removed before the call leaves the gateway: headers such as
# OpenAI-Organization, OpenAI-Project, anthropic-beta or Cookie would act on the platform's
# provider account next to its credential. accept-encoding is left out on purpose: Envoy reads
# usage out of the response body, which a compressed reply would hide. An upstream's
# ``forward_headers`` replaces its provider's list.
DEFAULT_FORWARD_HEADERS = {
    "openai": ("content-type", "accept", "user-agent", "x-stainless-*", "idempotency-key"),
    "anthropic": ("content-type", "accept", "user-agent", "x-stainless-*", "idempotency-key", "anthropic-version"),
    "google": ("content-type", "accept", "user-agent", "x-goog-api-client"),
    # No x-amz-* (the gateway signs the call itself) and none of InvokeModel's
    # x-amzn-bedrock-* options (guardrails, trace, latency tier) that act on the platform's account.
    "bedrock": ("content-type", "accept", "user-agent", "x-amzn-bedrock-accept"),
}
# Forwarded whatever the list says: pseudo-headers, what Envoy needs to frame and trace the call.
ALWAYS_FORWARDED = frozenset({"content-type", "content-length", "host", "x-request-id"})
# Never forwarded, whatever the list says: client credentials (the gateway sets the provider's
# own), the gateway's internal headers, and headers Envoy adds about the client (removed by the
# route, see relaygate/envoy/config.py).
NEVER_FORWARDED = frozenset(
    {"authorization", "x-api-key", "x-goog-api-key", "proxy-authorization", "x-relayone-receipt-id"}
)
NEVER_FORWARDED_PREFIXES = ("x-relaygate-", "x-envoy-", "x-forwarded-")
_HEADER_TOKEN = frozenset("abcdefghijklmnopqrstuvwxyz0123456789!#$%&'+-.^_`|~")


@dataclass(frozen=True)
class Upstream:
    name: str
    provider: str
    host: str
    port: int
    tls: bool
    base_path: str
    region: str
    jurisdiction: str
    credential: str = field(repr=False)
    models: dict[str, ModelPrice]
    credential_name: str = ""
    envoy_cluster_overrides: dict[str, Any] = field(default_factory=dict, compare=False)
    forward_headers: tuple[str, ...] | None = None  # None: DEFAULT_FORWARD_HEADERS[provider]
    # TLS upstreams: the CA file (on the gateway's host) the provider's certificate must chain
    # to; None is the system bundle (relaygate/envoy/config.py SYSTEM_CA_BUNDLE). The host name is
    # always checked against the certificate too.
    ca_file: str | None = None

    # Set by __post_init__ from forward_headers: the exact names, and the prefixes (names that
    # ended in '*'); derived, so out of __init__, repr, equality and hash.
    _fwd_exact: frozenset[str] = field(init=False, repr=False, compare=False)
    _fwd_prefixes: tuple[str, ...] = field(init=False, repr=False, compare=False)

    @property
    def cluster(self) -> str:
        return f"upstream_{self.name}"

    @property
    def authority(self) -> str:
        """The Host a provider gets (relaygate/envoy/config.py sets it): its address, with the port
        unless it is the scheme's default. A Bedrock upstream's signature covers it."""
        return self.host if self.port == (443 if self.tls else 80) else f"{self.host}:{self.port}"

    def __post_init__(self) -> None:
        names = self.forward_headers
        if names is None:
            names = DEFAULT_FORWARD_HEADERS.get(self.provider, ())
        object.__setattr__(self, "_fwd_exact", frozenset(n for n in names if not n.endswith("*")))
        object.__setattr__(self, "_fwd_prefixes", tuple(n[:-1] for n in names if n.endswith("*")))

    def forwards(self, header: str) -> bool:
        """Whether a client request header (lower case, as Envoy hands them over) may reach this upstream."""
        if header in NEVER_FORWARDED or header.startswith(NEVER_FORWARDED_PREFIXES):
            return False
        if header in ALWAYS_FORWARDED or header.startswith(":") or header in self._fwd_exact:
            return True
        return header.startswith(self._fwd_prefixes) if self._fwd_prefixes else False


@dataclass(frozen=True)
class Workspace:
    id: str
    allowed_jurisdictions: tuple[str, ...]
    allowed_regions: tuple[str, ...]
    default_max_output_tokens: int
    requests_per_second: float | None = None  # gateway tier limits (None: unlimited)
    tokens_per_minute: int | None = None
    # The workspace's own model names (alias -> a catalog model or platform alias); they win over
    # the platform's aliases for this workspace's calls. compare=False: a dict is not hashable.
    model_aliases: Mapping[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ApiKey:
    id: str
    workspace: str
    name: str
    salt: str
    hash: str = field(repr=False)
    endpoints: tuple[str, ...]
    models: tuple[str, ...]
    revoked: bool
    expires_at: float | None = None  # epoch seconds; a rotated key's grace period ends here
    # kind and permissions decide whether the key may call the gateway at all (relaygate/contract/scope.py,
    # the definition the control plane uses too); a key document without them is a standard key
    # with every permission, as keys.yaml files written before they existed expect.
    kind: str = "standard"
    may_call: bool = True
    # Ids of the keys this one was minted or rotated from, nearest first: their per-key budgets
    # charge this key too (budgets_for).
    lineage: tuple[str, ...] = ()
    # How the caller authenticated when it was not with this key itself: "session:<id>" (a
    # session made from the key ``id`` names, or ``id`` == credential for a session made from a
    # JWT) or "jwt:<sub>" (``id`` == credential: no key). "" for the key itself.
    credential: str = ""

    @property
    def key_id(self) -> str | None:
        """The API key the call is charged to and receipts name (None: a JWT's, no key)."""
        return None if self.credential and self.id == self.credential else self.id


@dataclass(frozen=True)
class Session:
    """A session token's record as the sidecar gets it (relaygate/controlplane/bundles.py):
    never the secret, only its salted, peppered HMAC, as for keys."""

    id: str
    workspace: str
    salt: str
    hash: str = field(repr=False)
    key: str | None  # the API key that made it (directly or through parent sessions); None: a JWT did
    kind: str  # standard | read_only
    permissions: frozenset[str]  # already narrowed to the maker key's
    parents: tuple[str, ...]  # the sessions it was made from: it ends when any of them does
    expires_at: float  # epoch seconds, checked by the sidecar's own clock
    origin: str = ""  # the maker's actor name (key:<id>, jwt:<sub>, session:<id>)
    # A session made from a JWT (no key): the endpoints and models its claims allowed. A key's
    # session takes its key's instead.
    endpoints: tuple[str, ...] = ENDPOINTS
    models: tuple[str, ...] = ("*",)


@dataclass(frozen=True)
class Budget:
    id: str
    workspace: str
    key: str | None
    unit: str  # "tokens" or "usd"
    window: str  # "day" or "month"
    limit: int  # tokens, or USD millionths

    @property
    def ledger_id(self) -> str:
        """The budget's name in the ledger: ids are unique per workspace only, so two workspaces'
        "daily" budgets must never share a counter (memory, SQLite or a fleet's Redis)."""
        return f"{self.workspace}/{self.id}"


@dataclass(frozen=True)
class GatewayConfig:
    pepper: bytes = field(repr=False)
    max_body_bytes: int
    default_max_output_tokens: int
    workspaces: dict[str, Workspace]
    keys: dict[str, ApiKey]
    upstreams: tuple[Upstream, ...]
    budgets: tuple[Budget, ...]
    # Calls denied before authentication: per-address throttle and receipt sampling (relaygate/contract/preauth.py).
    preauth: PreAuthLimits = field(default_factory=PreAuthLimits)
    # Platform-wide aliases (alias -> catalog model), from the upstreams' model entries.
    model_aliases: Mapping[str, str] = field(default_factory=dict, compare=False)

    def resolve_model(self, workspace: str, name: str) -> str:
        """The catalog model a call naming ``name`` is for: the workspace's alias first, then the
        platform's, else ``name`` itself. One step each (aliases do not chain further), so a
        workspace alias may name a platform alias and nothing loops."""
        ws = self.workspaces.get(workspace)
        if ws is not None:
            name = ws.model_aliases.get(name, name)
        return self.model_aliases.get(name, name)

    def catalog(self) -> dict[str, list[str]]:
        """Every model some upstream serves -> the platform aliases that name it (sorted)."""
        out: dict[str, set[str]] = {}
        for u in self.upstreams:
            for m, p in u.models.items():
                out.setdefault(m, set()).update(p.aliases)
        return {m: sorted(a) for m, a in sorted(out.items())}

    # Live session tokens (the ``sessions`` document) and trusted JWT issuers (the ``auth``
    # document's ``jwt_issuers``, relaygate/contract/jwtauth.py); both empty for a YAML config
    # without them.
    sessions: dict[str, Session] = field(default_factory=dict)
    jwt_issuers: tuple[jwtauth.Issuer, ...] = ()

    def budgets_for(self, workspace: str, key: "ApiKey") -> list[Budget]:
        """The workspace's budgets, the key's own, and those of every key it descends from.

        A key minted by a key (or rotated from one) is charged to its ancestors' per-key
        budgets too, so minting a child cannot escape a parent's cap.
        """
        charged = (key.id, *key.lineage)
        return [b for b in self.budgets if b.workspace == workspace and (b.key is None or b.key in charged)]


def _load_yaml(path: Path) -> Any:
    if not path.exists():
        return None
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None


def _req(d: object, key: str, where: str, kind: type | tuple[type, ...] = str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise ConfigError(f"{where}: missing '{key}'")
    v = d[key]
    if not isinstance(v, kind) or isinstance(v, bool) and kind is not bool:
        raise ConfigError(f"{where}: '{key}' must be {getattr(kind, '__name__', kind)}")
    return v


def _micros(v: Any, where: str) -> int:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
        raise ConfigError(f"{where}: price must be a non-negative number")
    return int(round(v * 1_000_000))


def _secret(secrets: dict[str, Any], name: str, where: str, environ: Mapping[str, str]) -> str:
    """A credential by name: $RELAYGATE_SECRET_<NAME> (in ``environ``) wins over the secrets document."""
    env = "RELAYGATE_SECRET_" + name.upper().replace("-", "_")
    value = _env(env, environ) or secrets.get(name)
    if not value:
        raise ConfigError(f"{where}: no credential '{name}' in secrets.yaml or ${env}")
    return str(value)


def _env(name: str, environ: Mapping[str, str]) -> str | None:
    """$NAME, or the file $NAME_FILE names (container secrets; relaygate/contract/envsecret.py)."""
    try:
        return env_secret(name, environ)
    except EnvSecretError as e:
        raise ConfigError(str(e)) from None


def _secrets(d: Path) -> dict[str, Any]:
    secrets = _load_yaml(d / "secrets.yaml") or {}
    if not isinstance(secrets, dict):
        raise ConfigError(f"{d / 'secrets.yaml'}: must be a mapping")
    return secrets


def load_pepper(config_dir: str | os.PathLike[str]) -> bytes:
    """The key pepper: $RELAYGATE_KEY_PEPPER, else key_pepper in secrets.yaml."""
    pepper = _env("RELAYGATE_KEY_PEPPER", os.environ) or _secrets(Path(config_dir)).get("key_pepper")
    if not pepper:
        raise ConfigError("no key pepper: set key_pepper in secrets.yaml or $RELAYGATE_KEY_PEPPER")
    return str(pepper).encode()


CONFIG_FILES = ("gateway", "workspaces", "upstreams", "keys", "budgets", "auth")


def _documents(d: Path) -> dict[str, Any]:
    if not d.is_dir():
        raise ConfigError(f"{d}: config directory not found")
    docs: dict[str, Any] = {}
    for name in CONFIG_FILES:
        doc = _load_yaml(d / f"{name}.yaml")
        if doc is not None and not isinstance(doc, dict):
            raise ConfigError(f"{d / (name + '.yaml')}: must be a mapping")
        docs[name] = doc or {}
    return docs


def read_documents(config_dir: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config documents by name, secrets) from a config directory's YAML files."""
    d = Path(config_dir)
    docs = _documents(d)
    secrets = dict(_secrets(d))
    secrets["key_pepper"] = load_pepper(d).decode()
    return docs, secrets


def load_without_secrets(config_dir: str | os.PathLike[str]) -> GatewayConfig:
    """The config as Envoy's resource builders need it (upstreams, limits): neither secrets.yaml
    nor any secret variable is read, credentials stay empty and the pepper unset, so the Envoy
    container of a sidecar pair holds no secret (docs/deploy.md). Never for deciding calls."""
    return from_documents(_documents(Path(config_dir)), None)


def load(config_dir: str | os.PathLike[str]) -> GatewayConfig:
    """A config directory's documents, with the process environment's overrides."""
    cfg = from_documents(*read_documents(config_dir), environ=os.environ)
    # A bundle is checked where its upstreams are made (the control plane's API); a file config here.
    # (Not in from_documents: one malformed credential must not stop a whole bundle from loading.)
    for u in cfg.upstreams:
        if u.provider == "bedrock" and sigv4.Credential.parse(u.credential) is None:
            raise ConfigError(
                f"upstreams.yaml: upstream '{u.name}': the credential '{u.credential_name}' of a bedrock "
                "upstream must be ACCESS_KEY_ID:SECRET_ACCESS_KEY (or ACCESS_KEY_ID:SECRET_ACCESS_KEY:SESSION_TOKEN)"
            )
    return cfg


def _positive_int(value: Any, where: str, default: int) -> int:
    """A whole number above zero (an int; 501.0, which JSON Schema's "integer" admits and the
    control plane stores as given; a string of digits; null: the default), else ConfigError."""
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{where} must be a positive whole number, got {value!r}")
    return value


def from_documents(
    docs: dict[str, Any], secrets: dict[str, Any] | None, environ: Mapping[str, str] | None = None
) -> GatewayConfig:
    """Build the gateway config from its documents (the YAML files, or a policy bundle's copy).

    ``docs`` maps ``gateway``, ``workspaces``, ``upstreams``, ``keys`` and ``budgets`` to
    the documents of the same-named YAML files; ``secrets`` holds ``key_pepper`` and the
    provider credentials. ``environ`` (``$RELAYGATE_KEY_PEPPER``, ``$RELAYGATE_SECRET_<NAME>``)
    wins over ``secrets`` for each of them; parsing itself reads no environment, so a caller
    that wants the process's overrides passes ``os.environ`` (the sidecar and the control plane
    do) and a test or a dry run can pass its own.
    """
    environ = environ or {}
    gw = docs.get("gateway") or {}
    if secrets is None:  # load_without_secrets: nothing here will check a key or call a provider
        pepper = b""
    else:
        raw = _env("RELAYGATE_KEY_PEPPER", environ) or secrets.get("key_pepper")
        if not raw:
            raise ConfigError("no key pepper: set key_pepper in secrets.yaml or $RELAYGATE_KEY_PEPPER")
        pepper = str(raw).encode()

    upstreams = []
    raw_up = (docs.get("upstreams") or {}).get("upstreams")
    if not isinstance(raw_up, list) or not raw_up:
        raise ConfigError("upstreams.yaml: needs a non-empty 'upstreams' list")
    for i, u in enumerate(raw_up):
        upstreams.append(parse_upstream(u, f"upstreams.yaml: upstreams[{i}]", secrets, environ))
    if len({u.name for u in upstreams}) != len(upstreams):
        raise ConfigError("upstreams.yaml: upstream names must be unique")
    aliases = platform_aliases(upstreams)

    default_max = _positive_int(gw.get("default_max_output_tokens"), "gateway.yaml: default_max_output_tokens", 1024)
    max_body = _positive_int(gw.get("max_body_bytes"), "gateway.yaml: max_body_bytes", 4 * 1024 * 1024)
    workspaces = {}
    raw_ws = (docs.get("workspaces") or {}).get("workspaces") or {}
    if not isinstance(raw_ws, dict):
        raise ConfigError("workspaces.yaml: 'workspaces' must be a mapping")
    for wid, w in raw_ws.items():
        workspaces[wid] = parse_workspace(wid, w or {}, default_max)

    keys = {}
    for i, k in enumerate((docs.get("keys") or {}).get("keys") or []):
        key = parse_key(k, f"keys.yaml: keys[{i}]")
        if key.workspace not in workspaces:
            raise ConfigError(f"keys.yaml: keys[{i}]: unknown workspace '{key.workspace}'")
        keys[key.id] = key

    budgets = []
    for i, b in enumerate((docs.get("budgets") or {}).get("budgets") or []):
        budgets.append(parse_budget(b, f"budgets.yaml: budgets[{i}]"))
    sessions = {}
    for i, s in enumerate((docs.get("sessions") or {}).get("sessions") or []):
        sess = parse_session(s, f"sessions: sessions[{i}]")
        if sess.workspace in workspaces:  # a deleted workspace's sessions are simply not live
            sessions[sess.id] = sess
    issuers = []
    raw_iss = (docs.get("auth") or {}).get("jwt_issuers") or []
    if not isinstance(raw_iss, list):
        raise ConfigError("auth.yaml: 'jwt_issuers' must be a list")
    for i, d in enumerate(raw_iss):
        try:
            issuers.append(jwtauth.parse_issuer(d, f"auth.yaml: jwt_issuers[{i}]"))
        except jwtauth.IssuerConfigError as e:
            raise ConfigError(str(e)) from None
    return GatewayConfig(
        pepper=pepper,
        max_body_bytes=max_body,
        default_max_output_tokens=default_max,
        workspaces=workspaces,
        keys=keys,
        upstreams=tuple(upstreams),
        budgets=tuple(budgets),
        preauth=parse_preauth(gw.get("unauthenticated")),
        model_aliases=aliases,
        sessions=sessions,
        jwt_issuers=tuple(issuers),
    )


def platform_aliases(upstreams: "list[Upstream] | tuple[Upstream, ...]") -> dict[str, str]:
    """alias -> model over every upstream's catalog; ConfigError when an alias is also a model's
    own name (which would it mean?) or names two different models (which would be called?)."""
    models = {m for u in upstreams for m in u.models}
    out: dict[str, str] = {}
    for u in upstreams:
        for m, p in u.models.items():
            for a in p.aliases:
                if a in models:
                    raise ConfigError(
                        f"upstreams.yaml: upstream '{u.name}' model '{m}': alias '{a}' is a model's own name"
                    )
                if out.setdefault(a, m) != m:
                    raise ConfigError(
                        f"upstreams.yaml: upstream '{u.name}': alias '{a}' names both '{out[a]}' and '{m}'"
                    )
    return out


def parse_upstream(
    u: Any, where: str, secrets: dict[str, Any] | None, environ: Mapping[str, str] | None = None
) -> Upstream:
    """One upstream entry; ``secrets`` None skips resolving the credential (validation only)."""
    name = _req(u, "name", where)
    if not name or not all(c.isalnum() or c in "-_" for c in name) or len(name) > 64:
        raise ConfigError(f"{where}: name must be 1-64 letters, digits, '-' or '_'")
    where = f"upstreams.yaml: upstream '{name}'"
    provider = _req(u, "provider", where)
    if provider not in PROVIDERS:
        raise ConfigError(f"{where}: provider must be one of {PROVIDERS}")
    host, _, port = _req(u, "address", where).rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: address must be host:port")
    models = {}
    for m, p in (_req(u, "models", where, dict)).items():
        mw = f"{where} model '{m}'"
        p = p or {}
        if not isinstance(p, dict):
            raise ConfigError(f"{mw}: must be a mapping of prices")
        models[m] = ModelPrice(
            _micros(p.get("input_per_1k", 0), mw),
            _micros(p.get("output_per_1k", 0), mw),
            int(p.get("max_output_tokens", 4096)),
            _model_names(p.get("aliases"), f"{mw}: aliases", m),
        )
    cred_name = _req(u, "credential", where)
    forward = _forward_headers(u.get("forward_headers"), where)
    overrides = u.get("envoy_cluster_overrides") or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}: envoy_cluster_overrides must be a mapping")
    ca_file = u.get("ca_file")
    if ca_file is not None:
        if not isinstance(ca_file, str) or not 0 < len(ca_file) <= 1024 or any(c in ca_file for c in "\0\r\n"):
            raise ConfigError(f"{where}: ca_file must be the path of a PEM CA file on the gateway's host")
        if not u.get("tls", False):
            raise ConfigError(f"{where}: ca_file needs tls: true (it verifies the provider's certificate)")
    credential = _secret(secrets, cred_name, where, environ or {}) if secrets is not None else ""
    return Upstream(
        name=name,
        provider=provider,
        host=host,
        port=int(port),
        tls=bool(u.get("tls", False)),
        base_path=str(u.get("base_path", "" if provider == "bedrock" else "/v1")).rstrip("/"),
        region=_req(u, "region", where),
        jurisdiction=_req(u, "jurisdiction", where),
        credential=credential,
        models=models,
        credential_name=cred_name,
        envoy_cluster_overrides=overrides,
        forward_headers=forward,
        ca_file=ca_file,
    )


_MODEL_NAME_MAX = 256  # as the wire parser bounds 'model'


def _model_names(v: Any, where: str, own: str | None = None) -> tuple[str, ...]:
    """A list of model names (aliases): non-empty strings of at most 256 characters, no duplicates."""
    if v is None:
        return ()
    if not isinstance(v, list) or len(v) > 100:
        raise ConfigError(f"{where} must be a list of at most 100 model names")
    for a in v:
        if not isinstance(a, str) or not 0 < len(a) <= _MODEL_NAME_MAX or a == own:
            raise ConfigError(f"{where}: {a!r} is not a model name (1-256 characters, not the model's own)")
    if len(set(v)) != len(v):
        raise ConfigError(f"{where} lists a name twice")
    return tuple(v)


def _forward_headers(v: Any, where: str) -> tuple[str, ...] | None:
    """An upstream's ``forward_headers``: header names (a trailing '*' matches a prefix), or None."""
    if v is None:
        return None
    if not isinstance(v, list) or len(v) > 100 or not all(isinstance(h, str) for h in v):
        raise ConfigError(f"{where}: forward_headers must be a list of at most 100 header names")
    out = []
    for h in v:
        name = h.strip().lower()
        bare = name[:-1] if name.endswith("*") else name
        if not bare or len(name) > 100 or not set(bare) <= _HEADER_TOKEN:
            raise ConfigError(f"{where}: forward_headers: '{h}' is not a header name (a trailing '*' matches a prefix)")
        if name in NEVER_FORWARDED or name.startswith(NEVER_FORWARDED_PREFIXES):
            raise ConfigError(
                f"{where}: forward_headers: '{h}' is never forwarded (a client credential, "
                "or a header of the gateway or Envoy)"
            )
        out.append(name)
    return tuple(out)


def parse_workspace(wid: str, w: Any, default_max: int) -> Workspace:
    where = f"workspaces.yaml: workspace '{wid}'"
    if not isinstance(w, dict):
        raise ConfigError(f"{where}: must be a mapping")
    sov = w.get("sovereignty") or {}
    limits = w.get("limits") or {}
    if not isinstance(sov, dict) or not isinstance(limits, dict):
        raise ConfigError(f"{where}: sovereignty and limits must be mappings")
    rps, tpm = limits.get("requests_per_second"), limits.get("tokens_per_minute")
    for name, v in (("requests_per_second", rps), ("tokens_per_minute", tpm)):
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0):
            raise ConfigError(f"{where}: limits.{name} must be a positive number")
    return Workspace(
        id=wid,
        allowed_jurisdictions=tuple(sov.get("allowed_jurisdictions") or ()),
        allowed_regions=tuple(sov.get("allowed_regions") or ()),
        default_max_output_tokens=_positive_int(
            w.get("default_max_output_tokens"), f"{where}: default_max_output_tokens", default_max
        ),
        requests_per_second=float(rps) if rps else None,
        tokens_per_minute=int(tpm) if tpm else None,
        model_aliases=_workspace_aliases(w.get("model_aliases"), f"{where}: model_aliases"),
    )


def _workspace_aliases(v: Any, where: str) -> dict[str, str]:
    if v is None:
        return {}
    if not isinstance(v, dict) or len(v) > 200:
        raise ConfigError(f"{where} must be a mapping of at most 200 alias -> model")
    for a, m in v.items():
        for name in (a, m):
            if not isinstance(name, str) or not 0 < len(name) <= _MODEL_NAME_MAX:
                raise ConfigError(f"{where}: {name!r} is not a model name (1-256 characters)")
        if a == m:
            raise ConfigError(f"{where}: '{a}' names itself")
    return dict(v)


def parse_key(k: Any, where: str) -> ApiKey:
    ws = _req(k, "workspace", where)
    scope = k.get("scope") or {}
    endpoints = tuple(scope.get("endpoints") or ENDPOINTS)
    bad = set(endpoints) - set(ENDPOINTS)
    if bad:
        raise ConfigError(f"{where}: unknown endpoints {sorted(bad)}")
    expires = k.get("expires_at")
    kind = k.get("kind", "standard")
    if kind not in key_scope.KINDS:
        raise ConfigError(f"{where}: kind must be one of {key_scope.KINDS}")
    permissions = scope.get("permissions")
    if permissions is not None and (
        not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions)
    ):
        raise ConfigError(f"{where}: scope.permissions must be a list of names")
    return ApiKey(
        id=_req(k, "id", where),
        workspace=ws,
        name=str(k.get("name", "")),
        salt=_req(k, "salt", where),
        hash=_req(k, "hash", where),
        endpoints=endpoints,
        models=tuple(scope.get("models") or ("*",)),
        revoked=bool(k.get("revoked", False)),
        expires_at=float(expires) if expires is not None else None,
        kind=kind,
        may_call=key_scope.may_call_gateway(kind, permissions),
        lineage=_lineage(scope.get("lineage"), where),
    )


def parse_session(s: Any, where: str) -> Session:
    kind = s.get("kind", "standard") if isinstance(s, dict) else None
    if kind not in key_scope.KINDS:
        raise ConfigError(f"{where}: kind must be one of {key_scope.KINDS}")
    perms = s.get("permissions")
    if not isinstance(perms, list) or not all(isinstance(p, str) for p in perms):
        raise ConfigError(f"{where}: permissions must be a list of names")
    parents = s.get("parents") or []
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise ConfigError(f"{where}: parents must be a list of session ids")
    key = s.get("key")
    if key is not None and not isinstance(key, str):
        raise ConfigError(f"{where}: key must be a key id or null")
    return Session(
        id=_req(s, "id", where),
        workspace=_req(s, "workspace", where),
        salt=_req(s, "salt", where),
        hash=_req(s, "hash", where),
        key=key,
        kind=kind,
        # as for keys: read_only holds its fixed set whatever it lists
        permissions=key_scope.effective_permissions(kind, perms),
        parents=tuple(parents),
        expires_at=float(_req(s, "expires_at", where, (int, float))),
        origin=str(s.get("origin") or ""),
        endpoints=tuple(e for e in ENDPOINTS if e in _names(s.get("endpoints"), ENDPOINTS, where, "endpoints")),
        models=_names(s.get("models"), ("*",), where, "models"),
    )


def _names(value: Any, default: tuple[str, ...], where: str, what: str) -> tuple[str, ...]:
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise ConfigError(f"{where}: {what} must be a list of names")
    return tuple(value)


def _lineage(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ConfigError(f"{where}: scope.lineage must be a list of key ids")
    return tuple(value)


def parse_budget(b: Any, where: str) -> Budget:
    unit, window = _req(b, "unit", where), _req(b, "window", where)
    if unit not in ("tokens", "usd") or window not in ("day", "month"):
        raise ConfigError(f"{where}: unit must be tokens|usd and window day|month")
    limit = _req(b, "limit", where, (int, float))
    if limit < 0:
        raise ConfigError(f"{where}: limit must not be negative")
    return Budget(
        id=_req(b, "id", where),
        workspace=_req(b, "workspace", where),
        key=b.get("key"),
        unit=unit,
        window=window,
        limit=int(limit) if unit == "tokens" else _micros(limit, where),
    )


def cost_micros(price: ModelPrice, input_tokens: int, output_tokens: int) -> int:
    """Cost of a call in USD millionths, rounded up so estimates never undershoot."""
    return math.ceil((input_tokens * price.input_micros_per_1k + output_tokens * price.output_micros_per_1k) / 1000)
