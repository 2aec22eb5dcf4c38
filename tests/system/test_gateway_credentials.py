"""Every credential the control plane accepts works at the gateway too, and only as far as it should.

A real control plane drives a real sidecar + Envoy over bundles and xDS (as production runs it).
Session tokens reach the gateway in the signed bundle (salt and hash, never the secret) and end
when they expire (by the sidecar's own clock), are ended, or their maker key is revoked. Workspace
JWTs are verified by the sidecar against its issuers' JWKS: a local JWKS server run by this module
counts every fetch, so key rotation and a flood of forged kids are measured, not assumed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import re
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import anthropic
import jwt
import openai
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from relaygate.contract import bundle as bundle_mod
from devstack.processes import Stack
from tests.conftest import POLICY_DIR, TRANSPORTS, ControlPlane, Gateway, write_config
from tests.cpclient import CP, eventually
from tests.httpcall import chat_body, curl

ISSUER = "https://issuer.test"  # JWKS over HTTP from the module's server, aud "relaygate" required
ROTATING = "https://rotating.test"  # its own JWKS server path, refetch at most every 2 s
CLERK = "https://clerk.test"  # Clerk-style: no aud required, workspace at o.id
CLERK_STRICT = "https://clerk-strict.test"  # the same tokens, but the default audience required
REFETCH = 2.0


def _keypair(kid: str):
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=kid, alg="ES256", use="sig")
    return key, jwk


class JwksServer:
    """A local issuer's JWKS endpoint: serves what ``docs[path]`` holds and counts fetches per path."""

    def __init__(self) -> None:
        self.docs: dict[str, dict] = {}
        self.fetches: dict[str, int] = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                with outer.lock:
                    outer.fetches[self.path] = outer.fetches.get(self.path, 0) + 1
                    doc = outer.docs.get(self.path)
                body = json.dumps(doc).encode() if doc is not None else b"{}"
                self.send_response(200 if doc is not None else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def count(self, path: str) -> int:
        with self.lock:
            return self.fetches.get(path, 0)


class Creds:
    def __init__(self, stack, tokens, jwks: JwksServer, keys: dict) -> None:
        self.stack, self.tokens, self.jwks, self.keys = stack, tokens, jwks, keys
        self.gw = Gateway(stack, tokens)
        self.cp = ControlPlane(stack, tokens)

    def call(self, token: str, ws: str = "acme", model: str = "gpt-4o-mini", header: str = "authorization"):
        value = f"Bearer {token}" if header == "authorization" else token
        return curl(
            self.gw.base(ws) + "/chat/completions",
            chat_body(model, content=uuid.uuid4().hex),
            {header: value, "content-type": "application/json"},
        )

    def bundle_revision(self) -> str:
        """The revision of the bundle the sidecar has in force (its Prometheus info metric)."""
        with urllib.request.urlopen(f"{self.stack.extproc_admin}/metrics", timeout=5) as r:
            text = r.read().decode()
        m = re.search(r'relaygate_policy_bundle_info\{[^}]*revision="([^"]+)"', text)
        assert m, "no bundle revision metric"
        return m.group(1)

    def bundle_config(self) -> dict:
        """The config documents of the control plane's current bundle, verified as a sidecar does."""
        fleet = self.cp.fleet
        reply = fleet.session.get(
            fleet.url + "/v1/fleet/bundles/default", headers={"Authorization": f"Bearer {fleet.token}"}, timeout=30
        )
        assert reply.status_code == 200
        key = bundle_mod.load_verify_key((self.stack.cp_data / "bundle-signing.pub").read_bytes())
        return bundle_mod.read(reply.content, verify_key=key, fleet_token=self.stack.fleet_token).config

    def bundle_sessions(self) -> dict[str, dict]:
        return {x["id"]: x for x in (self.bundle_config().get("sessions") or {}).get("sessions") or []}

    def cp_revision(self) -> str:
        return self.cp.fleet.get("/v1/fleet/bundles/default").headers["etag"].strip('"')


@pytest.fixture(scope="module", params=TRANSPORTS)
def creds(request, tmp_path_factory):
    jwks = JwksServer()
    keys = {name: _keypair(name) for name in ("k1", "r1", "r2", "c1")}
    jwks.docs["/issuer.json"] = {"keys": [keys["k1"][1]]}
    jwks.docs["/rotating.json"] = {"keys": [keys["r1"][1]]}
    tmp = tmp_path_factory.mktemp("creds-settings")
    (tmp / "clerk-jwks.json").write_text(json.dumps({"keys": [keys["c1"][1]]}))
    settings = {
        "jwt_issuers": [
            {"issuer": ISSUER, "jwks_url": jwks.url + "/issuer.json", "min_refetch_seconds": 3600},
            {"issuer": ROTATING, "jwks_url": jwks.url + "/rotating.json", "min_refetch_seconds": REFETCH},
            {
                "issuer": CLERK,
                "audience": None,
                "jwks_file": str(tmp / "clerk-jwks.json"),
                "workspace_claim": "o.id",
                "default_role": "standard",
            },
            {"issuer": CLERK_STRICT, "jwks_file": str(tmp / "clerk-jwks.json"), "workspace_claim": "o.id"},
        ]
    }
    (tmp / "controlplane.yaml").write_text(yaml.safe_dump(settings))
    # The attacker tests send many 401s from one address: lift the pre-auth throttle
    # (tests/system/test_adversarial_gateway.py tests it) so each answer is the credential's own.
    run = tmp_path_factory.mktemp(f"creds-{request.param}")
    tokens = write_config(run / "config")
    with open(run / "config" / "gateway.yaml", "a") as f:
        f.write("unauthenticated: {strikes_per_second: 10000, requests_per_second: 10000, burst: 10000}\n")
    stack = Stack(
        run / "run",
        config_dir=run / "config",
        policy_dir=POLICY_DIR,
        controlplane=True,
        instance_id=f"creds-{request.param}-sidecar",
        cp_extra_args=["--config", str(tmp / "controlplane.yaml")],
        transport=request.param,
    )
    stack.start()
    c = Creds(stack, tokens, jwks, keys)
    c.transport = request.param
    yield c
    stack.stop()
    jwks.httpd.shutdown()


def _jwt(creds, key: str = "k1", iss: str = ISSUER, kid: str | None = None, **claims) -> str:
    base = {"iss": iss, "aud": "relaygate", "sub": "svc-reporting", "workspace": "acme", "exp": int(time.time()) + 300}
    base.update(claims)
    return jwt.encode(
        {k: v for k, v in base.items() if v is not None},
        creds.keys[key][0],
        algorithm="ES256",
        headers={"kid": kid or key},
    )


def _clerk(creds, iss: str = CLERK, **claims) -> str:
    """A Clerk v2-style session token: no aud, the organisation nested under o."""
    base = {
        "iss": iss,
        "sub": "user_2abc",
        "azp": "https://app.example",
        "sid": "sess_123",
        "o": {"id": "acme", "rol": "admin"},
        "exp": int(time.time()) + 300,
        "v": 2,
    }
    base.update(claims)
    return jwt.encode(base, creds.keys["c1"][0], algorithm="ES256", headers={"kid": "c1"})


def _session(creds, maker: str = "acme", **body) -> dict:
    made = creds.cp.client(maker).post("/v1/sessions", body)
    assert made.status == 201, made.text
    return made.json()


def _sid(token: str) -> str:
    return token[len("ro_session_") :].split("_")[0]


def _refused(reply, status: int, code: str) -> dict:
    assert reply.status == status, reply.body
    err = reply.json()["error"]
    assert err["code"] == code and err["receipt_id"] == reply.receipt_id, err
    return err


def _sdk_calls(creds, token: str) -> list[dict]:
    """One OpenAI SDK and one Anthropic SDK call with ``token``; their receipts."""
    verify = {"verify": creds.stack.client_ssl(), "trust_env": False}
    oai = openai.OpenAI(
        base_url=creds.gw.base("acme"), api_key=token, max_retries=0, http_client=openai.DefaultHttpxClient(**verify)
    )
    raw = oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "creds"}], max_tokens=5
    )
    assert raw.parse().choices[0].message.content
    ant = anthropic.Anthropic(
        base_url=creds.gw.base("acme"), api_key=token, max_retries=0, http_client=anthropic.DefaultHttpxClient(**verify)
    )
    msg = ant.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "creds"}]
    )
    assert msg.parse().content[0].text
    return [creds.gw.receipt_doc(r.headers["x-relayone-receipt-id"]) for r in (raw, msg)]


