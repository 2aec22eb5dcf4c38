"""Unit tests of the pieces both services share: the signed bundle format and workspace policies."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import tarfile

import pytest

from relaygate.evidence.signing import load_or_create_signer
from relaygate.contract import bundle
from relaygate.contract import config as config_mod
from relaygate.decision.ledger import InMemoryLedger
from relaygate.decision.policy_sandbox import PolicySandbox, WorkspacePolicies
from relaygate.decision.snapshot import admission_from_bundle, local_sources
from relaygate.decision.wire import parse_body
from relaygate.decision.workspace_policy import (
    ActivePolicy,
    PolicyDocumentError,
    check_rego,
    parse_document,
    policy_modules,
)
from tests.conftest import POLICY_DIR, write_config

DOC = """name: blocklist
effect: {status: 451, code: policy.user_blocked}
rego: |
  package p
  import rego.v1
  deny contains msg if {
    input.user in policy_data.blocked
    msg := sprintf("user %s is blocked", [input.user])
  }
data:
  blocked: [mallory]
"""


def _signers(tmp_path):
    return load_or_create_signer(tmp_path / "a.pem"), load_or_create_signer(tmp_path / "b.pem")


def _build(tmp_path, signer, token="fleet"):
    if not (tmp_path / "cfg").exists():
        write_config(tmp_path / "cfg")
    docs, sec = config_mod.read_documents(tmp_path / "cfg")
    modules, data = local_sources(POLICY_DIR)
    return bundle.build(modules=modules, data=data, config=docs, secrets=sec, fleet_token=token, signer=signer), docs


def test_bundle_round_trip_is_deterministic_and_loads_as_a_gateway_snapshot(tmp_path):
    signer, _ = _signers(tmp_path)
    (blob, rev), docs = _build(tmp_path, signer)
    (blob2, rev2), _ = _build(tmp_path, signer)
    assert rev == rev2  # same state, same revision (the ETag)
    b = bundle.read(blob, verify_key=signer.public_key, fleet_token="fleet")
    assert b.revision == rev and b.config == docs and "relaygate/gateway.rego" in b.modules
    adm = admission_from_bundle(b, InMemoryLedger())
    assert adm.revision == rev and "acme" in adm.config.workspaces
    assert b"sk-test-openai" not in gzip.decompress(blob)  # secrets are sealed
    with tarfile.open(fileobj=io.BytesIO(blob)) as t:
        names = {m.name.lstrip("/") for m in t}
    assert {".manifest", ".signatures.json", "data.json", bundle.CONFIG_PATH, bundle.SECRETS_PATH} <= names


def test_bundle_refuses_other_keys_tampering_and_wrong_fleet_token(tmp_path):
    signer, other = _signers(tmp_path)
    (blob, _), _ = _build(tmp_path, signer)
    with pytest.raises(bundle.BundleError, match="does not verify"):
        bundle.read(blob, verify_key=other.public_key, fleet_token="fleet")
    with pytest.raises(bundle.BundleError, match="fleet token"):
        bundle.read(blob, verify_key=signer.public_key, fleet_token="not-the-token")
    raw = io.BytesIO(gzip.decompress(blob))
    out = io.BytesIO()
    with tarfile.open(fileobj=raw) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for m in src:
            data = src.extractfile(m).read()
            if m.name.endswith("scope.rego"):
                data = data.replace(b"not input.endpoint", b"false; not input.endpoint")
                m.size = len(data)
            dst.addfile(m, io.BytesIO(data))
    with pytest.raises(bundle.BundleError, match="scope.rego does not match its signed digest"):
        bundle.read(gzip.compress(out.getvalue()), verify_key=signer.public_key, fleet_token="fleet")
    with pytest.raises(bundle.BundleError, match="not a tar.gz"):
        bundle.read(b"garbage", verify_key=signer.public_key, fleet_token="fleet")


def test_workspace_policy_compiles_and_only_applies_to_its_workspace():
    """Workspace policies run in the policy sandbox, each alone with its own data (relaygate/decision/policy_sandbox.py)."""
    doc = parse_document(DOC)
    check_rego("pol_a", doc)
    wp = WorkspacePolicies.from_active([ActivePolicy("acme", "pol_a", 3, doc)])
    sandbox = PolicySandbox(workers=1, timeout=5.0)

    async def denials(pairs):
        try:
            return [
                (await sandbox.evaluate(wp, ws, json.dumps({"user": user, "workspace": {"id": ws}})))["denials"]
                for ws, user in pairs
            ]
        finally:
            await sandbox.close()

    got = asyncio.run(denials([("acme", "mallory"), ("acme", "bob"), ("euro", "mallory")]))
    assert got[0] == [
        {"policy": "pol_a@3", "status": 451, "code": "policy.user_blocked", "reason": "user mallory is blocked"}
    ]
    assert got[1] == [] and got[2] == []


def test_policy_user_comes_from_openai_user_or_anthropic_metadata():
    assert parse_body("chat.completions", b'{"model": "m", "user": "u1"}', 10).user == "u1"
    assert parse_body("messages", b'{"model": "m", "max_tokens": 5, "metadata": {"user_id": "u2"}}', 10).user == "u2"
    assert parse_body("chat.completions", b'{"model": "m", "user": 5}', 10).user is None


@pytest.mark.parametrize(
    "text,message",
    [
        ("rego: x", "'name'"),
        ("name: x\nrego: ''", "'rego'"),
        ("name: x\ndata: [1]\nrego: |\n  package p\n", "'data' must be a mapping"),
        ("name: x\neffect: {code: 'Not Valid'}\nrego: |\n  package p\n", "effect.code"),
        ("- a list", "mapping"),
    ],
)
def test_policy_document_errors(text, message):
    with pytest.raises(PolicyDocumentError, match=message):
        check_rego("pol_x", parse_document(text))


CONFLICT = """name: conflicting
rego: |
  package p
  import rego.v1
  level := 1 if input.model != ""
  level := 2 if input.model != ""
  deny contains "never" if level == 3
"""


def test_a_workspace_policy_with_a_runtime_conflict_fails_closed(tmp_path):
    """regorus' RVM would pick a value; workspace policies run in the sandbox's interpreter, which errors."""
    signer, _ = _signers(tmp_path)
    write_config(tmp_path / "cfg")
    docs, sec = config_mod.read_documents(tmp_path / "cfg")
    modules, data = local_sources(POLICY_DIR)
    extra, pdata = policy_modules([ActivePolicy("acme", "pol_c", 1, parse_document(CONFLICT))])
    data["workspace_policies"] = pdata
    blob, _ = bundle.build(
        modules={**modules, **extra}, data=data, config=docs, secrets=sec, fleet_token="t", signer=signer
    )
    sandbox = PolicySandbox(workers=1, timeout=5.0)
    adm = admission_from_bundle(
        bundle.read(blob, verify_key=signer.public_key, fleet_token="t"), InMemoryLedger(), sandbox=sandbox
    )
    key = next(k for k in adm.config.keys.values() if k.workspace == "acme" and not k.revoked)
    shape = parse_body("chat.completions", b'{"model": "gpt-4o-mini", "messages": []}', 16)

    async def decide():
        try:
            return await adm.decide_async(key, "chat.completions", shape)
        finally:
            await sandbox.close()

    v = asyncio.run(decide())
    assert not v.allow and v.status == 500 and v.code == "policy.error" and "conflicts" in v.message
