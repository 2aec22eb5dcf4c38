"""Gateway configuration, read from YAML files in one directory.

Files (all optional but ``upstreams.yaml``): ``gateway.yaml`` (limits and
defaults), ``workspaces.yaml``, ``keys.yaml``, ``upstreams.yaml``,
``budgets.yaml`` and ``secrets.yaml``. Environment variables override secrets:
``RELAYGATE_KEY_PEPPER`` and ``RELAYGATE_SECRET_<NAME>`` (name upper-cased,
``-`` as ``_``). Every error names the file and the offending entry.
The loaded :class:`GatewayConfig` is immutable; a reload builds a new one.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ENDPOINTS = ("chat.completions", "completions", "embeddings", "messages")
PROVIDERS = ("openai", "anthropic")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class ModelPrice:
    input_micros_per_1k: int   # USD millionths per 1,000 input tokens
    output_micros_per_1k: int
    max_output_tokens: int


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

    @property
    def cluster(self) -> str:
        return f"upstream_{self.name}"


@dataclass(frozen=True)
class Workspace:
    id: str
    allowed_jurisdictions: tuple[str, ...]
    allowed_regions: tuple[str, ...]
    default_max_output_tokens: int


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


@dataclass(frozen=True)
class Budget:
    id: str
    workspace: str
    key: str | None
    unit: str      # "tokens" or "usd"
    window: str    # "day" or "month"
    limit: int     # tokens, or USD millionths


@dataclass(frozen=True)
class GatewayConfig:
    pepper: bytes = field(repr=False)
    max_body_bytes: int
    default_max_output_tokens: int
    workspaces: dict[str, Workspace]
    keys: dict[str, ApiKey]
    upstreams: tuple[Upstream, ...]
    budgets: tuple[Budget, ...]

    def budgets_for(self, workspace: str, key_id: str) -> list[Budget]:
        return [b for b in self.budgets if b.workspace == workspace and b.key in (None, key_id)]


def _load_yaml(path: Path) -> Any:
    if not path.exists():
        return None
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None


def _req(d: dict, key: str, where: str, kind: type | tuple = str) -> Any:
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


def _secret(secrets: dict, name: str, where: str) -> str:
    env = "RELAYGATE_SECRET_" + name.upper().replace("-", "_")
    value = os.environ.get(env) or secrets.get(name)
    if not value:
        raise ConfigError(f"{where}: no credential '{name}' in secrets.yaml or ${env}")
    return str(value)


def _secrets(d: Path) -> dict:
    secrets = _load_yaml(d / "secrets.yaml") or {}
    if not isinstance(secrets, dict):
        raise ConfigError(f"{d/'secrets.yaml'}: must be a mapping")
    return secrets


def load_pepper(config_dir: str | os.PathLike) -> bytes:
    """The key pepper: $RELAYGATE_KEY_PEPPER, else key_pepper in secrets.yaml."""
    pepper = os.environ.get("RELAYGATE_KEY_PEPPER") or _secrets(Path(config_dir)).get("key_pepper")
    if not pepper:
        raise ConfigError("no key pepper: set key_pepper in secrets.yaml or $RELAYGATE_KEY_PEPPER")
    return str(pepper).encode()


def load(config_dir: str | os.PathLike) -> GatewayConfig:
    d = Path(config_dir)
    if not d.is_dir():
        raise ConfigError(f"{d}: config directory not found")
    gw = _load_yaml(d / "gateway.yaml") or {}
    secrets = _secrets(d)
    pepper = load_pepper(d)

    upstreams = []
    raw_up = (_load_yaml(d / "upstreams.yaml") or {}).get("upstreams")
    if not isinstance(raw_up, list) or not raw_up:
        raise ConfigError(f"{d/'upstreams.yaml'}: needs a non-empty 'upstreams' list")
    for i, u in enumerate(raw_up):
        where = f"upstreams.yaml: upstreams[{i}]"
        name = _req(u, "name", where)
        where = f"upstreams.yaml: upstream '{name}'"
        provider = _req(u, "provider", where)
        if provider not in PROVIDERS:
            raise ConfigError(f"{where}: provider must be one of {PROVIDERS}")
        host, _, port = _req(u, "address", where).rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"{where}: address must be host:port")
        models = {}
        for m, p in (_req(u, "models", where, dict)).items():
            mw = f"{where} model '{m}'"
            p = p or {}
            models[m] = ModelPrice(
                _micros(p.get("input_per_1k", 0), mw),
                _micros(p.get("output_per_1k", 0), mw),
                int(p.get("max_output_tokens", 4096)),
            )
        upstreams.append(Upstream(
            name=name, provider=provider, host=host, port=int(port), tls=bool(u.get("tls", False)),
            base_path=str(u.get("base_path", "/v1")).rstrip("/"),
            region=_req(u, "region", where), jurisdiction=_req(u, "jurisdiction", where),
            credential=_secret(secrets, _req(u, "credential", where), where), models=models,
        ))
    if len({u.name for u in upstreams}) != len(upstreams):
        raise ConfigError("upstreams.yaml: upstream names must be unique")

    default_max = int(gw.get("default_max_output_tokens", 1024))
    workspaces = {}
    for wid, w in ((_load_yaml(d / "workspaces.yaml") or {}).get("workspaces") or {}).items():
        w = w or {}
        sov = w.get("sovereignty") or {}
        workspaces[wid] = Workspace(
            id=wid,
            allowed_jurisdictions=tuple(sov.get("allowed_jurisdictions") or ()),
            allowed_regions=tuple(sov.get("allowed_regions") or ()),
            default_max_output_tokens=int(w.get("default_max_output_tokens", default_max)),
        )

    keys = {}
    for i, k in enumerate((_load_yaml(d / "keys.yaml") or {}).get("keys") or []):
        where = f"keys.yaml: keys[{i}]"
        ws = _req(k, "workspace", where)
        if ws not in workspaces:
            raise ConfigError(f"{where}: unknown workspace '{ws}'")
        scope = k.get("scope") or {}
        endpoints = tuple(scope.get("endpoints") or ENDPOINTS)
        bad = set(endpoints) - set(ENDPOINTS)
        if bad:
            raise ConfigError(f"{where}: unknown endpoints {sorted(bad)}")
        key = ApiKey(
            id=_req(k, "id", where), workspace=ws, name=str(k.get("name", "")),
            salt=_req(k, "salt", where), hash=_req(k, "hash", where),
            endpoints=endpoints, models=tuple(scope.get("models") or ("*",)),
            revoked=bool(k.get("revoked", False)),
        )
        keys[key.id] = key

    budgets = []
    for i, b in enumerate((_load_yaml(d / "budgets.yaml") or {}).get("budgets") or []):
        where = f"budgets.yaml: budgets[{i}]"
        unit, window = _req(b, "unit", where), _req(b, "window", where)
        if unit not in ("tokens", "usd") or window not in ("day", "month"):
            raise ConfigError(f"{where}: unit must be tokens|usd and window day|month")
        limit = _req(b, "limit", where, (int, float))
        budgets.append(Budget(
            id=_req(b, "id", where), workspace=_req(b, "workspace", where), key=b.get("key"),
            unit=unit, window=window,
            limit=int(limit) if unit == "tokens" else _micros(limit, where),
        ))
    return GatewayConfig(
        pepper=pepper,
        max_body_bytes=int(gw.get("max_body_bytes", 4 * 1024 * 1024)),
        default_max_output_tokens=default_max,
        workspaces=workspaces, keys=keys, upstreams=tuple(upstreams), budgets=tuple(budgets),
    )


def cost_micros(price: ModelPrice, input_tokens: int, output_tokens: int) -> int:
    """Cost of a call in USD millionths, rounded up so estimates never undershoot."""
    return math.ceil(
        (input_tokens * price.input_micros_per_1k + output_tokens * price.output_micros_per_1k) / 1000
    )