# -- session tokens ----------------------------------------------------------------------------


def test_session_token_calls_through_both_sdks_with_receipts_naming_it_and_its_key(creds):
    s = _session(creds)
    maker_key = creds.tokens["acme"].split("_")[2]
    eventually(lambda: creds.call(s["token"]).status == 200, 10, "the session reaching the gateway")
    for receipt in _sdk_calls(creds, s["token"]):
        assert receipt["decision"]["allow"] and receipt["workspace"] == "acme"
        assert receipt["credential"] == f"session:{_sid(s['token'])}"
        assert receipt["key_id"] == maker_key  # per-key budgets charge the key it descends from
    # the same calls as x-api-key (the Anthropic shape) work too
    assert creds.call(s["token"], header="x-api-key").status == 200


def test_session_is_held_to_its_makers_scope_and_budgets(creds):
    """A session of a key limited to gpt-4o is refused other models; a session of the key with
    a spent per-key budget is refused by that budget (the maker's budgets charge it)."""
    narrow = _session(creds, "acme-4o")
    eventually(lambda: creds.call(narrow["token"], model="gpt-4o").status == 200, 10, "the session in force")
    _refused(creds.call(narrow["token"], model="gpt-4o-mini"), 403, "scope.denied")
    limited = _session(creds, "acme-limited")
    reply = eventually(lambda: (r := creds.call(limited["token"])).status != 401 and r, 10, "the session in force")
    err = _refused(reply, 429, "budget.exceeded")
    assert "limited-key-monthly" in err["message"]


