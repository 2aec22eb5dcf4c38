"""The control-plane REST API on real storage: every module-level test runs on SQLite and PostgreSQL.

A real relaygate-controlplane process, seeded from a generated config
directory; clients are plain HTTP (requests). Covers auth modes (keys, sessions,
JWTs, admin and fleet tokens), workspace isolation, policies and their
versions, keys, budgets, workspaces, upstreams, audit pagination and receipt
ingestion, rate limits and error shapes.
"""

from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from relaygate.evidence.receipts import sign_receipt, verify_receipt
from relaygate.evidence.signing import Signer, key_id_for, load_public_key
from tests.conftest import start_controlplane
from tests.cpclient import CP, eventually

POLICY = """name: no-gpt-4o
description: gpt-4o is not approved here
rego: |
  package whatever
  import rego.v1
  deny contains "gpt-4o is not approved" if input.model == "gpt-4o"
"""


def _jwk_pair(kid: str):
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=kid, alg="ES256", use="sig")
    return key, jwk


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def cp(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cp")
    url = ""
    if request.param == "postgresql":
        pg = request.getfixturevalue("postgres")
        pg.reset_database()
        url = pg.url
    key, jwk = _jwk_pair("k1")
    (tmp / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    c = start_controlplane(tmp, url, ["--jwt-issuer", "https://issuer.test", "--jwks-file", str(tmp / "jwks.json")])
    c.jwt_key = key
    yield c
    c.stop()


def _jwt(cp, key=None, **claims):
    base = {
        "iss": "https://issuer.test",
        "aud": "relaygate",
        "sub": "svc-reporting",
        "workspace": "acme",
        "exp": int(time.time()) + 300,
    }
    base.update(claims)
    return jwt.encode(
        {k: v for k, v in base.items() if v is not None}, key or cp.jwt_key, algorithm="ES256", headers={"kid": "k1"}
    )


def _err(reply, status, code=None):
    assert reply.status == status, reply.text
    body = reply.json()
    assert body["request_id"].startswith("req_") and reply.headers["x-request-id"] == body["request_id"]
    if code:
        assert body["error"]["code"] == code, body
    return body


# -- authentication ------------------------------------------------------------------------


def test_missing_malformed_and_forged_credentials_are_401(cp):
    anon = CP(cp.url)
    body = _err(anon.get("/v1/policies"), 401, "auth.unauthenticated")
    assert "missing credentials" in body["error"]["message"]
    _err(anon.as_("ro_live_short").get("/v1/policies"), 401, "auth.unauthenticated")
    real = cp.tokens["acme"]
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    _err(anon.as_(forged).get("/v1/policies"), 401, "auth.unauthenticated")
    _err(anon.as_(cp.tokens["revoked"]).get("/v1/policies"), 401, "auth.unauthenticated")
    _err(anon.as_("ro_session_AAAAAAAAAAAA_nope").get("/v1/policies"), 401, "auth.unauthenticated")
    _err(anon.as_("not-a-token").get("/v1/policies"), 401)


def test_key_in_bearer_or_x_api_key_and_request_id_on_success(cp):
    for client in (cp.client("acme"), cp.client("acme", header="x-api-key")):
        r = client.get("/v1/policies")
        assert r.status == 200 and r.headers["x-request-id"].startswith("req_")
        assert {p["id"] for p in r.json()["policies"]} >= {"relaygate.scope", "relaygate.gateway"}


def test_read_only_key_reaches_health_usage_and_logs_only(cp):
    acme = cp.client("acme")
    created = acme.post("/v1/keys", {"name": "dashboard", "kind": "read_only"})
    assert created.status == 201
    ro = CP(cp.url, created.json()["secret"], "x-api-key")
    assert ro.get("/api/health").status == 200
    assert ro.get("/api/usage").status == 200
    assert ro.get("/api/logs").status == 200
    assert ro.get("/v1/audit/events").status == 200
    for reply in (
        ro.get("/v1/policies"),
        ro.post("/v1/keys", {"name": "x"}),
        ro.get("/api/discover"),
        ro.post("/api/relay", {"to": "gpt-4o-mini", "payload": {}}),
    ):
        assert "read-only" in _err(reply, 403, "auth.forbidden")["error"]["message"]


def test_sessions_expire_end_and_never_exceed_their_maker(cp):
    acme = cp.client("acme")
    s = acme.post("/v1/sessions", {"ttl_seconds": 600}).json()
    assert s["token"].startswith("ro_session_") and s["workspace"] == "acme"
    session = CP(cp.url, s["token"])
    assert session.get("/v1/policies").status == 200
    assert session.delete("/v1/sessions/current").status == 204
    _err(session.get("/v1/policies"), 401, "auth.unauthenticated")

    short = CP(cp.url, acme.post("/v1/sessions", {"ttl_seconds": 1}).json()["token"])
    assert short.get("/v1/policies").status == 200
    started = time.monotonic()
    reply = eventually(lambda: (r := short.get("/v1/policies")).status == 401 and r, 10, "session expiry")
    assert "expired" in reply.error["message"] and time.monotonic() - started < 10

    ro_key = acme.post("/v1/keys", {"name": "ro", "kind": "read_only"}).json()["secret"]
    _err(CP(cp.url, ro_key).post("/v1/sessions", {}), 403)  # read-only: health, usage, logs only
    narrow = acme.post(
        "/v1/keys", {"name": "narrow", "scope": {"permissions": ["policies:read", "sessions:write"]}}
    ).json()
    narrow_session = CP(cp.url, CP(cp.url, narrow["secret"]).post("/v1/sessions", {}).json()["token"])
    assert narrow_session.get("/v1/policies").status == 200
    _err(narrow_session.post("/v1/keys", {"name": "escalate"}), 403)


def test_workspace_jwt_valid_expired_forged_and_misdirected(cp):
    good = CP(cp.url, _jwt(cp))
    assert good.get("/v1/policies").status == 200
    assert good.post("/v1/policies", yaml=POLICY.replace("no-gpt-4o", "jwt-made")).status == 201
    _err(CP(cp.url, _jwt(cp, exp=int(time.time()) - 120)).get("/v1/policies"), 401)
    other, _ = _jwk_pair("k1")
    _err(CP(cp.url, _jwt(cp, key=other)).get("/v1/policies"), 401)  # forged: right kid, wrong key
    _err(CP(cp.url, _jwt(cp, aud="someone-else")).get("/v1/policies"), 401)
    _err(CP(cp.url, _jwt(cp, iss="https://evil.test")).get("/v1/policies"), 401)
    _err(CP(cp.url, _jwt(cp, workspace=None)).get("/v1/policies"), 401)
    _err(CP(cp.url, _jwt(cp, workspace="nope")).get("/v1/policies"), 401)
    ro = CP(cp.url, _jwt(cp, role="read_only"))
    assert ro.get("/api/usage").status == 200
    _err(ro.get("/v1/policies"), 403)


def test_admin_and_fleet_tokens_reach_only_their_endpoints(cp):
    assert {w["id"] for w in cp.admin.get("/v1/workspaces").json()["workspaces"]} >= {"acme", "euro"}
    assert [w["id"] for w in cp.client("euro").get("/v1/workspaces").json()["workspaces"]] == ["euro"]
    _err(cp.admin.get("/v1/keys"), 400)  # which workspace?
    assert cp.admin.get("/v1/keys", headers={"X-Relaygate-Workspace": "acme"}).status == 200
    _err(cp.admin.get("/v1/keys", headers={"X-Relaygate-Workspace": "ghost"}), 404)
    _err(cp.fleet.get("/v1/policies"), 403, "auth.forbidden")
    _err(cp.client("acme").get("/v1/fleet/bundles/default"), 403)
    _err(cp.client("acme").get("/v1/upstreams"), 403)


# -- isolation -------------------------------------------------------------------------------


def test_a_workspace_never_reads_or_changes_another_workspaces_data(cp):
    acme, euro = cp.client("acme"), cp.client("euro")
    pol = acme.post("/v1/policies", yaml=POLICY.replace("no-gpt-4o", "acme-private")).json()
    key = acme.post("/v1/keys", {"name": "acme-only"}).json()["key"]
    for reply in (
        euro.get(f"/v1/policies/{pol['id']}"),
        euro.put(f"/v1/policies/{pol['id']}", yaml=POLICY),
        euro.delete(f"/v1/policies/{pol['id']}"),
        euro.get(f"/v1/policies/{pol['id']}/versions"),
        euro.post(f"/v1/policies/{pol['id']}/dryrun", {"input": {}}),
        euro.get(f"/v1/keys/{key['id']}"),
        euro.post(f"/v1/keys/{key['id']}/revoke"),
        euro.get("/v1/workspaces/acme"),
        euro.get("/v1/budgets/limited-key-monthly"),
    ):
        _err(reply, 404)
    _err(euro.get("/v1/policies", headers={"X-Relaygate-Workspace": "acme"}), 403)
    assert pol["id"] not in {p["id"] for p in euro.get("/v1/policies").json()["policies"]}
    assert all(e["workspace"] == "euro" for e in euro.get("/v1/audit/events").json()["events"])
    assert acme.get(f"/v1/keys/{key['id']}").json()["revoked_at"] is None


# -- policies ---------------------------------------------------------------------------------


def test_policy_lifecycle_versions_and_soft_delete(cp):
    acme = cp.client("acme")
    created = acme.post("/v1/policies", yaml=POLICY.replace("no-gpt-4o", "lifecycle"))
    assert created.status == 201
    p = created.json()
    assert p["current_version"] == 1 and p["effect"] == {"status": 403, "code": "policy.blocked"}
    v2 = POLICY.replace("no-gpt-4o", "lifecycle").replace('"gpt-4o"', '"gpt-4o-mini"')
    updated = acme.put(f"/v1/policies/{p['id']}", yaml=v2).json()
    assert updated["current_version"] == 2 and '"gpt-4o-mini"' in updated["source"]
    staged = acme.put(f"/v1/policies/{p['id']}", yaml=v2.replace("mini", "nano"), params={"activate": "false"})
    assert staged.json()["current_version"] == 2
    versions = acme.get(f"/v1/policies/{p['id']}/versions").json()["versions"]
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert acme.get(f"/v1/policies/{p['id']}/versions/1").json()["source"] == POLICY.replace("no-gpt-4o", "lifecycle")
    assert acme.delete(f"/v1/policies/{p['id']}").status == 204
    _err(acme.get(f"/v1/policies/{p['id']}"), 404)
    assert p["id"] not in {x["id"] for x in acme.get("/v1/policies").json()["policies"]}
    listed = acme.get("/v1/policies", params={"include_deleted": "true"}).json()["policies"]
    assert next(x for x in listed if x["id"] == p["id"])["deleted_at"]
    assert acme.get(f"/v1/policies/{p['id']}/versions/2").status == 200  # history stays readable
    kinds = [e["kind"] for e in acme.get("/v1/audit/events", params={"policy": p["id"]}).json()["events"]]
    assert kinds == ["policy.version_added", "policy.updated", "policy.created"]


@pytest.mark.parametrize(
    "doc,line,column,fragment",
    [
        (
            'name: x\nrego: |\n  package p\n  import rego.v1\n  deny contains "r" if input.model == == 1\n',
            5,
            39,
            "expecting",
        ),
        ("name: [x\nrego: y\n", 2, 5, "invalid YAML"),
        ("name: x\nrego: |\n  import rego.v1\n  deny contains 1 if true\n", 3, 1, "package"),
        ("name: x\nrego: |\n  package p\n  import rego.v1\n  deny := 1\n", 3, 1, "set of reasons"),
        ("name: x\ncolour: blue\nrego: |\n  package p\n", 2, 9, "unknown field"),
        ("name: x\neffect: {status: 200}\nrego: |\n  package p\n", 2, 9, "400 to 499"),
    ],
)
def test_invalid_policy_is_rejected_with_line_and_column(cp, doc, line, column, fragment):
    body = _err(cp.client("acme").post("/v1/policies", yaml=doc), 400, "policy.invalid")
    assert fragment in body["error"]["message"]
    assert (body["error"]["details"]["line"], body["error"]["details"]["column"]) == (line, column)


def test_policy_body_type_duplicates_and_platform_policies(cp):
    acme = cp.client("acme")
    _err(acme.post("/v1/policies", raw=POLICY.encode(), content_type="text/plain"), 415)
    _err(acme.post("/v1/policies", raw=b"", content_type="application/yaml"), 400)
    assert acme.post("/v1/policies", yaml=POLICY.replace("no-gpt-4o", "dup")).status == 201
    _err(acme.post("/v1/policies", yaml=POLICY.replace("no-gpt-4o", "dup")), 409, "policy.exists")
    _err(acme.put("/v1/policies/relaygate.scope", yaml=POLICY), 403)
    _err(acme.delete("/v1/policies/relaygate.scope"), 403)
    assert acme.get("/v1/policies/relaygate.scope").json()["label"] == "1.0.0"


def test_dry_run_uses_the_data_plane_engine_without_enforcing(cp):
    acme = cp.client("acme")
    p = acme.post("/v1/policies", yaml=POLICY.replace("no-gpt-4o", "dry")).json()
    run = lambda body: acme.post(f"/v1/policies/{p['id']}/dryrun", body)  # noqa: E731
    blocked = run({"request": {"endpoint": "chat.completions", "body": {"model": "gpt-4o", "messages": []}}}).json()
    assert blocked["enforced"] is False and blocked["decision"]["code"] == "policy.blocked"
    assert f"{p['id']}@1" in blocked["decision"]["policies"] and blocked["input"]["model"] == "gpt-4o"
    allowed = run({"request": {"endpoint": "chat.completions", "body": {"model": "gpt-4o-mini"}}}).json()
    assert allowed["decision"]["allow"] and allowed["decision"]["upstream"] == "openai-us"
    acme.put(f"/v1/policies/{p['id']}", yaml=POLICY.replace("no-gpt-4o", "dry").replace('"gpt-4o"', '"gpt-4o-mini"'))
    old = run({"version": 1, "request": {"endpoint": "chat.completions", "body": {"model": "gpt-4o"}}}).json()
    assert old["decision"]["code"] == "policy.blocked" and old["policy"]["version"] == 1
    doc = dict(blocked["input"], workspace={"id": "euro", "allowed_jurisdictions": [], "allowed_regions": []})
    as_input = run({"version": 1, "input": doc}).json()
    assert as_input["input"]["workspace"]["id"] == "acme"  # a dry run only sees its own workspace
    assert as_input["decision"]["code"] == "policy.blocked"
    _err(run({}), 400)
    _err(run({"request": {"endpoint": "chat.completions", "body": {"model": 7}}}), 400, "request.invalid")
    platform = acme.post(
        "/v1/policies/relaygate.sovereignty/dryrun",
        {"request": {"endpoint": "embeddings", "body": {"model": "text-embedding-3-small", "input": "x"}}},
    )
    assert platform.status == 200 and platform.json()["decision"]["allow"]
    assert "relaygate.sovereignty@1.0.0" in platform.json()["decision"]["policies"]


# -- keys ---------------------------------------------------------------------------------------


def test_keys_create_once_list_rotate_revoke_and_no_escalation(cp):
    acme = cp.client("acme")
    created = acme.post(
        "/v1/keys",
        {
            "name": "ci",
            "scope": {
                "endpoints": ["embeddings"],
                "models": ["gpt-4o*"],
                "permissions": ["policies:read", "keys:write"],
            },
        },
    )
    assert created.status == 201
    secret, key = created.json()["secret"], created.json()["key"]
    assert secret.startswith(f"ro_live_{key['id']}_")
    listed = acme.get("/v1/keys").text
    assert secret.split("_")[-1] not in listed and key["id"] in listed
    limited = CP(cp.url, secret)
    assert limited.get("/v1/policies").status == 200
    _err(limited.post("/v1/policies", yaml=POLICY), 403)
    _err(limited.post("/v1/keys", {"name": "wider", "scope": {"permissions": ["*"]}}), 403)  # more than it holds
    inherited = limited.post("/v1/keys", {"name": "inherits"}).json()["key"]["scope"]  # omitted: the caller's own
    assert inherited == {
        "endpoints": ["embeddings"],
        "models": ["gpt-4o*"],
        "permissions": ["keys:write", "policies:read"],
    }
    assert limited.post("/v1/keys", {"name": "same", "scope": {"permissions": ["policies:read"]}}).status == 201

    rotated = acme.post(f"/v1/keys/{key['id']}/rotate", {}).json()
    assert rotated["key"]["scope"] == key["scope"]
    _err(limited.get("/v1/policies"), 401)
    assert CP(cp.url, rotated["secret"]).get("/v1/policies").status == 200
    assert acme.get(f"/v1/keys/{key['id']}").json()["rotated_to"] == rotated["key"]["id"]
    _err(acme.post(f"/v1/keys/{key['id']}/rotate", {}), 409)

    graceful = acme.post("/v1/keys", {"name": "grace"}).json()
    new = acme.post(f"/v1/keys/{graceful['key']['id']}/rotate", {"grace_seconds": 3600}).json()
    assert CP(cp.url, graceful["secret"]).get("/v1/policies").status == 200  # still inside its grace period
    assert CP(cp.url, new["secret"]).get("/v1/policies").status == 200
    revoked = acme.post(f"/v1/keys/{new['key']['id']}/revoke").json()
    assert revoked["revoked_at"]
    _err(CP(cp.url, new["secret"]).get("/v1/policies"), 401)
    _err(acme.post("/v1/keys", {"kind": "superuser"}), 400, "invalid_request")


# -- workspaces, upstreams, budgets -----------------------------------------------------------


def test_workspaces_upstreams_and_budgets(cp):
    created = cp.admin.post(
        "/v1/workspaces",
        {"id": "newco", "sovereignty": {"allowed_jurisdictions": ["eea"]}, "limits": {"tokens_per_minute": 5000}},
    )
    assert created.status == 201 and created.json()["limits"]["tokens_per_minute"] == 5000
    _err(cp.admin.post("/v1/workspaces", {"id": "newco"}), 409)
    _err(cp.admin.post("/v1/workspaces", {"id": "bad id!"}), 400)
    _err(cp.client("acme").post("/v1/workspaces", {"id": "mine"}), 403)
    upd = cp.admin.put("/v1/workspaces/newco", {"relay": {"fallbacks": {"gpt-4o": ["gpt-4o-mini"]}}}).json()
    assert upd["relay"]["fallbacks"] == {"gpt-4o": ["gpt-4o-mini"]} and upd["limits"]["tokens_per_minute"] == 5000

    spec = {
        "name": "openai-extra",
        "provider": "openai",
        "address": "127.0.0.1:9",
        "region": "eu-central-1",
        "jurisdiction": "eu",
        "credential": "openai",
        "models": {"gpt-4o-mini": {"input_per_1k": 0.1}},
    }
    _err(cp.admin.post("/v1/upstreams", {**spec, "credential": "nope"}), 400)
    assert cp.admin.post("/v1/upstreams", spec).status == 201
    _err(cp.admin.post("/v1/upstreams", spec), 409)
    _err(cp.admin.put("/v1/upstreams/openai-extra", {**spec, "name": "other"}), 400)
    assert cp.admin.put("/v1/upstreams/openai-extra", {**spec, "region": "eu-west-3"}).json()["region"] == "eu-west-3"
    assert cp.admin.delete("/v1/upstreams/openai-extra").status == 204
    _err(cp.admin.get("/v1/upstreams/openai-extra"), 404)

    acme = cp.client("acme")
    b = acme.post("/v1/budgets", {"id": "acme-monthly", "unit": "usd", "window": "month", "limit": 12.5})
    assert b.status == 201 and b.json()["limit"] == 12.5
    _err(acme.post("/v1/budgets", {"id": "acme-monthly", "unit": "usd", "window": "month", "limit": 1}), 409)
    _err(acme.post("/v1/budgets", {"id": "x", "unit": "eur", "window": "month", "limit": 1}), 400)
    _err(
        acme.post(
            "/v1/budgets",
            {"id": "y", "unit": "usd", "window": "day", "limit": 1, "key_id": cp.tokens["euro"].split("_")[2]},
        ),
        400,
    )
    assert acme.put("/v1/budgets/acme-monthly", {"limit": 20}).json()["limit"] == 20
    assert acme.delete("/v1/budgets/acme-monthly").status == 204
    _err(acme.get("/v1/budgets/acme-monthly"), 404)
    assert cp.admin.delete("/v1/workspaces/newco").status == 204
    _err(cp.admin.get("/v1/workspaces/newco"), 404)


# -- audit: ingestion and pagination ------------------------------------------------------------


def _receipt(rid: str, signer: Signer, **over) -> dict:
    r = {
        "version": 1,
        "id": rid,
        "status": "complete",
        "sidecar": "test-sidecar",
        "started_at": "2026-03-01T10:00:00.000Z",
        "issued_at": "2026-03-01T10:00:01.000Z",
        "workspace": "acme",
        "key_id": "KEYKEYKEYKEY",
        "request": {
            "endpoint": "chat.completions",
            "path": "/v1/acme/chat/completions",
            "stream": False,
            "digest": "sha256:00",
            "bytes": 10,
            "user": "alice",
        },
        "decision": {
            "allow": True,
            "status": 200,
            "code": "ok",
            "reasons": [],
            "bundle": "r1",
            "policies": ["relaygate.gateway@1.0.0", "relaygate.scope@1.0.0"],
        },
        "model": {"requested": "gpt-4o-mini", "served": "gpt-4o-mini"},
        "upstream": {"name": "openai-us", "provider": "openai", "region": "us-east-1", "jurisdiction": "us"},
        "response": {"status": 200, "flags": "", "bytes": 100},
        "usage": {"input_tokens": 5, "output_tokens": 7, "source": "response"},
        "cost": {"usd_micros": 12},
        "latency_us": 2500,
        "prev_hash": "sha256:" + "0" * 64,
    }
    r.update(over)
    return sign_receipt(r, signer)[0]


def _registration(instance: str, **extra) -> tuple[dict, Signer]:
    """A sidecar's registration body, with its proof of possession, and its signer."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from relaygate.evidence import custody

    k = Ed25519PrivateKey.generate()
    signer = Signer(k, key_id_for(k.public_key()))
    proof = custody.sign_event(
        custody.event(
            "key.registered", instance, "receipts", signer, time.time() - 86400 * 365, event_id=f"cust_{instance}"
        ),
        signer,
    )
    body = {
        "instance_id": instance,
        "tenant": "default",
        "zone": "z1",
        "version": "test",
        "grpc_address": "unix:/dev/null",
        "signing_key": {"key_id": signer.key_id, "public_key": signer.public_pem().decode(), "proof": proof},
        **extra,
    }
    return body, signer


def _register(cp, instance: str) -> Signer:
    body, signer = _registration(instance)
    proof = body["signing_key"].pop("proof")
    assert cp.fleet.post("/v1/fleet/instances", body).status == 400  # no proof of possession
    body["signing_key"]["proof"] = proof
    reply = cp.fleet.post("/v1/fleet/instances", body, headers={"X-Relaygate-Instance": instance})
    assert reply.status == 200, reply.text
    return signer


def test_a_registration_whose_key_has_an_algorithm_nobody_knows_is_a_400(cp):
    """The fleet token's holder registers a key whose SubjectPublicKeyInfo names an unknown
    algorithm: cryptography raises UnsupportedAlgorithm (not a ValueError), which was a 500."""
    from relaygate.evidence import custody
    from tests.unit.test_evidence_verify_malformed import _unknown_key_pem

    body, signer = _registration("sidecar-oddkey")
    doc = custody.event("key.registered", "sidecar-oddkey", "receipts", signer, time.time(), event_id="cust_oddkey")
    doc["public_key"] = _unknown_key_pem()
    body["signing_key"]["public_key"] = doc["public_key"]
    body["signing_key"]["proof"] = custody.sign_event(doc, signer)
    reply = cp.fleet.post("/v1/fleet/instances", body, headers={"X-Relaygate-Instance": "sidecar-oddkey"})
    _err(reply, 400, "invalid_request")


def test_a_sidecar_registers_where_it_answers_ext_authz_and_only_an_address_envoy_can_dial(cp):
    """Envoy dials what the sidecar registered: only an absolute socket path (a relative one would
    resolve against Envoy's working directory, not the sidecar's) or host:port; no control bytes."""
    for bad in ("unix:var/authz.sock", "unix:/tmp/a\nb", "policy", "http://127.0.0.1:80", "a:b:c", ""):
        body, _ = _registration("sidecar-authz-bad", authz_address=bad)
        reply = cp.fleet.post("/v1/fleet/instances", body, headers={"X-Relaygate-Instance": "sidecar-authz-bad"})
        assert reply.status == 400 and "authz_address" in reply.text, (bad, reply.status, reply.text)
    body, _ = _registration("sidecar-authz", authz_address="unix:/run/relaygate/authz.sock")
    reply = cp.fleet.post("/v1/fleet/instances", body, headers={"X-Relaygate-Instance": "sidecar-authz"})
    assert reply.status == 200 and reply.json()["authz_address"] == "unix:/run/relaygate/authz.sock", reply.text
    [inst] = [i for i in cp.admin.get("/v1/fleet/instances").json()["instances"] if i["id"] == "sidecar-authz"]
    assert inst["authz_address"] == "unix:/run/relaygate/authz.sock"


def test_receipt_ingestion_is_idempotent_verified_and_filterable(cp):
    signer = _register(cp, "sidecar-a")
    envs = [_receipt(f"rcpt_ingest{i}", signer, started_at=f"2026-03-01T10:00:0{i}.000Z") for i in range(5)]
    envs.append(
        _receipt(
            "rcpt_ingest_deny",
            signer,
            decision={
                "allow": False,
                "status": 451,
                "code": "sovereignty.blocked",
                "reasons": ["no"],
                "bundle": "r1",
                "policies": ["relaygate.sovereignty@1.0.0"],
            },
            upstream=None,
            response=None,
        )
    )
    post = lambda batch: cp.fleet.post("/v1/fleet/receipts", {"instance_id": "sidecar-a", "receipts": batch})  # noqa
    assert post(envs).json() == {"accepted": 6, "duplicates": 0, "rejected": [], "deferred": []}
    assert post(envs[:3]).json() == {"accepted": 0, "duplicates": 3, "rejected": [], "deferred": []}
    # One batch: a stored receipt, a new one sent twice, one citing a policy id at two versions.
    twice = _receipt("rcpt_ingest_twice", signer)
    cites = _receipt(
        "rcpt_ingest_cites",
        signer,
        decision={
            "allow": True,
            "status": 200,
            "code": "ok",
            "reasons": [],
            "bundle": "r1",
            "policies": ["pol_twoversions@2", "pol_twoversions@3", "relaygate.scope@1.0.0"],
        },
    )
    assert post([envs[4], twice, twice, cites]).json() == {
        "accepted": 2,
        "duplicates": 2,
        "rejected": [],
        "deferred": [],
    }
    events = cp.client("acme").get("/v1/audit/events", params={"policy": "pol_twoversions"}).json()["events"]
    assert [(e["id"], e["policies"]) for e in events] == [
        ("rcpt_ingest_cites", ["pol_twoversions@2", "relaygate.scope@1.0.0"])
    ]

    import base64

    statement = json.loads(base64.b64decode(envs[0]["payload"]))
    statement["predicate"]["id"], statement["predicate"]["cost"]["usd_micros"] = "rcpt_tampered", 1
    tampered = {**envs[0], "payload": base64.b64encode(json.dumps(statement).encode()).decode()}
    other = _register(cp, "sidecar-b")
    result = post([tampered, _receipt("rcpt_wrong_instance", other), {"garbage": True}]).json()
    assert result["accepted"] == 0
    assert sorted(r["reason"].split(" ")[0] for r in result["rejected"]) == ["not", "signature", "signed"]
    # A signature naming no key id, or one that is not a string, is refused outright: not deferred
    # (which the sidecar would send again forever) and not a 500.
    odd = [
        {**envs[0], "signatures": [{**envs[0]["signatures"][0], "keyid": kid}]} for kid in (None, ["KEY"], {"k": 1}, 7)
    ] + [{**envs[0], "signatures": [{"sig": envs[0]["signatures"][0]["sig"]}]}]
    reply = post(odd)
    assert reply.status == 200, reply.text
    result = reply.json()
    assert result["accepted"] == 0 and result["deferred"] == [], result
    assert [r["reason"] for r in result["rejected"]] == ["not a signed receipt envelope"] * len(odd), result

    acme = cp.client("acme")
    assert len(acme.get("/v1/audit/events", params={"kind": "gateway.call", "user": "alice"}).json()["events"]) == 8
    denied = acme.get("/v1/audit/events", params={"decision": "deny", "kind": "gateway.call"}).json()["events"]
    assert [e["id"] for e in denied] == ["rcpt_ingest_deny"] and denied[0]["status"] == 451
    by_policy = acme.get("/v1/audit/events", params={"policy": "relaygate.sovereignty@1.0.0"}).json()["events"]
    assert [e["id"] for e in by_policy] == ["rcpt_ingest_deny"]
    ranged = acme.get(
        "/v1/audit/events",
        params={"from": "2026-03-01T10:00:01Z", "to": "2026-03-01T10:00:03Z", "kind": "gateway.call"},
    ).json()["events"]
    assert sorted(e["id"] for e in ranged) == ["rcpt_ingest1", "rcpt_ingest2"]
    assert acme.get(
        "/v1/audit/events", params={"model": "gpt-4o-mini", "key_id": "KEYKEYKEYKEY", "kind": "gateway.call"}
    ).json()["events"][0]["tokens"] == {"input": 5, "output": 7}
    full = acme.get("/v1/audit/events/rcpt_ingest3").json()
    assert verify_receipt(full["receipt"], load_public_key(signer.public_pem()))
    _err(cp.client("euro").get("/v1/audit/events/rcpt_ingest3"), 404)
    _err(acme.get("/v1/audit/events", params={"from": "yesterday"}), 400)
    _err(acme.get("/v1/audit/events", params={"cursor": "!!!"}), 400)


def test_a_signed_receipt_of_the_wrong_shape_is_rejected_alone_and_never_stalls_its_sidecar(cp):
    """A receipt its sidecar signed but with a field of the wrong type or size (a broken sidecar, or
    its key in the wrong hands): rejected with the field named, while the rest of its batch is
    stored. These answered 500 for the whole batch (on SQLite and PostgreSQL alike: an object where
    a string is due, a string where a number is, a list of non-strings as policies, an id longer
    than the column), and a sidecar resends a failed batch forever: every later receipt of it was
    stuck behind the one."""
    signer = _register(cp, "sidecar-shapes")
    decision = {"allow": True, "status": 200, "code": "ok", "reasons": [], "bundle": "r1", "policies": []}
    bad = {  # the change, and what the rejection names
        "id": ({"id": ["rcpt_list"]}, "'id' is not a string"),
        "long-id": ({"id": "rcpt_" + "x" * 200}, "'id' is not a string of 1 to 100 characters"),
        "started_at": ({"started_at": 1772359200}, "'started_at' is not a string"),
        "issued_at": ({"issued_at": ["2026-03-01T10:00:01.000Z"]}, "issued_at is not a time"),
        "workspace": ({"workspace": {"id": "acme"}}, "'workspace' is not a string"),
        "key_id": ({"key_id": 7}, "'key_id' is not a string"),
        "credential": ({"credential": ["jwt"]}, "'credential' is not a string"),
        "request.user": ({"request": {"endpoint": "chat.completions", "user": {"u": 1}}}, "'request.user'"),
        "model": ({"model": "gpt-4o-mini"}, "'model' is not an object"),
        "decision": ({"decision": ["allow"]}, "'decision' is not an object"),
        "decision.code": ({"decision": {**decision, "code": 403}}, "'decision.code'"),
        "decision.policies": ({"decision": {**decision, "policies": [{"id": "p"}]}}, "'decision.policies'"),
        "response.status": ({"response": {"status": "200"}}, "'status' is not an integer"),
        "usage.input_tokens": ({"usage": {"input_tokens": "5", "output_tokens": 7}}, "'usage.input_tokens'"),
        "usage.output_tokens": ({"usage": {"input_tokens": 5, "output_tokens": 1.5}}, "'usage.output_tokens'"),
        "cost": ({"cost": 12}, "'cost' is not an object"),
        "upstream.name": ({"upstream": {"name": ["openai-us"]}}, "'upstream.name'"),
        "seq": ({"seq": "1"}, "'seq' is not an integer"),
        "prev_hash": ({"prev_hash": {"h": 1}}, "'prev_hash' is not a string"),
    }
    batch = []
    for i, (over, _) in enumerate(bad.values()):
        over = dict(over)
        batch.append(_receipt(over.pop("id", f"rcpt_shape_{i}"), signer, sidecar="sidecar-shapes", **over))
        batch.append(_receipt(f"rcpt_shape_ok_{i}", signer, sidecar="sidecar-shapes"))
    post = lambda b: cp.fleet.post("/v1/fleet/receipts", {"instance_id": "sidecar-shapes", "receipts": b})  # noqa
    reply = post(batch)
    assert reply.status == 200, reply.text
    result = reply.json()
    assert result["accepted"] == len(bad) and result["duplicates"] == 0 and result["deferred"] == [], result
    reasons = [r["reason"] for r in result["rejected"]]
    assert len(reasons) == len(bad), reasons
    for field, (_, said) in bad.items():
        assert any(said in why for why in reasons), (field, reasons)
    assert post([_receipt("rcpt_shape_next", signer, sidecar="sidecar-shapes")]).json()["accepted"] == 1
    stored = {e["id"] for e in cp.admin.get("/v1/audit/events", params={"limit": 500}).json()["events"]}
    assert {f"rcpt_shape_ok_{i}" for i in range(len(bad))} | {"rcpt_shape_next"} <= stored
    assert not any(e.startswith("rcpt_shape_") and "ok" not in e and "next" not in e for e in stored), stored


def test_pagination_is_stable_while_events_arrive(cp):
    acme = cp.client("acme")
    for i in range(12):
        acme.post("/v1/keys", {"name": f"page-{i}"})
    pages, cursor = [], None
    while True:
        params = {"kind": "key.created", "limit": 5, **({"cursor": cursor} if cursor else {})}
        page = acme.get("/v1/audit/events", params=params).json()
        pages.append(page)
        if len(pages) == 1:  # events arriving between pages never shift or repeat later pages
            for i in range(4):
                acme.post("/v1/keys", {"name": f"late-{i}"})
        cursor = page["next_cursor"]
        if not cursor:
            break
    ids = [e["id"] for p in pages for e in p["events"]]
    assert len(ids) == len(set(ids))
    names = [e["detail"]["key_id"] for p in pages for e in p["events"]]
    all_created = [
        e["detail"]["key_id"]
        for e in acme.get("/v1/audit/events", params={"kind": "key.created", "limit": 1000}).json()["events"]
    ]
    late = set(all_created[:4])
    assert not late & set(names)  # newer events are not on older pages
    assert names == [k for k in all_created if k not in late]


# -- rate limit and error shapes ----------------------------------------------------------------


def test_control_plane_rate_limit_per_workspace_with_retry_after(cp):
    assert cp.admin.put("/v1/workspaces/tiny", {"limits": {"control_plane_rps": 2}}).status == 200
    tiny = cp.client("tiny")
    statuses = [tiny.get("/v1/policies") for _ in range(12)]
    limited = [r for r in statuses if r.status == 429]
    assert limited, [r.status for r in statuses]
    assert int(limited[0].headers["retry-after"]) >= 1
    assert limited[0].json()["error"]["code"] == "rate_limited"
    assert cp.client("acme").get("/v1/policies").status == 200  # other workspaces are unaffected


def test_error_shapes_for_bad_input(cp):
    acme = cp.client("acme")
    _err(acme.get("/v1/nowhere"), 404, "route.not_found")
    _err(acme.call("PATCH", "/v1/keys"), 405)
    _err(acme.post("/v1/keys", raw=b'{"name": ', content_type="application/json"), 400, "invalid_json")
    body = _err(acme.post("/v1/keys", {"name": 7}), 400, "invalid_request")
    assert body["error"]["details"]["parameter"] == "name"
    _err(acme.post("/v1/keys", raw=b"name=x", content_type="application/x-www-form-urlencoded"), 415)


def test_a_missing_field_is_named_as_the_relayplane_reference_does(cp):
    """RelayPlane's reference error: "Missing required parameter: to" with details.parameter "to",
    provided null, expected "string"; the same for every operation's required fields, nested too."""
    acme = cp.client("acme")
    body = _err(acme.post("/api/relay", {"payload": {"messages": []}}), 400, "invalid_request")
    assert body["error"]["message"] == "Missing required parameter: to"
    assert body["error"]["details"] == {"parameter": "to", "provided": None, "expected": "string"}
    body = _err(acme.post("/api/register", {"name": "x", "capability": "y"}), 400, "invalid_request")
    assert body["error"]["details"]["parameter"] == "endpoint"
    _err(acme.get("/api/discover", params={"limit": "lots"}), 400)
    _err(acme.post("/v1/keys", raw=b"x" * (9 * 1024 * 1024), content_type="application/json"), 413)
    assert CP(cp.url).get("/healthz").json() == {"status": "ok"}
    assert "relaygate_cp_requests_total" in CP(cp.url).get("/metrics").text


def test_the_audit_feed_filters_control_plane_changes_by_who_made_them(cp):
    """Each kind of credential (a key, a session it started, a workspace JWT, the admin token) makes
    a change; the feed finds each change by its actor and by the actor's kind, and a key of another
    workspace that names acme's actors finds none of acme's events (the workspace filter holds)."""
    acme = cp.client("acme")
    session = acme.post("/v1/sessions", {"ttl_seconds": 300}).json()
    admin = CP(cp.url, cp.stack.admin_token)
    admin.session.headers["X-Relaygate-Workspace"] = "acme"
    clients = {
        "key": acme,
        "session": CP(cp.url, session["token"]),
        "jwt": CP(cp.url, _jwt(cp, sub="svc-actor-test")),
        "admin": admin,
    }
    for who, client in clients.items():
        r = client.post("/v1/budgets", {"id": f"actor-{who}", "unit": "usd", "window": "month", "limit": 5})
        assert r.status == 201, (who, r.text)

    def budget_of(e):
        b = (e["detail"] or {}).get("budget")
        return b.get("id") if isinstance(b, dict) else b

    created = acme.get("/v1/audit/events", params={"kind": "budget.created", "limit": 200}).json()["events"]
    actor_of = {budget_of(e): e["actor"] for e in created}
    assert actor_of["actor-session"] == "session:" + session["token"].split("_")[2]  # ro_session_<id>_<secret>
    assert actor_of["actor-jwt"] == "jwt:svc-actor-test" and actor_of["actor-admin"] == "admin:admin"
    assert actor_of["actor-key"].startswith("key:")
    for who in clients:
        actor = actor_of[f"actor-{who}"]
        found = acme.get("/v1/audit/events", params={"actor": actor, "limit": 200}).json()["events"]
        assert found and all(e["actor"] == actor for e in found), (who, found)
        assert f"actor-{who}" in {budget_of(e) for e in found}
        kinds = acme.get("/v1/audit/events", params={"actor_kind": who, "limit": 200}).json()["events"]
        assert kinds and all(e["actor"].startswith(who + ":") for e in kinds), (who, kinds)
        assert not [e for e in kinds if budget_of(e) in {f"actor-{o}" for o in clients if o != who}]
    short = acme.get("/v1/audit/events", params={"actor": "admin", "kind": "budget.created"}).json()["events"]
    assert [budget_of(e) for e in short] == ["actor-admin"]
    # another tenant naming acme's actors sees none of acme's events
    euro = cp.client("euro")
    for actor in actor_of.values():
        seen = euro.get("/v1/audit/events", params={"actor": actor, "limit": 200}).json()["events"]
        assert all(e["workspace"] == "euro" for e in seen), seen
    _err(acme.get("/v1/audit/events", params={"actor_kind": "robot"}), 400, "invalid_request")
