"""The committed Envoy bootstrap and the `make run` tour stay true to the code."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from relaygate.contract import config as config_mod
from relaygate.envoy import config as envoy_config
from devstack.processes import ROOT, free_port


def test_committed_bootstrap_matches_rendering():
    rendered = envoy_config.render(
        config_mod.load(ROOT / "config"),
        listen_port=8080,
        admin_port=9901,
        extproc=["unix:var/extproc.sock"],
        authz=["unix:var/authz.sock"],
    )
    committed = json.loads((ROOT / "envoy" / "gateway.json").read_text())
    assert committed == rendered, "regenerate: python -m relaygate.envoy.config --out envoy/gateway.json"


def test_committed_xds_bootstrap_matches_rendering():
    tls, ads_tls = envoy_config.reference_tls()
    rendered = envoy_config.render_xds_bootstrap(
        node_id="gw-1",
        tenant="default",
        zone="local",
        listen="0.0.0.0:8080",
        admin_port=9901,
        ads_address="127.0.0.1:18000",
        tls=tls,
        ads_tls=ads_tls,
    )
    committed = json.loads((ROOT / "envoy" / "bootstrap-xds.json").read_text())
    assert committed == rendered, "regenerate: python -m relaygate.envoy.config --xds --out envoy/bootstrap-xds.json"
    # It names only its identity and the ADS server: no listener, route or provider in it.
    assert [c["name"] for c in committed["static_resources"]["clusters"]] == ["xds"]
    assert "listeners" not in committed["static_resources"]
    # xDS over TLS: the control plane's certificate is checked against the pinned CA *and* its
    # name, and the gateway presents its fleet client certificate; the listener's key stays here.
    tls_ctx = committed["static_resources"]["clusters"][0]["transport_socket"]["typed_config"]["common_tls_context"]
    assert tls_ctx["validation_context"]["trusted_ca"] == {"filename": "var/tls/ca.pem"}
    assert tls_ctx["validation_context"]["match_typed_subject_alt_names"] == [
        {"san_type": "IP_ADDRESS", "matcher": {"exact": "127.0.0.1"}}
    ]
    assert tls_ctx["tls_certificates"][0]["certificate_chain"] == {"filename": "var/tls/client.pem"}
    assert committed["node"]["metadata"]["tls"] == "server"
    assert [s["name"] for s in committed["static_resources"]["secrets"]] == [envoy_config.SERVER_CERT_SECRET]


@pytest.mark.parametrize("name", ["gateway.json", "bootstrap-xds.json"])
def test_bootstrap_is_valid_for_envoy(tmp_path, name):
    from devstack.processes import envoy_binary
    from devstack import tls as tls_mod

    path = tmp_path / name
    path.write_text((ROOT / "envoy" / name).read_text())
    tls_mod.ensure(tmp_path / "var" / "tls")  # the reference bootstrap names var/tls/*.pem
    out = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path)], capture_output=True, text=True, cwd=tmp_path
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_xds_bootstrap_resolves_a_control_plane_by_name():
    boot = envoy_config.render_xds_bootstrap(
        node_id="gw", tenant="t", zone="z", listen="0.0.0.0:8080", admin_port=9901, ads_address="controlplane:18000"
    )
    assert boot["static_resources"]["clusters"][0]["type"] == "STRICT_DNS"


def test_make_run_tour_works_on_the_embedded_defaults(tmp_path):
    """What `make run` shows a newcomer: demo keys, routing, sovereignty, scope, receipts."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "devstack.run",
            "--demo-only",
            "--run-dir",
            str(tmp_path),
            "--gateway-port",
            str(free_port()),
            "--envoy-admin-port",
            str(free_port()),
            "--admin-port",
            str(free_port()),
            "--cp-port",
            str(free_port()),
            "--xds-port",
            str(free_port()),
            "--ops-port",
            str(free_port()),
            "--prometheus-port",
            str(free_port()),
            "--otlp-port",
            str(free_port()),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    assert "HTTP/1.1 200 OK" in text and '"source": "response"' in text
    assert "'name': 'openai-eu'" in text  # euro routed to the EEA upstream
    assert "sovereignty.blocked" in text and "scope.denied" in text and "auth.unauthenticated" in text
    assert "relaygate is running" in text
    # Served over TLS by default: a local CA in the run dir, the tour's curl commands trust it.
    assert f"CA certificate  {tmp_path / 'tls' / 'ca.pem'}" in text
    assert f"$ curl --cacert {tmp_path / 'tls' / 'ca.pem'} https://127.0.0.1:" in text
    assert oct((tmp_path / "tls" / "server-key.pem").stat().st_mode & 0o777) == "0o600"
    # The control-plane part: a policy created through the API blocks, its receipt reaches the audit feed.
    assert '"policy.blocked"' in text and '"kind": "gateway.call"' in text and '"fallback_used": true' in text
    # The RelayPlane reference's relay example, verbatim: its model names resolve through the catalog.
    ref = text[text.index("The RelayPlane reference's own example") : text.index("12. Revoke")]
    ref_out = json.JSONDecoder().raw_decode(ref[ref.rindex("\n{") + 1 :])[0]  # the answer, after the request
    assert ref_out["status_code"] == 200 and isinstance(ref_out["latency_ms"], int), ref
    assert ref_out["model"] == "claude-3-sonnet" and ref_out["body.content"][0]["type"] == "text", ref
    assert ref_out["receipt model"]["alias"] == "claude-3-sonnet", ref
    assert ref_out["receipt model"]["requested"] == "claude-sonnet-4-5", ref
    assert "relaygate evidence bundle: VERIFIED" in text and "(pinned)" in text
    assert "is consistent with the checkpoint you hold" in text  # the tour's --after-checkpoint
    # The gateway ran from the xDS bootstrap: no listener in its file, everything ACKed over ADS.
    boot = json.loads((tmp_path / "envoy.json").read_text())
    assert "dynamic_resources" in boot and "listeners" not in boot["static_resources"]
    fleet = text[text.index("14. The fleet") :]
    assert '"connected": true' in fleet and '"lds": "' in fleet and '"cds": "' in fleet
    assert '"last_nack": null' in fleet and '"status": "healthy"' in fleet
    # ... and the same fleet over the fleet-operations gRPC service (its generated stub)
    assert re.search(r"ListInstances: \S+ tenant=default stale=False bundle=[0-9a-f]{12}", fleet), fleet
    assert re.search(r"StreamAuditEvents\(kinds=policy\.\*\): [1-9]\d* events, the last policy\.\S+ by key:", fleet)
    # Observability: Prometheus scraped the tour's spend, by model; the first call's receipt id
    # finds its trace, Envoy's spans with the policy decision under the check.
    spend = text[text.index("15. Prometheus") : text.index("16. Tracing")]
    models = dict(re.findall(r"^  (\S+) +([0-9.]+)$", spend, re.M))
    assert {"gpt-4o-mini", "claude-haiku-4-5"} <= set(models) and float(models["gpt-4o-mini"]) > 0, spend
    first = re.search(r"\$ curl .*?\n.*?x-relayone-receipt-id: (rcpt_[\w-]+)", text, re.S | re.I).group(1)
    traced = text[text.index("16. Tracing") :]
    assert f"--receipt {first}" in traced
    assert re.search(r"^relaygate-envoy: ingress .*\n  relaygate-envoy: async policy_http egress .*\n"
                     r"    relaygate-policy: relaygate.decide .*\"allow\"", traced, re.M), traced  # fmt: skip
    assert (tmp_path / "traces.jsonl").stat().st_size > 0


def test_security_doc_names_only_tests_that_exist():
    """docs/security.md maps each promise to the tests that attack it: every name must be real."""
    import re

    doc = (ROOT / "docs" / "security.md").read_text()
    defined = {
        m
        for f in (ROOT / "tests").rglob("test_*.py")
        for m in re.findall(r"^\s*(?:async )?def (test_\w+)", f.read_text(), re.M)
    }
    named = set(re.findall(r"`(?:\w+\.py::)?(test_\w+)", doc)) - {p.stem for p in (ROOT / "tests").rglob("test_*.py")}
    assert len(named) > 50
    assert named <= defined, sorted(named - defined)
    for path in re.findall(r"`((?:extproc|controlplane|stack|evidence)/[\w/]+\.(?:py|lua))", doc):
        assert (ROOT / path).exists(), path
