"""The policy author's workflow against a real control plane and gateway (issue 16, item 6), with
the ``relaygate`` command as a platform team runs it: push a workspace policy, push a stricter
version staged (not enforced), diff it against the workspace's recent calls (which decisions
would change), then push it active and see the gateway enforce it."""

from __future__ import annotations

import os
import subprocess
import sys

import openai
import pytest

from tests.conftest import ControlPlane, Gateway, start_full_stack
from tests.cpclient import eventually

ALLOW_ALL = """name: model-gate
rego: |
  package anything
  import rego.v1
  deny contains "blocked" if input.model in policy_data.blocked
data:
  blocked: []
tests:
  - input: {model: gpt-4o}
    allow: true
"""
STRICT = ALLOW_ALL.replace("blocked: []", "blocked: [gpt-4o]").replace(
    "  - input: {model: gpt-4o}\n    allow: true", '  - input: {model: gpt-4o}\n    deny: ["blocked"]'
)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    stack, tokens = start_full_stack(tmp_path_factory, "policy-workflow")
    yield Gateway(stack, tokens)
    stack.stop()


def _relaygate(gw, *args, token=None):
    env = dict(
        os.environ,
        RELAYGATE_CONTROL_PLANE=gw.stack.cp_url,
        RELAYGATE_CA=str(gw.stack.ca),
        RELAYGATE_TOKEN=token or gw.tokens["acme"],
    )
    return subprocess.run(
        [sys.executable, "-m", "relaygate.cli.main", "policy", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _call(gw, model: str) -> str:
    client = openai.OpenAI(
        api_key=gw.tokens["acme"],
        base_url=gw.base("acme"),
        http_client=openai.DefaultHttpxClient(verify=gw.stack.client_ssl(), trust_env=False),
        max_retries=0,
    )
    try:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=5)
        return "ok"
    except openai.APIStatusError as e:
        return e.response.json()["error"]["code"]


def _until_enforced(gw, model: str, code: str) -> None:
    import time

    deadline = time.monotonic() + 20
    while _call(gw, model) != code:  # the sidecar's bundle long poll brings the change
        assert time.monotonic() < deadline, f"{model} not {code} within 20s"
        time.sleep(0.2)


def test_push_stage_diff_then_activate(full, tmp_path):
    gw = full
    (tmp_path / "allow.yaml").write_text(ALLOW_ALL)
    (tmp_path / "strict.yaml").write_text(STRICT)
    pushed = _relaygate(gw, "push", str(tmp_path / "allow.yaml"))
    assert pushed.returncode == 0, pushed.stderr
    pid = pushed.stdout.split()[0]
    assert pid.startswith("pol_") and "active" in pushed.stdout

    for model in ("gpt-4o", "gpt-4o-mini", "gpt-4o"):
        assert _call(gw, model) == "ok"
    # The sidecar ships receipts to the control plane in the background; the diff replays what the
    # control plane holds, so it runs once these three calls are there (as an author would wait).
    acme = ControlPlane(gw.stack, gw.tokens).client("acme")

    def shipped() -> list[str]:
        return [e["model"] for e in acme.get("/v1/audit/events", params={"kind": "gateway.call"}).json()["events"]]

    eventually(
        lambda: sorted(shipped()) == ["gpt-4o", "gpt-4o", "gpt-4o-mini"],
        20,
        "the three calls' receipts at the control plane",
    )

    staged = _relaygate(gw, "push", str(tmp_path / "strict.yaml"), "--policy", pid, "--staged")
    assert staged.returncode == 0, staged.stderr
    assert "version 2 pushed, staged (not enforced) (enforced: version 1)" in staged.stdout, staged.stdout
    assert _call(gw, "gpt-4o") == "ok"  # staged: still not enforced

    diff = _relaygate(gw, "diff", "--policy", pid, "--last", "20")
    assert diff.returncode == 0, diff.stderr
    flips = [line for line in diff.stdout.splitlines() if "->" in line]
    assert flips and all("gpt-4o:" in line and "allow/ok -> deny/policy.blocked" in line for line in flips), diff.stdout
    assert not any("gpt-4o-mini" in line for line in flips)
    assert f"{len(flips)} of the last 20 calls would be decided differently" in diff.stdout

    active = _relaygate(gw, "push", str(tmp_path / "strict.yaml"), "--policy", pid)
    assert active.returncode == 0, active.stderr
    _until_enforced(gw, "gpt-4o", "policy.blocked")
    assert _call(gw, "gpt-4o-mini") == "ok"


def test_push_refuses_a_document_whose_tests_fail_and_names_why(full, tmp_path):
    f = tmp_path / "wrong.yaml"
    f.write_text(STRICT.replace('deny: ["blocked"]', "allow: true"))  # the test contradicts the policy
    r = _relaygate(full, "push", str(f))
    assert r.returncode == 1 and "FAIL" in r.stderr and "not pushed" in r.stderr, r.stderr


def test_a_key_of_another_workspace_cannot_diff_or_push_to_this_ones_policy(full, tmp_path):
    f = tmp_path / "allow.yaml"
    f.write_text(ALLOW_ALL.replace("name: model-gate", "name: acme-only"))
    pushed = _relaygate(full, "push", str(f))
    assert pushed.returncode == 0, pushed.stderr
    pid = pushed.stdout.split()[0]
    for args in (("diff", "--policy", pid), ("push", str(f), "--policy", pid, "--staged")):
        r = _relaygate(full, *args, token=full.tokens["euro"])
        assert r.returncode == 2 and "404" in r.stderr, (args, r.stdout, r.stderr)
