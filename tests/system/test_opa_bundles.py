"""A stock OPA agent consumes relaygate's bundles (issue 16, item 3).

The pinned OPA runs with nothing but its documented configuration (``services``, ``bundles``
with long polling and ``signing``, ``keys``) pointed at the control plane's
``/v1/fleet/bundles/{tenant}``: it downloads the bundle, verifies its ES256 signature and every
file's digest, activates it, and then decides like the sidecar, for the same input, before and
after a policy change made through the REST API (which reaches OPA by long poll)."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
import requests
import yaml

from devstack import opa
from tests.conftest import start_full_stack

POLICY = """name: no-gpt-4o
description: gpt-4o is not approved for acme
rego: |
  package no_gpt_4o
  import rego.v1
  deny contains "gpt-4o is not approved for acme" if input.model == "gpt-4o"
"""


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    stack, tokens = start_full_stack(tmp_path_factory, "opa-bundles")
    yield stack, tokens
    stack.stop()


@pytest.fixture(scope="module")
def agent(full, tmp_path_factory):
    stack, _ = full
    key = requests.get(f"{stack.cp_url}/v1/fleet/bundle-key", verify=str(stack.ca), timeout=10).json()
    assert key["algorithm"] == "ES256"  # what a new control plane signs with: OPA verifies it
    config = {
        "services": {
            "relaygate": {
                "url": f"{stack.fleet_url}/v1/fleet",
                "credentials": {"bearer": {"token": stack.fleet_token}},
                "tls": {"ca_cert": str(stack.ca)},
            }
        },
        "bundles": {
            "relaygate": {
                "service": "relaygate",
                "resource": f"bundles/{stack.tenant}",
                "polling": {"min_delay_seconds": 1, "max_delay_seconds": 2, "long_polling_timeout_seconds": 20},
                "signing": {"keyid": "relaygate", "scope": "relaygate"},
            }
        },
        "keys": {"relaygate": {"algorithm": key["algorithm"], "key": key["public_key"]}},
    }
    d = tmp_path_factory.mktemp("opa-agent")
    (d / "config.yaml").write_text(yaml.safe_dump(config))
    server = opa.OpaServer(d / "opa.log", extra_args=("--config-file", str(d / "config.yaml"))).start()
    yield server
    server.stop()


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def _revision_served(stack) -> str:
    r = requests.get(
        f"{stack.fleet_url}/v1/fleet/bundles/{stack.tenant}",
        headers={"Authorization": f"Bearer {stack.fleet_token}"},
        verify=str(stack.ca),
        timeout=10,
    )
    assert r.status_code == 200
    return r.headers["ETag"].strip('"')


def _active_revision(agent) -> str | None:
    doc = _get(f"{agent.url}/v1/data/system/bundles/relaygate/manifest/revision")
    return doc.get("result")


def _until(fn, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout}s")


def _dry_run(stack, tokens, pid: str, model: str) -> dict:
    r = requests.post(
        f"{stack.cp_url}/v1/policies/{pid}/dryrun",
        headers={"Authorization": f"Bearer {tokens['acme']}"},
        json={"request": {"endpoint": "chat.completions", "body": {"model": model, "messages": []}}},
        verify=str(stack.ca),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()


def _opa_decides(agent, doc: dict) -> dict:
    """OPA's decision for a dry run's input, with the workspace policies' outcome OPA computes."""
    full = dict(doc, workspace_policies=_opa_workspace_outcome(agent, doc))
    return _opa_query(agent, "relaygate/gateway/decision", full)


def _opa_workspace_outcome(agent, doc: dict) -> dict:
    """What the sidecar's policy sandbox computes for the calling workspace, computed by OPA from
    the same bundle: each of the workspace's policies (data.workspace_policies) evaluated by its
    own module's ``deny``, as relaygate/decision/policy_sandbox.py does."""
    meta = _get(f"{agent.url}/v1/data/workspace_policies").get("result") or {}
    mine = [(pid, m) for pid, m in sorted(meta.items()) if m["workspace"] == doc["workspace"]["id"]]
    denials = []
    for pid, m in mine:
        reasons = _opa_query(agent, f"relaygate/custom/{pid}/deny", doc) or []
        denials += [{"policy": m["ref"], "status": m["status"], "code": m["code"], "reason": r} for r in reasons]
    return {"denials": denials, "cited": [m["ref"] for _, m in mine]}


def _opa_query(agent, path: str, doc: dict):
    req = urllib.request.Request(
        f"{agent.url}/v1/data/{path}",
        data=json.dumps({"input": doc}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r).get("result")


def test_opa_verifies_and_activates_the_bundle_and_decides_like_the_sidecar(full, agent):
    stack, tokens = full
    served = _revision_served(stack)
    _until(lambda: _active_revision(agent) == served, "OPA activating the control plane's bundle")
    assert (
        urllib.request.urlopen(f"{agent.url}/health?bundles=true", timeout=5).status == 200
    )  # OPA's own readiness: every configured bundle activated
    for model in ("gpt-4o-mini", "gpt-4o", "gpt-9"):
        dry = _dry_run(stack, tokens, "relaygate.scope", model)
        assert _opa_decides(agent, dry["input"]) == dry["decision"], model

    # A policy change through the REST API reaches the sidecar and OPA alike.
    acme = {"Authorization": f"Bearer {tokens['acme']}", "Content-Type": "application/yaml"}
    r = requests.post(f"{stack.cp_url}/v1/policies", data=POLICY, headers=acme, verify=str(stack.ca), timeout=10)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    changed = _until(lambda: (rev := _revision_served(stack)) != served and rev, "a new bundle revision")
    _until(lambda: _active_revision(agent) == changed, "OPA activating the changed bundle (long poll)", 30)
    blocked = _dry_run(stack, tokens, pid, "gpt-4o")
    assert blocked["decision"]["code"] == "policy.blocked"
    assert _opa_decides(agent, blocked["input"]) == blocked["decision"]
    allowed = _dry_run(stack, tokens, pid, "gpt-4o-mini")
    assert allowed["decision"]["allow"] and _opa_decides(agent, allowed["input"]) == allowed["decision"]


def test_opa_refuses_a_bundle_signed_by_another_key(full, tmp_path):
    """The agent's pinned key is what makes the bundle trusted: with another key it activates
    nothing (and says why in its log)."""
    from relaygate.contract.bundle import BundleSigner

    stack, _ = full
    other = BundleSigner.generate()
    config = {
        "services": {
            "relaygate": {
                "url": f"{stack.fleet_url}/v1/fleet",
                "credentials": {"bearer": {"token": stack.fleet_token}},
                "tls": {"ca_cert": str(stack.ca)},
            }
        },
        "bundles": {
            "relaygate": {
                "service": "relaygate",
                "resource": f"bundles/{stack.tenant}",
                "polling": {"min_delay_seconds": 1, "max_delay_seconds": 1},
                "signing": {"keyid": "relaygate", "scope": "relaygate"},
            }
        },
        "keys": {"relaygate": {"algorithm": "ES256", "key": other.public_pem().decode()}},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    server = opa.OpaServer(
        tmp_path / "opa.log", extra_args=("--config-file", str(tmp_path / "config.yaml"), "--log-level", "info")
    )
    server.start()
    try:
        _until(
            lambda: "verification" in server.log.read_text() or "signature" in server.log.read_text(), "OPA's refusal"
        )
        assert _active_revision(server) is None
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{server.url}/health?bundles=true", timeout=5)
    finally:
        server.stop()