def test_session_of_workspace_a_calling_workspace_b_is_403(creds):
    s = _session(creds)
    eventually(lambda: creds.call(s["token"]).status == 200, 10, "the session reaching the gateway")
    err = _refused(creds.call(s["token"], ws="euro"), 403, "scope.denied")
    assert "not valid for this workspace" in err["message"]


def test_ended_session_is_refused_by_the_gateway(creds):
    s = _session(creds)
    eventually(lambda: creds.call(s["token"]).status == 200, 10, "the session reaching the gateway")
    child = CP(creds.cp.url, s["token"]).post("/v1/sessions", {}).json()["token"]  # a session of the session
    eventually(lambda: creds.call(child).status == 200, 10, "the child session reaching the gateway")
    assert CP(creds.cp.url, s["token"]).delete("/v1/sessions/current").status == 204
    started = time.monotonic()
    err = _refused(
        eventually(lambda: (r := creds.call(s["token"])).status == 401 and r, 10, "the end reaching the gateway"),
        401,
        "auth.unauthenticated",
    )
    assert time.monotonic() - started < 5 and "session" in err["message"]
    _refused(creds.call(child), 401, "auth.unauthenticated")  # made from the ended one: ended too


def test_expired_session_is_refused_by_the_sidecars_own_clock(creds):
    s = _session(creds, ttl_seconds=3)
    eventually(lambda: creds.call(s["token"]).status == 200, 10, "the session reaching the gateway")
    revision = creds.bundle_revision()
    expires = time.time() + 3.5
    eventually(lambda: time.time() > expires, 10, "the session's expiry")
    _refused(creds.call(s["token"]), 401, "auth.unauthenticated")
    # No new bundle took it away: the sidecar refused it with the bundle that still lists it.
    assert creds.bundle_revision() == revision == creds.cp_revision()
    assert _sid(s["token"]) in creds.bundle_sessions()
    # The next bundle built (any change: here another session) leaves it out.
    other = _session(creds)
    eventually(lambda: creds.call(other["token"]).status == 200, 10, "the next bundle")
    shipped = creds.bundle_sessions()
    assert _sid(other["token"]) in shipped and _sid(s["token"]) not in shipped
    # salt and hash travel, never the secret
    assert s["token"].split("_")[-1] not in json.dumps(shipped)


