"""relaygate-keys: create and revoke client API keys in a config directory's keys.yaml, and print
a key's AWS SigV4 pair for Bedrock clients.

The full key is printed once and never stored; keys.yaml keeps only the key
id, salt and peppered hash. Until the control plane distributes keys, restart
relaygate-extproc after a change.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from relaygate.contract import config as config_mod
from relaygate.contract import keys as keyfmt
from relaygate.contract import scope as key_scope
from relaygate.contract import sigv4


def _load(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text()) if path.exists() else None
    return doc or {"keys": []}


def _save(path: Path, doc: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    os.replace(tmp, path)


def create(
    config_dir: Path,
    workspace: str,
    name: str,
    endpoints: list[str] | None,
    models: list[str] | None,
    kind: str = "standard",
    permissions: list[str] | None = None,
) -> str:
    """Add a key; a standard key lists every permission ('*', so it may call the gateway) by default."""
    workspaces = (yaml.safe_load((config_dir / "workspaces.yaml").read_text()) or {}).get("workspaces") or {}
    if workspace not in workspaces:
        raise SystemExit(f"unknown workspace '{workspace}' (see {config_dir / 'workspaces.yaml'})")
    bad = set(endpoints or ()) - set(config_mod.ENDPOINTS)
    if bad:
        raise SystemExit(f"unknown endpoints {sorted(bad)}; choose from {config_mod.ENDPOINTS}")
    if kind not in key_scope.KINDS:
        raise SystemExit(f"unknown kind '{kind}'; choose from {key_scope.KINDS}")
    bad = set(permissions or ()) - set(key_scope.WORKSPACE_PERMISSIONS) - {"*"}
    if bad:
        raise SystemExit(f"unknown permissions {sorted(bad)}; choose from {key_scope.WORKSPACE_PERMISSIONS}")
    try:
        pepper = config_mod.load_pepper(config_dir)
    except config_mod.ConfigError as e:
        raise SystemExit(str(e)) from None
    token, record = keyfmt.new_key(pepper)
    perms = list(key_scope.READ_ONLY_PERMISSIONS) if kind == "read_only" else permissions or ["*"]
    record = {
        "id": record["id"],
        "workspace": workspace,
        "name": name,
        "kind": kind,
        "salt": record["salt"],
        "hash": record["hash"],
        "scope": {
            "endpoints": endpoints or list(config_mod.ENDPOINTS),
            "models": models or ["*"],
            "permissions": perms,
        },
    }
    path = config_dir / "keys.yaml"
    doc = _load(path)
    doc.setdefault("keys", []).append(record)
    _save(path, doc)
    return token


def revoke(config_dir: Path, key_id: str) -> None:
    path = config_dir / "keys.yaml"
    doc = _load(path)
    for k in doc.get("keys") or []:
        if k.get("id") == key_id:
            k["revoked"] = True
            _save(path, doc)
            return
    raise SystemExit(f"no key with id '{key_id}' in {path}")


def aws_credentials(config_dir: Path, key_id: str) -> tuple[str, str]:
    """A key's AWS SigV4 pair for Bedrock clients (access key id, secret access key): derived from
    the key's id and salt with the pepper, stored nowhere (relaygate/contract/sigv4.py)."""
    path = config_dir / "keys.yaml"
    key = next((k for k in _load(path).get("keys") or [] if k.get("id") == key_id), None)
    if key is None:
        raise SystemExit(f"no key with id '{key_id}' in {path}")
    if key.get("revoked"):
        raise SystemExit(f"key '{key_id}' is revoked: its AWS pair no longer works")
    try:
        pepper = config_mod.load_pepper(config_dir)
    except config_mod.ConfigError as e:
        raise SystemExit(str(e)) from None
    return sigv4.access_key_id(key_id), sigv4.client_secret(pepper, key_id, key["salt"])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="relaygate-keys", description=__doc__.split("\n\n")[0])
    p.add_argument("--config-dir", default=os.environ.get("RELAYGATE_CONFIG_DIR", "config"))
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create", help="create a key and print it once")
    c.add_argument("--workspace", required=True)
    c.add_argument("--name", default="")
    c.add_argument("--endpoint", action="append", help="allowed endpoint (repeatable; default all)")
    c.add_argument("--model", action="append", help="allowed model or glob such as 'gpt-4o*' (default all)")
    c.add_argument(
        "--kind",
        default="standard",
        choices=key_scope.KINDS,
        help="read_only: dashboards only, refused by the gateway (default standard)",
    )
    c.add_argument(
        "--permission", action="append", help="permission (repeatable; default '*'); the gateway needs gateway:call"
    )
    r = sub.add_parser("revoke", help="mark a key revoked")
    r.add_argument("key_id")
    w = sub.add_parser(
        "aws-credentials", help="print a key's AWS SigV4 pair for Bedrock clients (as AWS_* environment lines)"
    )
    w.add_argument("key_id")
    a = p.parse_args(argv)
    d = Path(a.config_dir)
    if a.cmd == "create":
        print(create(d, a.workspace, a.name, a.endpoint, a.model, a.kind, a.permission))
    elif a.cmd == "aws-credentials":
        akid, secret = aws_credentials(d, a.key_id)
        print(f"AWS_ACCESS_KEY_ID={akid}\nAWS_SECRET_ACCESS_KEY={secret}")
    else:
        revoke(d, a.key_id)
        print(f"revoked {a.key_id}", file=sys.stderr)


if __name__ == "__main__":
    main()
