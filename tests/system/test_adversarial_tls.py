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
from pathlib import Path

import grpc
import openai
import pytest

from devstack import tls as tls_mod
from devstack.processes import Stack
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
    stack = Stack(
        tmp / "run",
        config_dir=tmp / "config",
        policy_dir=POLICY_DIR,
        controlplane=True,
        unreachable={"openai-dead"},
        fleet_mtls=True,
    )
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
    assert (
        _status(_curl(stack.gateway + "/v1/acme/chat/completions", "--cacert", ca, data=CHAT, headers=_auth(tokens)))
        == 200
    )
    assert _status(_curl(stack.cp_url + "/healthz", "--cacert", ca)) == 200
    # The fleet port with our client certificate: the sidecar's path.
    assert (
        _status(
            _curl(
                stack.fleet_url + "/v1/fleet/bundle-key",
                "--cacert",
                ca,
                "--cert",
                str(stack.pki.client_cert),
                "--key",
                str(stack.pki.client_key),
            )
        )
        == 200
    )


@pytest.mark.parametrize("port", ["gateway", "controlplane", "fleet"])
def test_client_without_our_ca_fails_verification(env, port):
    """A client that trusts only the system store, or another CA, refuses the certificate: nothing
    (key, token, prompt) is sent to a server it cannot authenticate."""
    stack, tokens, rogue = env
    url = {
        "gateway": stack.gateway + "/v1/acme/chat/completions",
        "controlplane": stack.cp_url + "/v1/policies",
        "fleet": stack.fleet_url + "/v1/fleet/bundle-key",
    }[port]
    before = _sim_calls(stack)
    for args in ([], ["--cacert", str(rogue.ca)]):
        out = _curl(url, *args, data=CHAT, headers=_auth(tokens))
        assert out.returncode == 60, (args, out.returncode, out.stderr)  # peer certificate cannot be authenticated
    assert _sim_calls(stack) == before