def test_session_of_a_revoked_key_ends_at_the_gateway(creds):
    acme = creds.cp.client("acme")
    made = acme.post("/v1/keys", {"name": "session-maker"}).json()
    s = CP(creds.cp.url, made["secret"]).post("/v1/sessions", {}).json()
    eventually(lambda: creds.call(s["token"]).status == 200, 10, "the session reaching the gateway")
    assert acme.post(f"/v1/keys/{made['key']['id']}/revoke").status == 200
    eventually(lambda: creds.call(s["token"]).status == 401, 10, "the revocation reaching the gateway")
    _refused(creds.call(s["token"]), 401, "auth.unauthenticated")


def test_session_without_gateway_call_may_not_call(creds):
    s = _session(creds, permissions=["usage:read", "logs:read", "health:read"])
    assert s["permissions"] == ["health:read", "logs:read", "usage:read"]
    reply = eventually(lambda: (r := creds.call(s["token"])).status != 401 and r, 10, "the session in force")
    err = _refused(reply, 403, "scope.denied")
    assert "gateway:call" in err["message"]
    # and a session can never be widened beyond its maker
    narrow = creds.cp.client("acme").post(
        "/v1/keys", {"name": "no-calls", "scope": {"permissions": ["sessions:write", "usage:read"]}}
    )
    wide = CP(creds.cp.url, narrow.json()["secret"]).post("/v1/sessions", {"permissions": ["gateway:call"]})
    assert wide.status == 403 and "gateway:call" in wide.json()["error"]["message"]


# -- workspace JWTs ----------------------------------------------------------------------------


def test_jwt_calls_through_both_sdks_with_receipts_naming_its_subject(creds):
    token = _jwt(creds, sub="svc-reporting")
    for receipt in _sdk_calls(creds, token):
        assert receipt["decision"]["allow"] and receipt["workspace"] == "acme"
        assert receipt["credential"] == "jwt:svc-reporting" and receipt["key_id"] is None


def test_jwt_signed_by_an_unknown_key_is_401(creds):
    attacker = ec.generate_private_key(ec.SECP256R1())
    claims = {"iss": ISSUER, "aud": "relaygate", "sub": "x", "workspace": "acme", "exp": int(time.time()) + 300}
    forged = jwt.encode(claims, attacker, algorithm="ES256", headers={"kid": "k1"})  # a known kid, a wrong key
    _refused(creds.call(forged), 401, "auth.unauthenticated")


