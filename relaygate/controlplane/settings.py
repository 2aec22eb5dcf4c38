"""Control-plane settings: a YAML file, then environment variables, then command-line flags.

Secrets never come from the command line (``ps`` shows it): the admin token,
the fleet token and the master key are read from the environment (``NAME``, or a file named
by ``NAME_FILE``: relaygate/contract/envsecret.py), or, when unset, generated once into files
under the data directory (mode 0600). Every option's variable takes ``_FILE`` too.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from relaygate.controlplane import plans as plans_mod
from relaygate.contract import jwtauth
from relaygate.contract.envsecret import EnvSecretError, env_secret

ENV_PREFIX = "RELAYGATE_CP_"


class SettingsError(ValueError):
    pass


@dataclass
class JwtIssuer:
    issuer: str
    audience: str | None = "relaygate"  # None (YAML null): tokens need no aud (Clerk's default tokens)
    jwks_file: str | None = None
    jwks_url: str | None = None
    workspace_claim: str = "workspace"  # a claim name or a dotted path into nested claims (o.id)
    default_role: str = "standard"
    algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    min_refetch_seconds: float = jwtauth.MIN_REFETCH_SECONDS  # an unknown kid refetches the JWKS at most this often
    max_key_age_seconds: float | None = None  # keys older than this are fetched again (default 300, >= min_refetch)

    def contract(self) -> jwtauth.Issuer:
        """The issuer as the control plane and the gateways verify with (relaygate/contract/jwtauth.py):
        a jwks_file is read and its keys inlined (public keys: they travel in bundles)."""
        doc: dict = {
            "issuer": self.issuer,
            "audience": self.audience,
            "workspace_claim": self.workspace_claim,
            "default_role": self.default_role,
            "algorithms": list(self.algorithms),
            "min_refetch_seconds": self.min_refetch_seconds,
        }
        if self.max_key_age_seconds is not None:
            doc["max_key_age_seconds"] = self.max_key_age_seconds
        if self.jwks_url:
            doc["jwks_url"] = self.jwks_url
        else:
            try:
                doc["jwks"] = json.loads(Path(self.jwks_file or "").read_text())
            except (OSError, ValueError) as e:
                raise SettingsError(f"jwt issuer {self.issuer}: jwks_file {self.jwks_file}: {e}") from None
        try:
            return jwtauth.parse_issuer(doc, f"jwt issuer {self.issuer}")
        except jwtauth.IssuerConfigError as e:
            raise SettingsError(str(e)) from None


@dataclass
class Settings:
    listen: str = "127.0.0.1:8090"
    database_url: str = ""  # default: sqlite:///<data_dir>/controlplane.db
    data_dir: Path = Path("var/controlplane")
    gateway_url: str = "http://127.0.0.1:8080"  # where /api/relay sends calls (the Envoy listener)
    seed_config_dir: Path | None = None  # imported into an empty database on first start
    seed_policy_dir: Path | None = Path("policies")
    rate_limit_rps: float = 60.0  # control-plane calls per second per workspace
    rate_limit_burst: float = 0.0  # 0: same as rate_limit_rps
    session_ttl: int = 900
    session_max_ttl: int = 86400
    relay_timeout: float = 120.0
    long_poll_max: int = 60
    checkpoint_interval: float = 5.0  # seconds between signed tree heads (when the log grew)
    jwt_issuers: list[JwtIssuer] = field(default_factory=list)
    xds_listen: str = ""  # host:port of the ADS server; empty disables
    ops_grpc_listen: str = ""  # host:port of the fleet-operations gRPC service (fleet_ops.py); empty disables
    # TLS. With tls_cert/tls_key the API, the fleet port and xDS serve TLS. With tls_client_ca
    # the fleet port and xDS require a client certificate that CA issued (mTLS), and the fleet
    # token is refused on any connection that did not present one.
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    fleet_listen: str = ""  # host:port of the mTLS fleet port; empty: none
    gateway_ca: str = ""  # CA file that must have issued an https gateway's cert
    # Where the bundle-signing public key is written (default <data_dir>/bundle-signing.pub): a
    # volume sidecars mount read-only for --control-plane-key, without the rest of the data dir.
    bundle_public_key: str = ""
    log_level: str = "INFO"
    # Several replicas on one PostgreSQL database: each names itself (default: host, pid and a
    # random suffix, so a restarted process is a new owner), shares state through the database
    # and, with redis_url, its control-plane rate limits through Redis. lease_ttl: seconds a
    # replica's claim on shared work (the log writer, a deployment, an evidence job) lasts
    # without renewal, so a crashed replica's work moves to another after at most that long.
    # Webhooks (webhooks.py): targets must be public https addresses unless allowed (a lab, tests);
    # a failed delivery is retried after webhook_retry_base seconds, doubling each time.
    webhook_allow_private: bool = False
    webhook_retry_base: float = 5.0
    retention_interval: float = 3600.0  # seconds between log-retention runs (retention.py)
    # Named plans (plans.py): the built-in free/team/enterprise, redefined or extended by the
    # --config file's ``plans:`` mapping.
    plans: dict = field(default_factory=lambda: plans_mod.parse(None))
    replica_id: str = ""
    redis_url: str = field(default="", repr=False)
    lease_ttl: float = 10.0
    admin_token: str = field(default="", repr=False)
    fleet_token: str = field(default="", repr=False)
    master_key: bytes = field(default=b"", repr=False)

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0] or "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    def gateway_ssl(self):
        """What /api/relay's client passes as aiohttp's ``ssl``: the pinned gateway CA, else
        the system store (True); verification is never turned off."""
        if not self.gateway_ca:
            return True
        if getattr(self, "_gateway_ssl", None) is None:
            from relaygate.contract.tls import client_context

            self._gateway_ssl = client_context(self.gateway_ca)
        return self._gateway_ssl


def _secret_file(path: Path, make) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value


def load(argv=None) -> Settings:
    p = argparse.ArgumentParser(
        prog="relaygate-controlplane",
        description="relaygate control plane: the RelayOne (/v1) and RelayPlane (/api) REST API, "
        "policy bundles for sidecars, receipt ingestion and the audit log.",
        epilog="Secrets come from the environment: RELAYGATE_ADMIN_TOKEN (platform operator), "
        "RELAYGATE_FLEET_TOKEN (sidecars), RELAYGATE_MASTER_KEY (base64, 32 bytes: encrypts "
        "secrets at rest), or from the file NAME_FILE names (container secrets). Unset, each is "
        "generated once into a 0600 file in --data-dir. Every option may also be set as "
        "RELAYGATE_CP_<OPTION> (e.g. RELAYGATE_CP_DATABASE_URL, or RELAYGATE_CP_DATABASE_URL_FILE) "
        "or in the --config file.",
    )
    p.add_argument(
        "--config",
        default=os.environ.get(ENV_PREFIX + "CONFIG"),
        help="YAML settings file (keys as the long options, with _ for -)",
    )
    p.add_argument("--listen", help="HTTP address host:port (default 127.0.0.1:8090)")
    p.add_argument(
        "--database-url",
        help="sqlite:///PATH (default <data-dir>/controlplane.db) or postgresql://USER:PASS@HOST:PORT/DB",
    )
    p.add_argument("--data-dir", help="keys, generated secrets and the default SQLite file (default var/controlplane)")
    p.add_argument("--gateway-url", help="the gateway /api/relay calls go through (default http://127.0.0.1:8080)")
    p.add_argument(
        "--seed-config-dir",
        help="config directory (YAML) imported when the database is "
        "empty: workspaces, keys, upstreams, budgets, secrets",
    )
    p.add_argument("--seed-policy-dir", help="platform Rego modules and data (default policies)")
    p.add_argument("--rate-limit-rps", type=float, help="control-plane requests/s per workspace (default 60)")
    p.add_argument("--rate-limit-burst", type=float, help="bucket size (default: the rate)")
    p.add_argument("--session-ttl", type=int, help="session token lifetime in seconds (default 900)")
    p.add_argument("--relay-timeout", type=float, help="seconds /api/relay waits per attempt (default 120)")
    p.add_argument("--jwks-file", help="JWKS file for workspace JWTs (with --jwt-issuer)")
    p.add_argument("--jwks-url", help="JWKS URL for workspace JWTs (with --jwt-issuer)")
    p.add_argument("--jwt-issuer", help="accepted JWT issuer (iss)")
    p.add_argument("--jwt-audience", help="required JWT audience (default relaygate)")
    p.add_argument("--checkpoint-interval", type=float, help="seconds between signed tree heads (default 5)")
    p.add_argument("--xds-listen", help="ADS gRPC address host:port (default: disabled)")
    p.add_argument(
        "--ops-grpc-listen",
        help="fleet-operations gRPC address host:port (admin token; TLS with --tls-cert) (default: disabled)",
    )
    p.add_argument("--tls-cert", help="PEM certificate (chain): serve the API, the fleet port and xDS over TLS")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument(
        "--tls-client-ca",
        help="CA file for client certificates: the fleet port and xDS then "
        "require one it issued (mTLS), and the fleet token alone is refused",
    )
    p.add_argument("--fleet-listen", help="host:port of a second, mTLS-only port for sidecars (needs --tls-client-ca)")
    p.add_argument("--gateway-ca", help="CA file that issued the gateway's certificate (an https --gateway-url)")
    p.add_argument(
        "--bundle-public-key",
        help="also write the bundle-signing public key here (default <data-dir>/bundle-signing.pub): "
        "a file sidecars read as --control-plane-key, e.g. on a volume they mount read-only",
    )
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING (default INFO)")
    p.add_argument(
        "--webhook-allow-private",
        action="store_true",
        default=None,
        help="let webhooks target private, loopback and link-local addresses and plain http (labs, tests)",
    )
    p.add_argument(
        "--webhook-retry-base", type=float, help="seconds before a failed webhook delivery's first retry (default 5)"
    )
    p.add_argument("--retention-interval", type=float, help="seconds between log-retention runs (default 3600)")
    p.add_argument("--replica-id", help="this replica's name among several (default: host-pid-random)")
    p.add_argument(
        "--redis-url",
        help="Redis shared by the replicas (control-plane rate limits); a password belongs in "
        "RELAYGATE_CP_REDIS_URL_FILE",
    )
    p.add_argument(
        "--lease-ttl", type=float, help="seconds a replica's claim on shared work lasts unrenewed (default 10)"
    )
    a = p.parse_args(argv)

    doc: dict = {}
    if a.config:
        try:
            doc = yaml.safe_load(Path(a.config).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise SettingsError(f"{a.config}: {e}") from None
        if not isinstance(doc, dict):
            raise SettingsError(f"{a.config}: must be a mapping")

    s = Settings()
    simple = [
        "listen",
        "database_url",
        "data_dir",
        "gateway_url",
        "seed_config_dir",
        "seed_policy_dir",
        "rate_limit_rps",
        "rate_limit_burst",
        "session_ttl",
        "relay_timeout",
        "xds_listen",
        "ops_grpc_listen",
        "log_level",
        "checkpoint_interval",
        "tls_cert",
        "tls_key",
        "tls_client_ca",
        "fleet_listen",
        "gateway_ca",
        "bundle_public_key",
        "replica_id",
        "webhook_allow_private",
        "webhook_retry_base",
        "retention_interval",
        "redis_url",
        "lease_ttl",
    ]
    for name in simple:
        value = doc.get(name)
        key = ENV_PREFIX + name.upper()
        env = os.environ.get(key)
        if key + "_FILE" in os.environ:  # e.g. RELAYGATE_CP_DATABASE_URL_FILE: a password stays out of the environment
            try:
                env = env_secret(key)
            except EnvSecretError as e:
                raise SettingsError(str(e)) from None
        if env is not None:
            value = env
        flag = getattr(a, name, None)
        if flag is not None:
            value = flag
        if value is None:
            continue
        current = getattr(s, name)
        try:
            if isinstance(current, bool):
                if isinstance(value, str):
                    if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError(value)
                    value = value.lower() in ("true", "1", "yes")
                value = bool(value)
            elif isinstance(current, float):
                value = float(value)
            elif isinstance(current, int) and not isinstance(current, bool):
                value = int(value)
            elif name in ("data_dir", "seed_config_dir", "seed_policy_dir"):
                value = Path(value) if value else None
        except ValueError:
            raise SettingsError(f"{name}: invalid value {value!r}") from None
        setattr(s, name, value)

    try:
        s.plans = plans_mod.parse(doc.get("plans"))
    except plans_mod.PlanError as e:
        raise SettingsError(f"{a.config}: {e}") from None
    issuers = doc.get("jwt_issuers") or []
    if not isinstance(issuers, list):
        raise SettingsError("jwt_issuers must be a list")
    for i, d in enumerate(issuers):
        if not isinstance(d, dict) or "issuer" not in d or not (d.get("jwks_file") or d.get("jwks_url")):
            raise SettingsError(f"jwt_issuers[{i}]: needs issuer and jwks_file or jwks_url")
        unknown = set(d) - set(JwtIssuer.__dataclass_fields__)
        if unknown:
            raise SettingsError(f"jwt_issuers[{i}]: unknown fields {sorted(unknown)}")
        s.jwt_issuers.append(JwtIssuer(**{k: (tuple(v) if k == "algorithms" else v) for k, v in d.items()}))
    iss = a.jwt_issuer or os.environ.get(ENV_PREFIX + "JWT_ISSUER")
    if iss:
        jwks_file = a.jwks_file or os.environ.get(ENV_PREFIX + "JWKS_FILE")
        jwks_url = a.jwks_url or os.environ.get(ENV_PREFIX + "JWKS_URL")
        if not (jwks_file or jwks_url):
            raise SettingsError("--jwt-issuer needs --jwks-file or --jwks-url")
        s.jwt_issuers.append(
            JwtIssuer(
                iss, a.jwt_audience or os.environ.get(ENV_PREFIX + "JWT_AUDIENCE") or "relaygate", jwks_file, jwks_url
            )
        )

    for issuer in s.jwt_issuers:
        issuer.contract()  # a bad issuer (unknown algorithm, unreadable JWKS file) stops the start, named
    if ":" not in s.listen or not s.listen.rpartition(":")[2].isdigit():
        raise SettingsError(f"listen must be host:port, got {s.listen!r}")
    if not s.replica_id:
        s.replica_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    if s.retention_interval <= 0:
        raise SettingsError("retention_interval must be positive")
    if s.webhook_retry_base <= 0:
        raise SettingsError("webhook_retry_base must be positive")
    if s.lease_ttl <= 0:
        raise SettingsError("lease_ttl must be positive")
    if s.rate_limit_rps <= 0:
        raise SettingsError("rate_limit_rps must be positive")
    if bool(s.tls_cert) != bool(s.tls_key):
        raise SettingsError("tls_cert and tls_key go together")
    if s.tls_client_ca and not s.tls_cert:
        raise SettingsError("tls_client_ca needs tls_cert and tls_key (mTLS is TLS first)")
    if s.fleet_listen and not s.tls_client_ca:
        raise SettingsError("fleet_listen needs tls_client_ca: the fleet port exists to require client certificates")
    if s.fleet_listen and (":" not in s.fleet_listen or not s.fleet_listen.rpartition(":")[2].isdigit()):
        raise SettingsError(f"fleet_listen must be host:port, got {s.fleet_listen!r}")
    for name in ("tls_cert", "tls_key", "tls_client_ca", "gateway_ca"):
        if getattr(s, name) and not Path(getattr(s, name)).is_file():
            raise SettingsError(f"{name}: no such file {getattr(s, name)}")
    s.data_dir = Path(s.data_dir)
    if not s.database_url:
        s.database_url = f"sqlite:///{(s.data_dir / 'controlplane.db').resolve()}"
    try:
        admin = env_secret("RELAYGATE_ADMIN_TOKEN")
        fleet = env_secret("RELAYGATE_FLEET_TOKEN")
        master = env_secret("RELAYGATE_MASTER_KEY")
    except EnvSecretError as e:
        raise SettingsError(str(e)) from None
    s.admin_token = admin or _secret_file(s.data_dir / "admin-token", lambda: "rg_admin_" + secrets.token_urlsafe(32))
    s.fleet_token = fleet or _secret_file(s.data_dir / "fleet-token", lambda: "rg_fleet_" + secrets.token_urlsafe(32))
    mk = master or _secret_file(s.data_dir / "master.key", lambda: base64.b64encode(secrets.token_bytes(32)).decode())
    try:
        s.master_key = base64.b64decode(mk)
        assert len(s.master_key) == 32
    except Exception:
        raise SettingsError("RELAYGATE_MASTER_KEY must be 32 bytes, base64-encoded") from None
    return s
