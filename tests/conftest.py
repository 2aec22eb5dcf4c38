"""Fixtures: a real stack (provider simulator + relaygate-extproc + Envoy) on loopback.

The config is generated per session with fresh keys, so tests know every
key's plaintext while the config holds only hashes, exactly as in production.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from relaygate.evidence.receipts import envelope_receipt
from relaygate.evidence.signing import load_public_key
from relaygate.extproc.keytool import create as create_key
from devstack.processes import Stack, free_port
from devstack import tls as tls_mod

POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"

# Every stack of the session serves TLS with certificates from one local CA (what `make run`
# does too), so the tested path is the shipped one. This process's clients (curl, requests,
# urllib, aiohttp, the SDKs) trust that CA through the usual trust-store variables, as an
# operator's clients would; relaygate's own processes never see these variables
# (devstack.processes strips them) and trust only the CA files they are given.
import atexit as _atexit, os as _os, shutil as _shutil, tempfile as _tempfile  # noqa: E401,E402

_TLS_DIR = Path(_tempfile.mkdtemp(prefix="relaygate-test-tls-"))
TEST_PKI = Stack.shared_pki = tls_mod.ensure(_TLS_DIR)
_atexit.register(_shutil.rmtree, _TLS_DIR, True)
for _var in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
    _os.environ[_var] = str(TEST_PKI.ca)


def _with_sim_knobs(upstreams: list[dict]) -> list[dict]:
    """The provider's default header allow-list plus the simulator's x-sim-* knobs (tests drive them)."""
    from relaygate.contract.config import DEFAULT_FORWARD_HEADERS

    return [{**u, "forward_headers": [*DEFAULT_FORWARD_HEADERS[u["provider"]], "x-sim-*"]} for u in upstreams]


def write_config(d: Path, budgets: list[dict] | None = None) -> dict[str, str]:
    """Write a test config directory; return key tokens by name."""
    d.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in ("us", "eu", "ant", "dead", "gem")}
    (d / "gateway.yaml").write_text("max_body_bytes: 1048576\ndefault_max_output_tokens: 256\n")
    (d / "secrets.yaml").write_text(
        yaml.safe_dump(
            {"key_pepper": "test-pepper", "openai": "sk-test-openai", "anthropic": "sk-ant-test", "google": "AIza-test"}
        )
    )
    (d / "workspaces.yaml").write_text(
        yaml.safe_dump(
            {
                "workspaces": {
                    "acme": {
                        "sovereignty": {"allowed_jurisdictions": ["us", "eea"]},
                        # the workspace's own names: one for a catalog model, one for a platform alias
                        "model_aliases": {"fast": "gpt-4o-mini", "smart": "gpt-4"},
                    },
                    "euro": {"sovereignty": {"allowed_jurisdictions": ["eea"]}},
                    "swiss": {"sovereignty": {"allowed_jurisdictions": ["ch"]}},
                    "capped": {},
                    "tiny": {},
                    "outage": {},
                }
            }
        )
    )
    model = lambda i, o: {"input_per_1k": i, "output_per_1k": o}  # noqa: E731
    (d / "upstreams.yaml").write_text(
        yaml.safe_dump(
            {
                "upstreams": _with_sim_knobs(
                    [
                        {
                            "name": "openai-us",
                            "provider": "openai",
                            "address": f"127.0.0.1:{ports['us']}",
                            "region": "us-east-1",
                            "jurisdiction": "us",
                            "credential": "openai",
                            "models": {
                                "gpt-4o-mini": model(0.15, 0.6),
                                "gpt-4o": {**model(2.5, 10), "aliases": ["gpt-4", "gpt-4-turbo"]},
                                "gpt-3.5-turbo-instruct": model(1.5, 2),
                                "text-embedding-3-small": model(0.02, 0),
                            },
                        },
                        {
                            "name": "openai-eu",
                            "provider": "openai",
                            "address": f"127.0.0.1:{ports['eu']}",
                            "region": "eu-west-1",
                            "jurisdiction": "eu",
                            "credential": "openai",
                            "models": {"gpt-4o-mini": model(0.2, 0.8)},
                        },
                        {
                            "name": "anthropic-us",
                            "provider": "anthropic",
                            "address": f"127.0.0.1:{ports['ant']}",
                            "region": "us-east-1",
                            "jurisdiction": "us",
                            "credential": "anthropic",
                            "models": {
                                "claude-sonnet-4-5": {
                                    **model(3, 15),
                                    "aliases": ["claude-3-sonnet", "claude-3-sonnet-20240229"],
                                }
                            },
                        },
                        {
                            "name": "google-us",
                            "provider": "google",
                            "address": f"127.0.0.1:{ports['gem']}",
                            "base_path": "/v1beta",
                            "region": "us-central1",
                            "jurisdiction": "us",
                            "credential": "google",
                            "models": {
                                "gemini-2.5-flash": {**model(0.3, 2.5), "aliases": ["gemini-pro", "gemini-pro-vision"]}
                            },
                        },
                        {
                            "name": "openai-dead",
                            "provider": "openai",
                            "address": f"127.0.0.1:{ports['dead']}",
                            "region": "us-east-1",
                            "jurisdiction": "us",
                            "credential": "openai",
                            "models": {"dead-model": model(1, 1)},
                        },
                    ]
                )
            }
        )
    )
    (d / "keys.yaml").write_text("keys: []\n")
    tokens = {
        "acme": create_key(d, "acme", "all", None, None),
        "acme-embed": create_key(d, "acme", "embed", ["embeddings"], None),
        "acme-4o": create_key(d, "acme", "4o", None, ["gpt-4o"]),
        "euro": create_key(d, "euro", "euro", None, None),
        "swiss": create_key(d, "swiss", "swiss", None, None),
        "capped": create_key(d, "capped", "capped", None, None),
        "tiny": create_key(d, "tiny", "tiny", None, None),
        "outage": create_key(d, "outage", "outage", None, None),
        "acme-limited": create_key(d, "acme", "limited", None, None),
        "acme-ro": create_key(d, "acme", "dashboard", None, None, kind="read_only"),  # refused by the gateway
        "revoked": create_key(d, "acme", "revoked", None, None),
    }
    limited_id = tokens["acme-limited"].split("_")[2]
    (d / "budgets.yaml").write_text(
        yaml.safe_dump(
            {
                "budgets": budgets
                or [
                    {
                        "id": "tiny-daily",
                        "workspace": "tiny",
                        "key": None,
                        "unit": "tokens",
                        "window": "day",
                        "limit": 50,
                    },
                    {
                        "id": "outage-daily",
                        "workspace": "outage",
                        "key": None,
                        "unit": "usd",
                        "window": "day",
                        "limit": 1.0,
                    },
                    {
                        "id": "limited-key-monthly",
                        "workspace": "acme",
                        "key": limited_id,
                        "unit": "usd",
                        "window": "month",
                        "limit": 0.000001,
                    },
                ]
            }
        )
    )
    keys = yaml.safe_load((d / "keys.yaml").read_text())
    keys["keys"][-1]["revoked"] = True
    (d / "keys.yaml").write_text(yaml.safe_dump(keys))
    return tokens


class Gateway:
    """A running stack plus helpers to read what the simulator and the spool saw."""

    def __init__(self, stack: Stack, tokens: dict[str, str]) -> None:
        self.stack, self.tokens = stack, tokens
        self.url = stack.gateway
        self.sim_ports = {u.name: u.port for u in stack.cfg.upstreams}

    def base(self, workspace: str) -> str:
        return f"{self.url}/v1/{workspace}"

    def connect(self, timeout: float = 5):
        """A raw connection to the gateway listener (TLS-wrapped when it serves TLS), for exact bytes."""
        import socket

        raw = socket.create_connection(("127.0.0.1", self.stack.gateway_port), timeout=timeout)
        ctx = self.stack.client_ssl()
        return ctx.wrap_socket(raw, server_hostname="127.0.0.1") if ctx else raw

    def sim_requests(self, upstream: str = "openai-us") -> list[dict]:
        port = self.sim_ports[upstream]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sim/requests", timeout=5) as r:
            return [e for e in json.load(r) if e["port"] == port]

    def sim_request(self, marker: str, upstream: str = "openai-us") -> dict:
        """The one request the simulator got whose body carries ``marker`` (unique to the calling test).

        The session's gateway is shared, so "the simulator's last request" may be another test's;
        a test sends a marker of its own and reads back exactly the request its call made.
        """
        mine = [e for e in self.sim_requests(upstream) if marker in e["body"]]
        assert len(mine) == 1, f"{len(mine)} requests on {upstream} carry {marker!r}"
        return mine[0]

    def receipt(self, receipt_id: str, timeout: float = 10) -> dict:
        """The signed receipt, once the call's access-log entry has been settled."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.stack.extproc_admin}/receipts/{receipt_id}", timeout=5) as r:
                    if r.status == 200:
                        return json.load(r)
            except urllib.error.HTTPError as e:
                if e.code != 404 or time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                try:
                    with urllib.request.urlopen(f"{self.stack.extproc_admin}/receipts/{receipt_id}") as r:
                        state = r.read().decode()[:2000]
                except urllib.error.HTTPError as e:
                    state = f"HTTP {e.code}"
                logs = "".join(
                    (self.stack.run_dir / n).read_text()[-3000:]
                    for n in ("extproc.log", "extproc-1.log")
                    if (self.stack.run_dir / n).exists()
                )
                raise AssertionError(
                    f"receipt {receipt_id} not finalized within {timeout}s; spool says {state}\n{logs}"
                )
            time.sleep(0.05)

    def receipt_doc(self, receipt_id: str, timeout: float = 10) -> dict:
        """The receipt inside the signed envelope."""
        return envelope_receipt(self.receipt(receipt_id, timeout))

    def all_receipts(self) -> list[dict]:
        out, after = [], 0
        while True:
            with urllib.request.urlopen(f"{self.stack.extproc_admin}/receipts?after={after}&limit=1000") as r:
                batch = json.load(r)["receipts"]
            if not batch:
                return out
            out += batch
            after += len(batch)

    def public_key(self):
        with urllib.request.urlopen(f"{self.stack.extproc_admin}/signing-key") as r:
            return load_public_key(r.read())


