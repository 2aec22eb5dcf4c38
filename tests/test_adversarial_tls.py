"""Transport security, tried as a network peer would: every relaygate port that carries keys,
tokens, policy or receipts speaks TLS, verifies what it must, and refuses what it must.

One stack (provider simulator, control plane with an mTLS fleet port, sidecar, Envoy over
xDS) from the session's local CA; a second CA ("rogue") issues certificates for the same
names, standing in for anyone who can answer on 127.0.0.1 but does not hold our CA's key.
Clients are real: curl, the openai SDK, grpc, and relaygate's own sidecar and Envoy.
"""
from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
from pathlib import Path

import grpc
import openai
import pytest

from stack import tls as tls_mod
from stack.processes import Stack
from tests.conftest import POLICY_DIR, write_config
from tests.cpclient import CP, eventually

CHAT = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})


def _no_trust_env() -> dict:
    """The environment without the test process's trust-store variables: curl falls back to the system CAs."""
    return {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}


def _curl(url: str, *args: str, data: str | None = None, headers: dict | None = None) -> subprocess.CompletedProcess:
    cmd = ["curl", "-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}", url, *args]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    if data is not None:
        cmd += ["-H", "Content-Type: application/json", "--data-binary", data]
    return subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=_no_trust_env(), timeout=30)


def _refused(out: subprocess.CompletedProcess) -> bool:
    """curl got no HTTP exchange at all (handshake refused or connection dropped): non-zero exit, status 000."""
    return out.returncode != 0 and out.stdout.rsplit("\n", 1)[-1] == "000"


def _status(out: subprocess.CompletedProcess) -> int:
    assert out.returncode == 0, f"curl failed ({out.returncode}): {out.stderr}"
    return int(out.stdout.rsplit("\n", 1)[1])


def _sim_calls(stack: Stack) -> int:
    import urllib.request
    port = next(u.port for u in stack.cfg.upstreams if u.name == "openai-us")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sim/requests", timeout=5) as r:
        return sum(1 for e in json.load(r) if e["port"] == port)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tls")
    tokens = write_config(tmp / "config")
    stack = Stack(tmp / "run", config_dir=tmp / "config", policy_dir=POLICY_DIR, controlplane=True,
                  unreachable={"openai-dead"}, fleet_mtls=True)
    rogue = tls_mod.ensure(tmp / "rogue", name="someone else's CA")
    stack.start()
    yield stack, tokens, rogue
    stack.stop()


def _auth(tokens, name="acme") -> dict:
    return {"Authorization": f"Bearer {tokens[name]}"}


def test_every_port_serves_tls_and_verifies_with_our_ca(env):
    stack, tokens, _ = env
    assert stack.gateway.startswith("https://") and stack.cp_url.startswith("https://")
    ca = str(stack.pki.ca)
    assert _status(_curl(stack.gateway + "/v1/acme/chat/completions", "--cacert", ca,
                         data=CHAT, headers=_auth(tokens))) == 200
    assert _status(_curl(stack.cp_url + "/healthz", "--cacert", ca)) == 200
    # The fleet port with our client certificate: the sidecar's path.
    assert _status(_curl(stack.fleet_url + "/v1/fleet/bundle-key", "--cacert", ca, "--cert",
                         str(stack.pki.client_cert), "--key", str(stack.pki.client_key))) == 200


@pytest.mark.parametrize("port", ["gateway", "controlplane", "fleet"])
def test_client_without_our_ca_fails_verification(env, port):
    """A client that trusts only the system store, or another CA, refuses the certificate: nothing
    (key, token, prompt) is sent to a server it cannot authenticate."""
    stack, tokens, rogue = env
    url = {"gateway": stack.gateway + "/v1/acme/chat/completions", "controlplane": stack.cp_url + "/v1/policies",
           "fleet": stack.fleet_url + "/v1/fleet/bundle-key"}[port]
    before = _sim_calls(stack)
    for args in ([], ["--cacert", str(rogue.ca)]):
        out = _curl(url, *args, data=CHAT, headers=_auth(tokens))
        assert out.returncode == 60, (args, out.returncode, out.stderr)   # peer certificate cannot be authenticated
    assert _sim_calls(stack) == before


