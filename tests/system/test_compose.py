"""compose/: the whole stack as a compose file, checked by the real tools and against the code.

check-jsonschema with the compose-spec schema and `docker-compose config -q` must accept it (and
refuse a broken copy, so the checks are not hollow); every relaygate container runs hardened;
no secret is a plain environment value; every variable it sets is one the code reads; the seed
config loads as the control plane will load it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from relaygate.contract import config as config_mod

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose" / "compose.yaml"
BIN = Path(sys.executable).parent
RELAYGATE_SERVICES = ("controlplane", "gateway", "gateway-policy", "provider-sim")
SECRET_NAMES = re.compile(r"(TOKEN|MASTER_KEY|PEPPER|PASSWORD|SECRET_|DATABASE_URL|LEDGER_URL)")


def docker_compose() -> str:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose (Debian package docker-compose) is installed by make test"
    return exe


@pytest.fixture(scope="module")
def secrets_written():
    """compose/init-secrets, as an operator runs it first (idempotent: existing files are kept)."""
    subprocess.run([sys.executable, str(ROOT / "compose" / "init-secrets")], check=True, capture_output=True)


@pytest.fixture(scope="module")
def resolved(secrets_written) -> dict:
    """The file as docker-compose resolves it (anchors merged, paths absolute)."""
    out = subprocess.run(
        [docker_compose(), "-f", str(COMPOSE), "config"], check=True, capture_output=True, text=True
    ).stdout
    return yaml.safe_load(out)


def _volume(v) -> dict:
    """A service volume as {source, target}: docker-compose 1.x resolves the short syntax to a string."""
    if isinstance(v, dict):
        return v
    source, target = str(v).split(":")[:2]
    return {"source": source, "target": target}


def _check_jsonschema(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
    )


def _compose_config(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([docker_compose(), "-f", str(path), "config", "-q"], capture_output=True, text=True)


def test_the_compose_file_is_valid_for_the_compose_spec_schema_and_docker_compose(secrets_written, tmp_path):
    ok = _check_jsonschema(COMPOSE)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    ok = _compose_config(COMPOSE)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # The same tools refuse a broken copy: a misspelt service key and a healthcheck of the wrong type.
    doc = yaml.safe_load(COMPOSE.read_text())
    doc["services"]["controlplane"]["healthchek"] = doc["services"]["controlplane"].pop("healthcheck")
    doc["services"]["gateway"]["healthcheck"] = "curl localhost"
    broken = tmp_path / "compose" / "compose.yaml"
    broken.parent.mkdir()
    broken.write_text(yaml.safe_dump(doc))
    for d in ("config", "secrets"):
        (broken.parent / d).symlink_to(ROOT / "compose" / d)
    (broken.parent / "prometheus.yml").symlink_to(ROOT / "compose" / "prometheus.yml")
    assert _check_jsonschema(broken).returncode != 0
    assert _compose_config(broken).returncode != 0


def test_every_relaygate_container_runs_hardened_with_a_healthcheck(resolved):
    services = resolved["services"]
    for name in RELAYGATE_SERVICES:
        s = services[name]
        assert s.get("read_only") is True, name
        assert s.get("user") == "10001:10001", name
        assert s.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in s.get("security_opt", []), name
        assert s.get("healthcheck", {}).get("test"), name
    for name in ("postgres", "redis", "prometheus"):
        assert services[name].get("healthcheck", {}).get("test"), name
    # Published ports only on loopback: the stack is reached through a proxy or a mesh, not directly.
    for name, s in services.items():
        for p in s.get("ports", []):
            host_ip = p.get("host_ip") if isinstance(p, dict) else str(p).split(":")[0]
            assert host_ip == "127.0.0.1", (name, p)


def test_the_gateway_is_a_sidecar_pair_sharing_a_network_namespace_and_a_socket_volume(resolved):
    services = resolved["services"]
    policy, envoy = services["gateway-policy"], services["gateway"]
    assert policy["network_mode"] == "service:gateway"
    mounts = lambda s: {_volume(v)["target"]: _volume(v) for v in s["volumes"]}  # noqa: E731
    assert "/run/relaygate" in mounts(policy) and "/run/relaygate" in mounts(envoy)
    env = policy["environment"]
    assert env["RELAYGATE_AUTHZ_LISTEN"].startswith("unix:/run/relaygate/")
    assert env["RELAYGATE_EXTPROC_LISTEN"].startswith("unix:/run/relaygate/")
    # the spool is a named volume: a restarted container finds the receipts it had not shipped
    assert "/var/lib/relaygate" in mounts(policy)
    assert "gateway-data" in resolved["volumes"]
    # the bundle-signing public key reaches the sidecar read-only, and only that volume of the control plane
    assert env["RELAYGATE_CONTROL_PLANE_KEY"].startswith("/var/lib/relaygate-trust/")
    assert (
        services["controlplane"]["environment"]["RELAYGATE_CP_BUNDLE_PUBLIC_KEY"] == env["RELAYGATE_CONTROL_PLANE_KEY"]
    )
    cp_data = mounts(services["controlplane"])["/var/lib/relaygate-cp"]["source"]
    assert not any(v["source"] == cp_data for v in mounts(policy).values())


def test_no_secret_is_a_plain_environment_value_and_every_secret_file_exists(resolved):
    for name, s in resolved["services"].items():
        for var, value in (s.get("environment") or {}).items():
            if SECRET_NAMES.search(var) and var != "POSTGRES_USER":
                assert var.endswith("_FILE") and str(value).startswith("/run/secrets/"), (name, var)
            assert "rg_admin_" not in str(value) and "rg_fleet_" not in str(value), (name, var)
    for secret in resolved["secrets"].values():
        f = Path(secret["file"])
        assert f.is_file() and f.stat().st_mode & 0o077 in (0, 0o044), f
        assert f.parent.stat().st_mode & 0o077 == 0, "compose/secrets/ must be 0700"


def test_every_variable_the_compose_file_sets_is_one_relaygate_reads(resolved):
    source = "\n".join(p.read_text() for p in (ROOT / "relaygate").rglob("*.py"))
    source += (ROOT / "deploy" / "images" / "probe.py").read_text()  # the images' HEALTHCHECK
    settings = (ROOT / "relaygate" / "controlplane" / "settings.py").read_text()
    for name in RELAYGATE_SERVICES:
        for var in resolved["services"][name].get("environment") or {}:
            base = var[: -len("_FILE")] if var.endswith("_FILE") else var
            if base.startswith("RELAYGATE_CP_"):  # settings.py: every option as RELAYGATE_CP_<OPTION>
                option = base[len("RELAYGATE_CP_") :].lower()
                assert f'"{option}"' in settings, f"{name}: {var} names no control-plane option"
            elif base.startswith("RELAYGATE_SECRET_"):
                continue  # provider credentials by name (relaygate/contract/config.py _secret)
            else:
                assert f'"{base}"' in source, f"{name}: relaygate reads no {base}"


def test_the_seed_config_loads_and_its_upstreams_are_services_of_the_file(resolved, monkeypatch):
    env = {"RELAYGATE_KEY_PEPPER": "p", "RELAYGATE_SECRET_OPENAI": "a", "RELAYGATE_SECRET_ANTHROPIC": "b"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    cfg = config_mod.load(ROOT / "compose" / "config")
    assert cfg.upstreams
    for u in cfg.upstreams:
        assert u.host in resolved["services"], f"upstream {u.name} points at {u.host}, not a compose service"
    assert cfg.keys == {} or not cfg.keys, "the committed seed holds no keys"


def test_the_control_plane_runs_on_file_secrets_and_shares_only_its_public_key(tmp_path):
    """What the compose file relies on, in a real control-plane process: tokens and the master key
    from NAME_FILE, and the bundle-signing public key written where the sidecars' volume is."""
    from tests.conftest import start_controlplane
    from tests.cpclient import CP

    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    values = {"admin-token": "rg_admin_from_a_file", "fleet-token": "rg_fleet_from_a_file"}
    values["master-key"] = "a2V5LWtleS1rZXkta2V5LWtleS1rZXkta2V5LWtleS0="  # base64 of 32 bytes
    for name, value in values.items():
        (secrets / name).write_text(value + "\n")
    trust = tmp_path / "trust" / "bundle-signing.pub"
    env = {
        "RELAYGATE_ADMIN_TOKEN": "",  # the test stack sets these; empty, the files decide
        "RELAYGATE_FLEET_TOKEN": "",
        "RELAYGATE_ADMIN_TOKEN_FILE": str(secrets / "admin-token"),
        "RELAYGATE_FLEET_TOKEN_FILE": str(secrets / "fleet-token"),
        "RELAYGATE_MASTER_KEY_FILE": str(secrets / "master-key"),
    }
    cp = start_controlplane(tmp_path / "cp", extra_args=["--bundle-public-key", str(trust)], env=env)
    try:
        assert CP(cp.url, "rg_admin_from_a_file").get("/v1/upstreams").status == 200
        assert CP(cp.url, cp.stack.admin_token).get("/v1/upstreams").status == 401
        data_dir = cp.stack.cp_data
        assert trust.read_bytes() == (data_dir / "bundle-signing.pub").read_bytes()
        assert trust.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
        assert trust.stat().st_mode & 0o777 == 0o644  # public, readable by the sidecars' user
        # nothing was generated: the files were the secrets
        assert not any((data_dir / n).exists() for n in ("admin-token", "fleet-token", "master.key"))
    finally:
        cp.stop()