def start_gateway(
    tmp: Path, budgets=None, extproc_args=(), workers: int = 1, transport: str = "extproc", **stack_args
) -> Gateway:
    tokens = write_config(tmp / "config", budgets)
    stack = Stack(
        tmp / "run",
        config_dir=tmp / "config",
        policy_dir=POLICY_DIR,
        extproc_args=list(extproc_args),
        unreachable={"openai-dead"},
        workers=workers,
        transport=transport,
        **stack_args,
    )
    stack.start()
    return Gateway(stack, tokens)


# Both transports Envoy can use to ask the policy service (relaygate/envoy/config.py TRANSPORTS):
# every test on the session gateway runs over each, so they answer every call alike.
TRANSPORTS = ("extproc", "authz-http")


@pytest.fixture(scope="session", params=TRANSPORTS)
def gw(request, tmp_path_factory) -> Gateway:
    g = start_gateway(tmp_path_factory.mktemp("gw"), transport=request.param)
    g.transport = request.param
    yield g
    g.stack.stop()


# -- control plane ---------------------------------------------------------------------


class ControlPlane:
    """A relaygate-controlplane process seeded from a test config directory."""

    def __init__(self, stack: Stack, tokens: dict[str, str]) -> None:
        from tests.cpclient import CP

        self.stack, self.tokens = stack, tokens
        self.url = stack.cp_url
        self.admin = CP(self.url, stack.admin_token)
        self.fleet = CP(self.url, stack.fleet_token)

    def client(self, name: str, header: str = "Authorization"):
        from tests.cpclient import CP

        return CP(self.url, self.tokens[name], header)

    def restart(self) -> None:
        self.stack.stop_one("controlplane")
        self.stack.start_controlplane()

    def stop(self) -> None:
        self.stack.stop()