def test_sdk_without_our_ca_refuses_the_gateway(env):
    stack, tokens, rogue = env
    before = _sim_calls(stack)
    import certifi
    # The public CAs (what an SDK trusts out of the box), and another private CA.
    for verify in (ssl.create_default_context(cafile=certifi.where()), ssl.create_default_context(cafile=str(rogue.ca))):
        client = openai.OpenAI(base_url=stack.gateway + "/v1/acme", api_key=tokens["acme"], max_retries=0,
                               http_client=openai.DefaultHttpxClient(verify=verify, trust_env=False))
        with pytest.raises(openai.APIConnectionError) as e:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
        assert "CERTIFICATE_VERIFY_FAILED" in repr(e.value.__cause__) or "certificate" in repr(e.value.__cause__)
    assert _sim_calls(stack) == before
    good = openai.OpenAI(base_url=stack.gateway + "/v1/acme", api_key=tokens["acme"], max_retries=0,
                         http_client=openai.DefaultHttpxClient(verify=ssl.create_default_context(
                             cafile=str(stack.pki.ca)), trust_env=False))
    assert good.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]).choices


@pytest.mark.parametrize("port", ["gateway", "controlplane", "fleet"])
def test_plaintext_http_to_a_tls_port_fails(env, port):
    """A plaintext request to a TLS port gets no HTTP answer and reaches nothing behind it."""
    stack, tokens, _ = env
    p = {"gateway": stack.gateway_port, "controlplane": stack.cp_port, "fleet": stack.cp_fleet_port}[port]
    before = _sim_calls(stack)
    out = _curl(f"http://127.0.0.1:{p}/v1/acme/chat/completions", data=CHAT, headers=_auth(tokens))
    assert _refused(out), out
    assert _sim_calls(stack) == before


def test_fleet_port_refuses_clients_without_a_fleet_certificate(env):
    """mTLS: without a client certificate, or with one another CA issued, the handshake fails; the
    fleet token alone (on the public port) is refused too."""
    stack, _, rogue = env
    ca, fleet = str(stack.pki.ca), {"Authorization": f"Bearer {stack.fleet_token}"}
    url = stack.fleet_url + "/v1/fleet/bundles/" + stack.tenant
    no_cert = _curl(url, "--cacert", ca, headers=fleet)
    assert _refused(no_cert), no_cert
    foreign = _curl(url, "--cacert", ca, "--cert", str(rogue.client_cert), "--key", str(rogue.client_key),
                    headers=fleet)
    assert _refused(foreign), foreign
    ok = _curl(url, "--cacert", ca, "--cert", str(stack.pki.client_cert), "--key", str(stack.pki.client_key),
               headers=fleet)
    assert _status(ok) == 200
    # The same token on the public API port (no client certificate): refused with our error shape.
    public = _curl(stack.cp_url + "/v1/fleet/bundles/" + stack.tenant, "--cacert", ca, headers=fleet)
    assert _status(public) == 403
    assert json.loads(public.stdout.rsplit("\n", 1)[0])["error"]["code"] == "auth.client_certificate_required"


def test_xds_requires_tls_and_a_fleet_client_certificate(env):
    """The ADS server hands out every gateway's listener and clusters: plaintext, no client
    certificate, or a certificate from another CA never get a connection."""
    stack, _, rogue = env
    target = f"127.0.0.1:{stack.xds_port}"
    ca = stack.pki.ca.read_bytes()

    def ready(creds) -> bool:
        ch = grpc.secure_channel(target, creds) if creds else grpc.insecure_channel(target)
        try:
            grpc.channel_ready_future(ch).result(timeout=3)
            return True
        except grpc.FutureTimeoutError:
            return False
        finally:
            ch.close()

    assert not ready(None)
    assert not ready(grpc.ssl_channel_credentials(root_certificates=ca))
    assert not ready(grpc.ssl_channel_credentials(root_certificates=ca, private_key=rogue.client_key.read_bytes(),
                                                  certificate_chain=rogue.client_cert.read_bytes()))
    assert ready(grpc.ssl_channel_credentials(root_certificates=ca, private_key=stack.pki.client_key.read_bytes(),
                                              certificate_chain=stack.pki.client_cert.read_bytes()))
    # And the gateway's Envoy really is on it: its listener came over this TLS connection.
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.envoy_admin_port}/stats?filter=^cluster.xds.ssl.handshake$",
                                timeout=5) as r:
        assert int(r.read().decode().split(":")[1]) >= 1


def _metric(stack: Stack, name: str) -> float:
    import urllib.request
    with urllib.request.urlopen(stack.extproc_admin + "/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def _envoy_stat(stack: Stack, name: str) -> int:
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.envoy_admin_port}/stats?filter=^{name}$", timeout=5) as r:
        body = r.read().decode().strip()
    return int(body.split(":")[1]) if body else 0


