"""The control-plane ⇄ sidecar contract is versioned (issue 12, item 2).

Every bundle names the contract version it speaks. A sidecar that does not
implement that version (a control plane upgraded past it, or one too old)
refuses the bundle instead of silently dropping what it does not understand,
keeps enforcing its last good bundle, and says why in its posture. Checked
with the real control plane of the next contract version (the same code with
the constant raised, as the next release would ship it) against a real
sidecar and Envoy.
"""

from __future__ import annotations

import pytest

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relaygate.evidence.signing import signer_for
from relaygate.contract import bundle
from tests.conftest import ControlPlane, start_full_stack
from tests.cpclient import eventually
from tests.httpcall import chat_body, curl

NO_4O = (
    "name: no-4o\nrego: |\n  package no_4o\n  import rego.v1\n"
    '  deny contains "gpt-4o blocked" if input.model == "gpt-4o"\n'
)


def _bundle(contract: int) -> bytes:
    signer = signer_for(Ed25519PrivateKey.generate())
    blob, _ = bundle.build(
        modules={}, data={}, config={}, secrets={}, fleet_token="t", signer=signer, contract=contract
    )
    return blob, signer


@pytest.mark.parametrize(
    "contract,advice",
    [
        (bundle.CONTRACT_VERSION + 1, "upgrade the sidecar"),
        (bundle.MIN_CONTRACT_VERSION - 1, "upgrade the control plane"),
    ],
)
def test_a_bundle_of_another_contract_version_is_refused_with_the_reason(contract, advice):
    blob, signer = _bundle(contract)
    with pytest.raises(bundle.BundleError) as e:
        bundle.read(blob, verify_key=signer.private_key.public_key(), fleet_token="t")
    assert f"contract version {contract}" in str(e.value) and advice in str(e.value)


def test_bundles_declare_the_contract_and_unversioned_ones_are_version_1():
    blob, signer = _bundle(None)
    b = bundle.read(blob, verify_key=signer.private_key.public_key(), fleet_token="t")
    assert b.manifest["metadata"][bundle.CONTRACT_KEY] == bundle.CONTRACT_VERSION
    assert bundle.contract_of({"revision": "r", "metadata": {}}) == 1
    assert bundle.contract_of({"revision": "r"}) == 1
    for bad in ("2", 1.5, True, None):
        with pytest.raises(bundle.BundleError):
            bundle.contract_of({"metadata": {bundle.CONTRACT_KEY: bad}})


def _metric(stack, name: str) -> float:
    import urllib.request

    with urllib.request.urlopen(stack.extproc_admin + "/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_a_sidecar_keeps_its_last_good_bundle_when_the_control_plane_speaks_a_newer_contract(
    tmp_path_factory, tmp_path
):
    stack, tokens = start_full_stack(tmp_path_factory, "contract")
    try:
        cp = ControlPlane(stack, tokens)

        def call():
            return curl(
                stack.gateway + "/v1/acme/chat/completions",
                chat_body("gpt-4o"),
                {"authorization": f"Bearer {tokens['acme']}", "content-type": "application/json"},
            )

        assert call().status == 200
        refused_before = _metric(stack, 'relaygate_policy_bundle_errors_total{reason="rejected"}')

        # The next release's control plane: the same code, its contract version raised by one.
        hook = tmp_path / "next"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text("import relaygate.contract.bundle as b\nb.CONTRACT_VERSION += 1\n")
        stack.stop_one("controlplane")
        stack.cp_env = {"PYTHONPATH": str(hook)}
        stack.start_controlplane()
        made = cp.client("acme").post("/v1/policies", yaml=NO_4O)
        assert made.status == 201, made.text
        eventually(
            lambda: _metric(stack, 'relaygate_policy_bundle_errors_total{reason="rejected"}') > refused_before,
            45,
            "the sidecar refusing the newer contract's bundle",
        )

        def posture():
            inst = [i for i in cp.admin.get("/v1/fleet/instances").json()["instances"] if i["id"] == stack.instance_id]
            return inst and inst[0]["posture"]

        p = eventually(
            lambda: (p := posture()) and "contract version" in (p.get("bundle_error") or "") and p,
            45,
            "the refusal in the sidecar's posture",
        )
        assert f"contract version {bundle.CONTRACT_VERSION + 1}" in p["bundle_error"]
        assert "upgrade the sidecar" in p["bundle_error"]
        assert p["contract_versions"] == [bundle.MIN_CONTRACT_VERSION, bundle.CONTRACT_VERSION]
        log = (stack.run_dir / "extproc.log").read_text()
        assert "new bundle rejected, keeping" in log
        assert call().status == 200  # still enforcing the last good bundle, which lacks the policy

        # Back on this contract: the same change arrives (so the version, not timing, kept it out).
        stack.stop_one("controlplane")
        stack.cp_env = {}
        stack.start_controlplane()
        eventually(lambda: call().status == 403, 45, "the policy arriving from a control plane of this contract")
    finally:
        stack.stop()