def test_jwt_with_alg_none_is_401(creds):
    claims = {"iss": ISSUER, "aud": "relaygate", "sub": "x", "workspace": "acme", "exp": int(time.time()) + 300}
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "k1"})
    err = _refused(creds.call(unsigned), 401, "auth.unauthenticated")
    assert "algorithm" in err["message"]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_jwt_hs256_keyed_with_the_issuers_public_key_is_401(creds):
    """Algorithm confusion: HMAC with the public key (which anyone can fetch) as the secret."""
    pem = (
        creds.keys["k1"][0]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    claims = {"iss": ISSUER, "aud": "relaygate", "sub": "x", "workspace": "acme", "exp": int(time.time()) + 300}
    payload = _b64(json.dumps(claims).encode())
    for secret in (pem, json.dumps(creds.keys["k1"][1]).encode()):
        sig = _b64(hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        _refused(creds.call(f"{header}.{payload}.{sig}"), 401, "auth.unauthenticated")


def test_expired_jwt_is_401(creds):
    err = _refused(creds.call(_jwt(creds, exp=int(time.time()) - 120)), 401, "auth.unauthenticated")
    assert "expired" in err["message"]


def test_jwt_from_an_untrusted_issuer_is_401(creds):
    attacker = ec.generate_private_key(ec.SECP256R1())
    claims = {"iss": "https://evil.test", "aud": "relaygate", "sub": "x", "workspace": "acme"}
    token = jwt.encode({**claims, "exp": int(time.time()) + 300}, attacker, algorithm="ES256", headers={"kid": "k1"})
    err = _refused(creds.call(token), 401, "auth.unauthenticated")
    assert "not trusted" in err["message"]


def test_jwt_naming_another_workspace_than_the_path_is_403(creds):
    err = _refused(creds.call(_jwt(creds, workspace="euro")), 403, "scope.denied")
    assert "not valid for this workspace" in err["message"]


def test_jwt_without_its_workspace_claim_is_401(creds):
    err = _refused(creds.call(_jwt(creds, workspace=None)), 401, "auth.unauthenticated")
    assert "names no workspace" in err["message"]


def test_jwt_without_gateway_call_or_read_only_may_not_call(creds):
    _refused(creds.call(_jwt(creds, role="read_only")), 403, "scope.denied")
    _refused(creds.call(_jwt(creds, permissions=["usage:read"])), 403, "scope.denied")
    assert creds.call(_jwt(creds, permissions=["gateway:call"])).status == 200


def test_jwt_is_held_to_its_workspaces_budgets(creds):
    """No key, so no per-key budget; the workspace's budgets apply (tiny: 50 tokens a day)."""
    err = _refused(creds.call(_jwt(creds, workspace="tiny"), ws="tiny"), 429, "budget.exceeded")
    assert "tiny-daily" in err["message"]


def test_jwt_claims_narrow_its_models(creds):
    token = _jwt(creds, models=["gpt-4o"])
    assert creds.call(token, model="gpt-4o").status == 200
    _refused(creds.call(token, model="gpt-4o-mini"), 403, "scope.denied")


def test_session_made_from_a_jwt_keeps_its_claims_narrowing_and_has_no_key(creds):
    token = _jwt(creds, sub="svc-narrow", models=["gpt-4o"])
    made = CP(creds.cp.url, token).post("/v1/sessions", {})
    assert made.status == 201, made.text
    s = made.json()["token"]
    reply = eventually(lambda: (r := creds.call(s, model="gpt-4o")).status == 200 and r, 10, "the session in force")
    receipt = creds.gw.receipt_doc(reply.receipt_id)
    assert receipt["credential"] == f"session:{_sid(s)}" and receipt["key_id"] is None
    _refused(creds.call(s, model="gpt-4o-mini"), 403, "scope.denied")  # never wider than the JWT


def test_bundle_ships_issuers_with_public_keys_only(creds):
    issuers = {i["issuer"]: i for i in creds.bundle_config()["auth"]["jwt_issuers"]}
    assert set(issuers) == {ISSUER, ROTATING, CLERK, CLERK_STRICT}
    assert issuers[ISSUER]["jwks_url"].endswith("/issuer.json") and "jwks" not in issuers[ISSUER]
    assert issuers[CLERK]["audience"] is None and issuers[CLERK]["workspace_claim"] == "o.id"
    assert issuers[CLERK_STRICT]["audience"] == "relaygate"
    for jwk in issuers[CLERK]["jwks"]["keys"]:  # the jwks_file, inlined: public halves only
        assert jwk == creds.keys["c1"][1] and "d" not in jwk


def test_jwks_rotation_new_kid_accepted_after_one_refetch(creds):
    path = "/rotating.json"
    assert creds.call(_jwt(creds, "r1", iss=ROTATING)).status == 200
    before = creds.jwks.count(path)
    assert before >= 1
    creds.jwks.docs[path] = {"keys": [creds.keys["r2"][1]]}  # the issuer rotates: r1 retired, r2 signs
    token = _jwt(creds, "r2", iss=ROTATING)
    eventually(lambda: creds.call(token).status == 200, REFETCH + 10, "the rotated key accepted")
    assert creds.jwks.count(path) == before + 1  # exactly one refetch found the new key
    # known kids never fetch
    for _ in range(5):
        assert creds.call(token).status == 200
    assert creds.jwks.count(path) == before + 1
    # the retired key is gone with the refetch
    _refused(creds.call(_jwt(creds, "r1", iss=ROTATING)), 401, "auth.unauthenticated")


def _forged_flood(creds, iss: str, n: int) -> float:
    """``n`` tokens with random kids, 8 at a time; every one refused. Returns the seconds it took."""
    attacker = ec.generate_private_key(ec.SECP256R1())
    claims = {"iss": iss, "aud": "relaygate", "sub": "x", "workspace": "acme", "exp": int(time.time()) + 300}
    tokens = [
        jwt.encode(claims, attacker, algorithm="ES256", headers={"kid": f"forged-{uuid.uuid4().hex}"}) for _ in range(n)
    ]
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(creds.call, tokens))
    for r in replies:
        _refused(r, 401, "auth.unauthenticated")
    return time.monotonic() - started


def test_flood_of_forged_kids_fetches_jwks_at_most_once_per_refetch_interval(creds):
    # An issuer refetching at most hourly, its keys cached: a flood fetches nothing.
    assert creds.call(_jwt(creds)).status == 200
    before = creds.jwks.count("/issuer.json")
    _forged_flood(creds, ISSUER, 60)
    assert creds.jwks.count("/issuer.json") == before
    assert creds.call(_jwt(creds)).status == 200  # the real key still works
    # An issuer refetching at most every REFETCH seconds: at most one fetch per interval.
    before = creds.jwks.count("/rotating.json")
    took = _forged_flood(creds, ROTATING, 60)
    fetched = creds.jwks.count("/rotating.json") - before
    assert fetched <= took // REFETCH + 1, (fetched, took)


def test_clerk_style_token_without_aud_and_with_nested_org_id(creds):
    token = _clerk(creds)
    reply = creds.call(token)
    assert reply.status == 200, reply.body
    assert creds.gw.receipt_doc(reply.receipt_id)["credential"] == "jwt:user_2abc"
    _refused(creds.call(token, ws="euro"), 403, "scope.denied")  # o.id names acme
    _refused(creds.call(_clerk(creds, o={"rol": "admin"})), 401, "auth.unauthenticated")  # no o.id
    # the issuer that requires the default audience refuses the same token
    err = _refused(creds.call(_clerk(creds, iss=CLERK_STRICT)), 401, "auth.unauthenticated")
    assert "aud" in err["message"]
    # and the control plane agrees, with the same code
    assert CP(creds.cp.url, token).get("/v1/policies").status == 200
    assert CP(creds.cp.url, _clerk(creds, iss=CLERK_STRICT)).get("/v1/policies").status == 401


def test_relay_goes_through_the_gateway_with_a_session_or_a_jwt(creds):
    """/api/relay calls the gateway with the caller's own credential: a session token and a JWT
    relay too, their receipts naming them (as their direct calls do)."""
    s = _session(creds)
    eventually(lambda: creds.call(s["token"]).status == 200, 10, "the session reaching the gateway")
    body = {"to": "gpt-4o-mini", "payload": {"max_tokens": 5, "messages": [{"role": "user", "content": "relay"}]}}
    for token, named in ((s["token"], f"session:{_sid(s['token'])}"), (_jwt(creds), "jwt:svc-reporting")):
        r = CP(creds.cp.url, token, "x-api-key").post("/api/relay", body)
        assert r.status == 200, r.text
        out = r.json()
        assert out["status_code"] == 200 and out["receipt_id"], out
        assert creds.gw.receipt_doc(out["receipt_id"])["credential"] == named
    # a session without gateway:call may not relay (the control plane refuses it as the gateway would)
    ro = _session(creds, permissions=["usage:read"])
    refused = CP(creds.cp.url, ro["token"], "x-api-key").post("/api/relay", body)
    assert refused.status == 403, refused.text