def test_sidecar_and_envoy_refuse_a_control_plane_with_a_foreign_certificate(env):
    """Someone answers on the control plane's address with a certificate another CA issued (same
    names): the sidecar does not take its bundle and Envoy not its config; both keep enforcing what
    they have. Back on the genuine certificate, the same change arrives (so the refusal, not timing,
    kept it out)."""
    stack, tokens, rogue = env
    ca = str(stack.pki.ca)
    gw = lambda: _status(_curl(stack.gateway + "/v1/acme/chat/completions", "--cacert", ca,  # noqa: E731
                               data=CHAT, headers=_auth(tokens)))
    assert gw() == 200
    refused_before = _metric(stack, 'relaygate_policy_bundle_errors_total{reason="tls"}')
    xds_refused_before = _envoy_stat(stack, "cluster.xds.ssl.fail_verify_error")

    stack.stop_one("controlplane")
    stack.cp_pki = rogue
    stack.start_controlplane()
    try:
        impostor = CP(stack.cp_url, tokens["acme"])
        impostor.session.verify, impostor.session.trust_env = str(rogue.ca), False
        made = impostor.post("/v1/policies", yaml="name: no-4o\nrego: |\n  package no_4o\n  import rego.v1\n"
                                                  "  deny contains \"gpt-4o blocked\" if input.model == \"gpt-4o\"\n")
        assert made.status == 201, made.text
        eventually(lambda: _metric(stack, 'relaygate_policy_bundle_errors_total{reason="tls"}') > refused_before,
                   30, "the sidecar refusing the impostor's certificate")
        eventually(lambda: _envoy_stat(stack, "cluster.xds.ssl.fail_verify_error") > xds_refused_before,
                   30, "Envoy refusing the impostor's certificate on xDS")
        log = (stack.run_dir / "extproc.log").read_text()
        assert "refused the control plane's TLS" in log and "CERTIFICATE_VERIFY_FAILED" in log
        assert gw() == 200          # the policy the impostor holds never reached the gateway
    finally:
        stack.stop_one("controlplane")
        stack.cp_pki = None
        stack.start_controlplane()
    eventually(lambda: gw() == 403, 45, "the genuine control plane's bundle (with the policy) reaching the gateway")
    pid = made.json()["id"]
    assert CP(stack.cp_url, tokens["acme"]).delete(f"/v1/policies/{pid}").status in (200, 204)


def test_gateway_listener_can_require_client_certificates(tmp_path):
    """Envoy's DownstreamTlsContext with require_client_certificate: only holders of a certificate
    our CA issued get an HTTP exchange at all."""
    tokens = write_config(tmp_path / "config")
    stack = Stack(tmp_path / "run", config_dir=tmp_path / "config", policy_dir=POLICY_DIR,
                  unreachable={"openai-dead"}, gateway_mtls=True)
    rogue = tls_mod.ensure(tmp_path / "rogue", name="someone else's CA")
    stack.start()
    try:
        url, ca = stack.gateway + "/v1/acme/chat/completions", str(stack.pki.ca)
        before = _sim_calls(stack)
        for extra in ([], ["--cert", str(rogue.client_cert), "--key", str(rogue.client_key)]):
            out = _curl(url, "--cacert", ca, *extra, data=CHAT, headers=_auth(tokens))
            assert _refused(out), out
        assert _sim_calls(stack) == before
        ok = _curl(url, "--cacert", ca, "--cert", str(stack.pki.client_cert), "--key", str(stack.pki.client_key),
                   data=CHAT, headers=_auth(tokens))
        assert _status(ok) == 200
    finally:
        stack.stop()


def test_local_certificates_are_private_and_reused(tmp_path):
    """make run's certificate set: 0600 files in a 0700 directory, reused while valid, replaced when not."""
    pki = tls_mod.ensure(tmp_path / "tls")
    assert oct(pki.dir.stat().st_mode & 0o777) == "0o700"
    files = sorted(pki.dir.iterdir())
    assert len(files) == 6 and all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    first = pki.ca.read_bytes()
    assert tls_mod.ensure(tmp_path / "tls").ca.read_bytes() == first        # reused
    pki.server_key.write_bytes(tls_mod.ensure(tmp_path / "other").server_key.read_bytes())   # mismatched key
    assert tls_mod.ensure(tmp_path / "tls").ca.read_bytes() != first        # replaced as a whole
    out = subprocess.run(["openssl", "verify", "-CAfile", str(pki.ca), str(pki.server_cert), str(pki.client_cert)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