def test_sdk_without_our_ca_refuses_the_gateway(env):
    stack, tokens, rogue = env
    before = _sim_calls(stack)
    import certifi

    # The public CAs (what an SDK trusts out of the box), and another private CA.
    for verify in (
        ssl.create_default_context(cafile=certifi.where()),
        ssl.create_default_context(cafile=str(rogue.ca)),
    ):
        client = openai.OpenAI(
            base_url=stack.gateway + "/v1/acme",
            api_key=tokens["acme"],
            max_retries=0,
            http_client=openai.DefaultHttpxClient(verify=verify, trust_env=False),
        )
        with pytest.raises(openai.APIConnectionError) as e:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
        assert "CERTIFICATE_VERIFY_FAILED" in repr(e.value.__cause__) or "certificate" in repr(e.value.__cause__)
    assert _sim_calls(stack) == before
    good = openai.OpenAI(
        base_url=stack.gateway + "/v1/acme",
        api_key=tokens["acme"],
        max_retries=0,
        http_client=openai.DefaultHttpxClient(
            verify=ssl.create_default_context(cafile=str(stack.pki.ca)), trust_env=False
        ),
    )
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
    foreign = _curl(
        url, "--cacert", ca, "--cert", str(rogue.client_cert), "--key", str(rogue.client_key), headers=fleet
    )
    assert _refused(foreign), foreign
    ok = _curl(
        url, "--cacert", ca, "--cert", str(stack.pki.client_cert), "--key", str(stack.pki.client_key), headers=fleet
    )
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
    assert not ready(
        grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=rogue.client_key.read_bytes(),
            certificate_chain=rogue.client_cert.read_bytes(),
        )
    )
    assert ready(
        grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=stack.pki.client_key.read_bytes(),
            certificate_chain=stack.pki.client_cert.read_bytes(),
        )
    )
    # And the gateway's Envoy really is on it: its listener came over this TLS connection.
    import urllib.request

    with urllib.request.urlopen(
        f"http://127.0.0.1:{stack.envoy_admin_port}/stats?filter=^cluster.xds.ssl.handshake$", timeout=5
    ) as r:
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

    def gw():
        return _status(
            _curl(stack.gateway + "/v1/acme/chat/completions", "--cacert", ca, data=CHAT, headers=_auth(tokens))
        )

    assert gw() == 200
    refused_before = _metric(stack, 'relaygate_policy_bundle_errors_total{reason="tls"}')
    xds_refused_before = _envoy_stat(stack, "cluster.xds.ssl.fail_verify_error")

    stack.stop_one("controlplane")
    stack.cp_pki = rogue
    stack.start_controlplane()
    try:
        impostor = CP(stack.cp_url, tokens["acme"])
        impostor.session.verify, impostor.session.trust_env = str(rogue.ca), False
        made = impostor.post(
            "/v1/policies",
            yaml="name: no-4o\nrego: |\n  package no_4o\n  import rego.v1\n"
            '  deny contains "gpt-4o blocked" if input.model == "gpt-4o"\n',
        )
        assert made.status == 201, made.text
        eventually(
            lambda: _metric(stack, 'relaygate_policy_bundle_errors_total{reason="tls"}') > refused_before,
            30,
            "the sidecar refusing the impostor's certificate",
        )
        eventually(
            lambda: _envoy_stat(stack, "cluster.xds.ssl.fail_verify_error") > xds_refused_before,
            30,
            "Envoy refusing the impostor's certificate on xDS",
        )
        log = (stack.run_dir / "extproc.log").read_text()
        assert "refused the control plane's TLS" in log and "CERTIFICATE_VERIFY_FAILED" in log
        assert gw() == 200  # the policy the impostor holds never reached the gateway
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
    stack = Stack(
        tmp_path / "run",
        config_dir=tmp_path / "config",
        policy_dir=POLICY_DIR,
        unreachable={"openai-dead"},
        gateway_mtls=True,
    )
    rogue = tls_mod.ensure(tmp_path / "rogue", name="someone else's CA")
    stack.start()
    try:
        url, ca = stack.gateway + "/v1/acme/chat/completions", str(stack.pki.ca)
        before = _sim_calls(stack)
        for extra in ([], ["--cert", str(rogue.client_cert), "--key", str(rogue.client_key)]):
            out = _curl(url, "--cacert", ca, *extra, data=CHAT, headers=_auth(tokens))
            assert _refused(out), out
        assert _sim_calls(stack) == before
        ok = _curl(
            url,
            "--cacert",
            ca,
            "--cert",
            str(stack.pki.client_cert),
            "--key",
            str(stack.pki.client_key),
            data=CHAT,
            headers=_auth(tokens),
        )
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
    assert tls_mod.ensure(tmp_path / "tls").ca.read_bytes() == first  # reused
    pki.server_key.write_bytes(tls_mod.ensure(tmp_path / "other").server_key.read_bytes())  # mismatched key
    assert tls_mod.ensure(tmp_path / "tls").ca.read_bytes() != first  # replaced as a whole
    out = subprocess.run(
        ["openssl", "verify", "-CAfile", str(pki.ca), str(pki.server_cert), str(pki.client_cert)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


# --- Gateway → provider: Envoy verifies the provider's certificate (chain and name) ---------------
#
# A network peer between the gateway and a provider answers the TLS handshake with a certificate of
# its own. If Envoy took it, the policy sidecar's platform credential (Authorization) would be in
# the impostor's hands. Each provider below is a providersim over HTTPS with a certificate we choose.


def _tls_sim(tmp: Path, name: str, pki: tls_mod.Pki, port: int) -> subprocess.Popen:
    import sys

    log = open(tmp / f"sim-{name}.log", "ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "relaygate.providersim.server",
            "--port",
            str(port),
            "--credential",
            "sk-test-openai",
            "--tls-cert",
            str(pki.server_cert),
            "--tls-key",
            str(pki.server_key),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parents[2],
        start_new_session=True,
    )
    from devstack.processes import port_open, wait_until

    wait_until(lambda: port_open(port), 15, f"provider simulator {name}", proc, tmp / f"sim-{name}.log")
    return proc


def _tls_sim_requests(port: int, pki: tls_mod.Pki) -> list[dict]:
    """What a TLS simulator received (read over its own TLS; its certificate may name another host)."""
    import urllib.request

    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.check_hostname = False
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/_sim/requests", timeout=5, context=ctx) as r:
        return json.load(r)


@pytest.fixture(scope="module")
def provider_tls(tmp_path_factory):
    """A static gateway with four HTTPS upstreams, each served by its own simulator:

    - ``impostor-public``: no ca_file (the system CAs), served with a certificate from a private CA
      the system does not trust: a network peer answering for a public provider;
    - ``impostor-private``: ca_file is the provider's CA, served with a certificate another CA
      issued for the same address (127.0.0.1);
    - ``private``: ca_file is the provider's CA and the certificate names 127.0.0.1: accepted;
    - ``misnamed``: ca_file is a CA that issued the certificate, but for another host name.
    """
    import yaml

    from devstack.processes import free_port

    tmp = tmp_path_factory.mktemp("provider-tls")
    tokens = write_config(tmp / "config")
    provider = tls_mod.ensure(tmp / "provider", name="private provider CA")
    rogue = tls_mod.ensure(tmp / "rogue", name="someone else's CA")
    other = tls_mod.ensure(tmp / "other-name", hosts=("provider.other.example",), name="other name CA")
    served = {"impostor-public": rogue, "impostor-private": rogue, "private": provider, "misnamed": other}
    trusted = {"impostor-private": provider.ca, "private": provider.ca, "misnamed": other.ca}
    ports = {n: free_port() for n in served}
    ups = yaml.safe_load((tmp / "config" / "upstreams.yaml").read_text())
    for n in served:
        u = {
            "name": n,
            "provider": "openai",
            "address": f"127.0.0.1:{ports[n]}",
            "tls": True,
            "region": "us-east-1",
            "jurisdiction": "us",
            "credential": "openai",
            "models": {f"{n}-model": {"input_per_1k": 1, "output_per_1k": 1}},
        }
        if n in trusted:
            u["ca_file"] = str(trusted[n])
        ups["upstreams"].append(u)
    (tmp / "config" / "upstreams.yaml").write_text(yaml.safe_dump(ups))
    sims = {}
    stack = Stack(tmp / "run", config_dir=tmp / "config", policy_dir=POLICY_DIR, unreachable={"openai-dead", *served})
    try:
        for n, pki in served.items():
            sims[n] = _tls_sim(tmp, n, pki, ports[n])
        stack.start()
        yield stack, tokens, ports, served
    finally:
        stack.stop()
        for p in sims.values():
            os.killpg(p.pid, 9)
            p.wait()


def _provider_call(stack: Stack, tokens, model: str):
    from tests.httpcall import chat_body, curl

    return curl(
        stack.gateway + "/v1/acme/chat/completions",
        chat_body(model, max_tokens=4),
        {"Authorization": f"Bearer {tokens['acme']}", "Content-Type": "application/json"},
    )


@pytest.mark.parametrize("name", ["impostor-public", "impostor-private", "misnamed"])
def test_gateway_refuses_a_provider_certificate_it_cannot_verify(provider_tls, name):
    """A certificate from a CA the upstream does not trust, or one our CA issued to another name:
    the handshake fails, the call ends in our JSON error with a receipt, and the peer never sees
    a request (so never the platform's provider credential)."""
    stack, tokens, ports, served = provider_tls
    before = _envoy_stat(stack, f"cluster.upstream_{name}.ssl.fail_verify_error") + _envoy_stat(
        stack, f"cluster.upstream_{name}.ssl.fail_verify_san"
    )
    reply = _provider_call(stack, tokens, f"{name}-model")
    assert reply.status in (502, 503), (reply.status, reply.body)
    err = reply.json()["error"]
    assert reply.receipt_id and err["receipt_id"] == reply.receipt_id
    assert b"sk-test-openai" not in reply.body
    assert _tls_sim_requests(ports[name], served[name]) == []  # nothing reached the impostor
    after = _envoy_stat(stack, f"cluster.upstream_{name}.ssl.fail_verify_error") + _envoy_stat(
        stack, f"cluster.upstream_{name}.ssl.fail_verify_san"
    )
    assert after > before  # refused by verification, not by chance


def test_gateway_reaches_a_private_provider_through_its_ca_file(provider_tls):
    """The same mechanism accepts the genuine provider: its CA (ca_file) and its name."""
    stack, tokens, ports, served = provider_tls
    reply = _provider_call(stack, tokens, "private-model")
    assert reply.status == 200, reply.body
    got = _tls_sim_requests(ports["private"], served["private"])
    assert len(got) == 1 and got[0]["headers"]["Authorization"] == "Bearer sk-test-openai"


def test_every_tls_upstream_cluster_validates_ca_and_name():
    """Rendering, for the static bootstrap and xDS alike (both use _upstream_cluster): a TLS
    upstream always carries a trusted CA (the system bundle unless ca_file) and a SAN match on
    its host; an IP address is matched as an IP SAN and sent no SNI."""
    from relaygate.contract import config as config_mod
    from relaygate.envoy import config as envoy_config

    base = {
        "provider": "openai",
        "region": "r",
        "jurisdiction": "us",
        "credential": "c",
        "models": {"m": {}},
        "tls": True,
    }
    for addr, ca, san_type in (
        ("api.openai.example:443", None, "DNS"),
        ("10.0.0.7:8443", "/etc/p/ca.pem", "IP_ADDRESS"),
    ):
        spec = {**base, "name": "u", "address": addr, **({"ca_file": ca} if ca else {})}
        u = config_mod.parse_upstream(spec, "test", None)
        for eds in (False, True):
            ctx = envoy_config._upstream_cluster(u, eds)["transport_socket"]["typed_config"]
            vc = ctx["common_tls_context"]["validation_context"]
            assert vc["trusted_ca"] == {"filename": ca or envoy_config.SYSTEM_CA_BUNDLE}
            assert vc["match_typed_subject_alt_names"] == [
                {"san_type": san_type, "matcher": {"exact": addr.rsplit(":", 1)[0]}}
            ]
            assert ctx.get("sni") == (None if san_type == "IP_ADDRESS" else "api.openai.example")
    with pytest.raises(config_mod.ConfigError, match="ca_file"):
        config_mod.parse_upstream({**base, "name": "u", "address": "h:443", "ca_file": 7}, "test", None)
    with pytest.raises(config_mod.ConfigError, match="ca_file"):
        config_mod.parse_upstream(
            {**base, "name": "u", "address": "h:443", "tls": False, "ca_file": "/x.pem"}, "test", None
        )


def test_upstreams_from_the_control_plane_verify_the_provider_too(env, tmp_path):
    """The same verification for an upstream added through the API and delivered over xDS: an
    impostor with a certificate the system CAs do not trust is refused (and sees nothing), the
    private provider named by ca_file is reached; ca_file without tls is a 400."""
    from devstack.processes import free_port

    stack, tokens, rogue = env
    admin = CP(stack.cp_url, stack.admin_token)
    admin.session.verify, admin.session.trust_env = str(stack.pki.ca), False
    ports = {"cp-impostor": free_port(), "cp-private": free_port()}
    served = {"cp-impostor": rogue, "cp-private": stack.pki}
    sims = {n: _tls_sim(tmp_path, n, served[n], ports[n]) for n in ports}
    base = {"provider": "openai", "tls": True, "region": "us-east-1", "jurisdiction": "us", "credential": "openai"}
    try:
        bad = admin.post(
            "/v1/upstreams",
            {
                **base,
                "name": "cp-bad",
                "address": "127.0.0.1:9",
                "tls": False,
                "ca_file": str(stack.pki.ca),
                "models": {"x": {}},
            },
        )
        assert bad.status == 400 and "ca_file" in bad.text, bad.text
        for n in ports:
            spec = {**base, "name": n, "address": f"127.0.0.1:{ports[n]}", "models": {f"{n}-model": {}}}
            if n == "cp-private":
                spec["ca_file"] = str(stack.pki.ca.resolve())
            made = admin.post("/v1/upstreams", spec)
            assert made.status == 201, made.text
            assert made.json().get("ca_file") == spec.get("ca_file")
        from tests.httpcall import chat_body, curl

        def call(model):
            return curl(
                stack.gateway + "/v1/acme/chat/completions",
                chat_body(model, max_tokens=4),
                {"Authorization": f"Bearer {tokens['acme']}", "Content-Type": "application/json"},
            )

        eventually(lambda: call("cp-private-model").status == 200, 45, "the private upstream arriving over xDS")
        got = _tls_sim_requests(ports["cp-private"], stack.pki)
        assert got and got[-1]["headers"]["Authorization"] == "Bearer sk-test-openai"

        def refused() -> bool:  # until Envoy has the cluster a call is misrouted (502) without a handshake
            call("cp-impostor-model")
            return _envoy_stat(stack, "cluster.upstream_cp-impostor.ssl.fail_verify_error") > 0

        eventually(refused, 45, "Envoy refusing the impostor's certificate")
        reply = call("cp-impostor-model")
        assert reply.status in (502, 503) and reply.json()["error"]["receipt_id"] == reply.receipt_id, reply.body
        assert _tls_sim_requests(ports["cp-impostor"], rogue) == []
    finally:
        for n in ports:
            admin.delete(f"/v1/upstreams/{n}")
        for p in sims.values():
            os.killpg(p.pid, 9)
            p.wait()