def start_full_stack(tmp_path_factory, name: str, cp_args=(), **stack_args) -> tuple[Stack, dict[str, str]]:
    """A gateway driven by a control plane (bundles + xDS), as production runs it; one per module."""
    tmp = tmp_path_factory.mktemp(name)
    tokens = write_config(tmp / "config")
    stack = Stack(
        tmp / "run",
        config_dir=tmp / "config",
        policy_dir=POLICY_DIR,
        controlplane=True,
        unreachable={"openai-dead"},
        instance_id=f"{name}-sidecar",
        cp_extra_args=list(cp_args),
        **stack_args,
    )
    stack.start()
    return stack, tokens


def start_controlplane(tmp: Path, database_url: str = "", extra_args=(), env=None) -> ControlPlane:
    tokens = write_config(tmp / "config")
    stack = Stack(
        tmp / "run", config_dir=tmp / "config", policy_dir=POLICY_DIR, controlplane=True, database_url=database_url
    )
    stack.cp_extra_args, stack.cp_env = list(extra_args), dict(env or {})
    stack.start_controlplane()
    return ControlPlane(stack, tokens)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    """A real PostgreSQL server on loopback: the one `make test` started, else one of our own."""
    import os
    from devstack.postgres import Postgres

    url = os.environ.get("RELAYGATE_TEST_POSTGRES")
    if url:
        yield Postgres.attach(url)
        return
    pg = Postgres(tmp_path_factory.mktemp("pg"))
    pg.start()
    yield pg
    pg.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """Each storage test runs on SQLite and on PostgreSQL (a fresh database each time)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cp.db'}"
    pg = request.getfixturevalue("postgres")
    pg.reset_database()
    return pg.url
