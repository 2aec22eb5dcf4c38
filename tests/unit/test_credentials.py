"""Session tokens and workspace JWTs in the decision library and the shared JWT core
(relaygate/contract/jwtauth.py), driven with plain values: the sidecar's own checks, by its own
clock, without a control plane. tests/system/test_gateway_credentials.py runs them end to end."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from dataclasses import replace

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from relaygate.contract import config as config_mod
from relaygate.contract import jwtauth
from relaygate.contract import keys as keyfmt
from relaygate.contract.config import ApiKey
from relaygate.decision import gate
from relaygate.decision.admission import Admission, Refused
from tests.unit.snapshot import build, headers


def _pair(kid: str):
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=kid, alg="ES256", use="sig")
    return key, jwk


# -- the shared JWT core -----------------------------------------------------------------------


def test_claim_paths_reach_nested_claims_and_dotted_names():
    claims = {"o": {"id": "acme", "rol": "admin"}, "org_id": "org_1", "https://x.example/ws": "euro"}
    assert jwtauth.claim_at(claims, "o.id") == "acme"
    assert jwtauth.claim_at(claims, "org_id") == "org_1"
    assert jwtauth.claim_at(claims, "https://x.example/ws") == "euro"  # a claim named with dots, whole
    assert jwtauth.claim_at(claims, "o.missing") is None and jwtauth.claim_at(claims, "org_id.x") is None


def test_issuer_config_refuses_symmetric_and_none_algorithms_and_keeps_the_default_audience():
    base = {"issuer": "https://i.test", "jwks": {"keys": [_pair("a")[1]]}}
    assert jwtauth.parse_issuer(base, "x").audience == "relaygate"  # existing configs: aud still required
    assert jwtauth.parse_issuer({**base, "audience": None}, "x").audience is None
    for algs in (["HS256"], ["none"], ["RS256", "HS512"]):
        with pytest.raises(jwtauth.IssuerConfigError, match="only asymmetric"):
            jwtauth.parse_issuer({**base, "algorithms": algs}, "x")
    for bad in ({"workspace_claim": "o..id"}, {"default_role": "admin"}, {"jwks_url": "file:///etc/passwd"}):
        with pytest.raises(jwtauth.IssuerConfigError):
            jwtauth.parse_issuer({**base, **bad}, "x")
    # the bundle document round-trips, and holds public keys only
    issuer = jwtauth.parse_issuer({**base, "workspace_claim": "o.id"}, "x")
    assert jwtauth.parse_issuer(issuer.document(), "x") == issuer
    assert all("d" not in k for k in issuer.document()["jwks"]["keys"])


def _issuer(jwk, **kw) -> jwtauth.Issuer:
    return jwtauth.parse_issuer({"issuer": "https://i.test", "jwks": {"keys": [jwk]}, **kw}, "test")


def _token(key, kid="a", **claims) -> str:
    base = {"iss": "https://i.test", "aud": "relaygate", "sub": "svc", "workspace": "acme"}
    base["exp"] = int(time.time()) + 300
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, key, algorithm="ES256", headers={"kid": kid})


def test_audience_is_required_unless_the_issuer_says_none():
    key, jwk = _pair("a")
    strict, lax = _issuer(jwk), _issuer(jwk, audience=None)
    no_aud = _token(key, aud=None)
    with pytest.raises(jwtauth.JwtRejected, match="aud"):
        jwtauth.verify(no_aud, [strict])
    assert jwtauth.verify(no_aud, [lax]).workspace == "acme"
    with pytest.raises(jwtauth.JwtRejected):
        jwtauth.verify(_token(key, aud="someone-else"), [strict])


def test_scope_claims_narrow_and_never_widen():
    key, jwk = _pair("a")
    p = jwtauth.verify(_token(key, endpoints=["messages", "admin"], models=["claude-*"]), [_issuer(jwk)])
    assert isinstance(p, jwtauth.JwtPrincipal)
    assert p.endpoints == ("messages",) and p.models == ("claude-*",)
    ro = jwtauth.verify(_token(key, role="read_only", permissions=["gateway:call"]), [_issuer(jwk)])
    assert isinstance(ro, jwtauth.JwtPrincipal) and "gateway:call" not in ro.permissions
    with pytest.raises(jwtauth.JwtRejected, match="role"):
        jwtauth.verify(_token(key, role="admin"), [_issuer(jwk)])


class _Jwks:
    def __init__(self, doc: dict) -> None:
        self.doc, self.hits = doc, 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.hits += 1
                time.sleep(0.05)  # a slow issuer: concurrent refreshes overlap
                body = json.dumps(outer.doc).encode()
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/jwks"


def test_unknown_kid_refetches_once_then_not_until_the_interval():
    key1, jwk1 = _pair("one")
    key2, jwk2 = _pair("two")
    server = _Jwks({"keys": [jwk1]})
    try:
        issuer = jwtauth.parse_issuer(
            {"issuer": "https://i.test", "jwks_url": server.url, "min_refetch_seconds": 3600}, "t"
        )
        first = jwtauth.verify(_token(key1, "one"), [issuer])
        assert isinstance(first, jwtauth.NeedKeys)  # nothing cached yet: the caller fetches off its loop
        threads = [threading.Thread(target=first.keyset.refresh) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert server.hits == 1  # ten concurrent refreshes, one fetch
        assert isinstance(jwtauth.verify(_token(key1, "one"), [issuer], refetch=False), jwtauth.JwtPrincipal)
        server.doc = {"keys": [jwk1, jwk2]}
        for i in range(20):  # unknown kids within the interval: refused at once, nothing fetched
            with pytest.raises(jwtauth.JwtRejected, match="unknown key"):
                jwtauth.verify(_token(key2, f"forged-{i}"), [issuer])
        assert server.hits == 1
    finally:
        server.httpd.shutdown()


def test_a_key_the_issuer_removed_stops_verifying_within_max_key_age_though_its_kid_is_known():
    """An attacker holds the private key of a signing key the issuer rotated out (it leaked). Its
    kid stays known to the gateway, so an unknown-kid refetch never happens: before max_key_age,
    tokens it signs (new ones, and one verified and cached while the key was current) kept
    verifying forever. Now the key set is fetched again once it is max_key_age old, and both are
    refused."""
    leaked, jwk_leaked = _pair("leaked")
    fresh, jwk_fresh = _pair("fresh")
    server = _Jwks({"keys": [jwk_leaked]})
    try:
        issuer = jwtauth.parse_issuer(
            {"issuer": "https://i.test", "jwks_url": server.url, "min_refetch_seconds": 3, "max_key_age_seconds": 3},
            "t",
        )

        def verify(token: str):
            got = jwtauth.verify(token, [issuer])
            if isinstance(got, jwtauth.NeedKeys):  # as the gateway does: fetch off its loop, then again
                got.keyset.refresh()
                got = jwtauth.verify(token, [issuer], refetch=False)
            return got

        cached = _token(leaked, "leaked", sub="cached")
        assert verify(cached).subject == "cached"
        assert server.hits == 1
        server.doc = {"keys": [jwk_fresh]}  # the issuer rotates the leaked key out
        assert verify(cached).subject == "cached"  # within max_key_age: no fetch (a known kid)
        assert server.hits == 1
        deadline = time.monotonic() + 10
        while server.hits == 1:  # once the keys are max_key_age old, the next token fetches them
            assert time.monotonic() < deadline, "the key set was never fetched again"
            try:
                verify(_token(leaked, "leaked", sub="minted"))
            except jwtauth.JwtRejected:
                break
            time.sleep(0.05)
        assert server.hits == 2
        for token in (cached, _token(leaked, "leaked", sub="minted-later")):
            with pytest.raises(jwtauth.JwtRejected, match="unknown key"):
                verify(token)
        assert verify(_token(fresh, "fresh", sub="new")).subject == "new"  # the current key verifies
        assert server.hits == 2  # and refusing the old one did not fetch again
    finally:
        server.httpd.shutdown()


def test_max_key_age_below_min_refetch_is_refused_at_start():
    with pytest.raises(jwtauth.IssuerConfigError, match="max_key_age_seconds"):
        jwtauth.parse_issuer(
            {
                "issuer": "https://i.test",
                "jwks_url": "https://i.test/jwks",
                "min_refetch_seconds": 60,
                "max_key_age_seconds": 10,
            },
            "t",
        )


def test_a_verified_token_is_answered_from_the_cache_only_while_it_would_still_verify():
    key, jwk = _pair("a")
    issuer = _issuer(jwk)
    token = _token(key)
    first = jwtauth.verify(token, [issuer])
    assert jwtauth.verify(token, [issuer]) is first  # the second call did not verify again
    # the same token under an issuer configured otherwise (another audience) is verified afresh
    with pytest.raises(jwtauth.JwtRejected, match="(?i)audience"):
        jwtauth.verify(token, [_issuer(jwk, audience="another")])
    # a token already past exp, still inside the leeway: accepted, then refused once the leeway
    # ends although the accepted principal sits in the cache
    leeway_end = int(time.time()) - jwtauth.LEEWAY_SECONDS + 2
    late = _token(key, exp=leeway_end, sub="late")
    assert jwtauth.verify(late, [issuer]).subject == "late"
    deadline = time.time() + 10
    while True:
        try:
            jwtauth.verify(late, [issuer])
        except jwtauth.JwtRejected as e:
            assert "expired" in str(e)
            assert time.time() >= leeway_end + jwtauth.LEEWAY_SECONDS - 1  # not before the leeway ended
            break
        assert time.time() < deadline, "a cached token outlived its exp plus the leeway"
        time.sleep(0.05)


def test_a_key_the_issuer_withdrew_stops_working_although_its_tokens_were_cached():
    """An attacker holding a token signed by a key the issuer has since removed from its JWKS (a
    leaked key, rotated out) must be refused as soon as the sidecar has fetched the new JWKS; the
    cache of verified tokens must not keep that key alive."""
    old_key, old_jwk = _pair("old")
    new_key, new_jwk = _pair("new")
    server = _Jwks({"keys": [old_jwk]})
    try:
        issuer = jwtauth.parse_issuer(
            {"issuer": "https://i.test", "jwks_url": server.url, "min_refetch_seconds": 1}, "t"
        )
        stolen = _token(old_key, "old", sub="attacker")
        pending = jwtauth.verify(stolen, [issuer])
        assert isinstance(pending, jwtauth.NeedKeys)
        pending.keyset.refresh()
        assert jwtauth.verify(stolen, [issuer], refetch=False).subject == "attacker"  # cached now
        server.doc = {"keys": [new_jwk]}  # the issuer rotates the leaked key out
        fresh = _token(new_key, "new", sub="svc")
        deadline = time.time() + 10
        while True:  # the new kid is unknown until a refetch is due (min_refetch after the last)
            try:
                if isinstance(jwtauth.verify(fresh, [issuer]), jwtauth.JwtPrincipal):
                    break
            except jwtauth.JwtRejected:
                pass
            pending.keyset.refresh()
            assert time.time() < deadline
            time.sleep(0.05)
        with pytest.raises(jwtauth.JwtRejected, match="unknown key"):
            jwtauth.verify(stolen, [issuer], refetch=False)
    finally:
        server.httpd.shutdown()


# -- the sidecar's admission of sessions and JWTs ----------------------------------------------


@pytest.fixture(scope="module")
def snap(tmp_path_factory):
    d = tmp_path_factory.mktemp("creds")
    adm, tokens = build(d)
    return adm, tokens, d


def _key_id(token: str) -> str:
    return token.split("_")[2]


def _with(adm: Admission, sessions=(), issuers=()) -> Admission:
    cfg = replace(adm.config, sessions={s.id: s for s in sessions}, jwt_issuers=tuple(issuers))
    return Admission(cfg, adm.engine, adm.ledger)


def _session(adm: Admission, sid: str, key: str | None, **kw) -> tuple[config_mod.Session, str]:
    secret, salt = keyfmt.random_string(32), "salt-" + sid
    s = config_mod.Session(
        id=sid,
        workspace=kw.pop("workspace", "acme"),
        salt=salt,
        hash=keyfmt.hash_secret(adm.config.pepper, salt, secret),
        key=key,
        kind=kw.pop("kind", "standard"),
        permissions=frozenset(kw.pop("permissions", ("gateway:call", "usage:read"))),
        parents=tuple(kw.pop("parents", ())),
        expires_at=kw.pop("expires_at", time.time() + 600),
    )
    return s, f"{keyfmt.SESSION_PREFIX}{sid}_{secret}"


def test_session_is_its_maker_key_narrowed_and_charged_to_its_budgets(snap):
    adm, tokens, _ = snap
    maker = _key_id(tokens["acme-limited"])
    s, token = _session(adm, "S00000000001", maker)
    a = _with(adm, [s])
    got = a.credential(token)
    assert isinstance(got, ApiKey)
    assert got.credential == "session:S00000000001" and got.key_id == maker and got.may_call
    # the maker's per-key budget applies to the session's calls
    assert "limited-key-monthly" in [b.id for b in a.config.budgets_for("acme", got)]
    # a forged secret, an unknown id, a malformed token
    assert isinstance(a.credential(token[:-3] + "xyz"), Refused)
    assert isinstance(a.credential(token.replace("S00000000001", "S00000000002")), Refused)
    assert isinstance(a.credential("ro_session_short_x"), Refused)


def test_session_ends_by_the_sidecars_own_clock_and_with_its_maker_and_parents(snap):
    adm, tokens, _ = snap
    maker = _key_id(tokens["acme"])
    expired, t_expired = _session(adm, "S00000000003", maker, expires_at=time.time() - 1)
    parent, _ = _session(adm, "S00000000004", maker, expires_at=time.time() - 1)
    child, t_child = _session(adm, "S00000000005", maker, parents=[parent.id])
    orphan, t_orphan = _session(adm, "S00000000006", maker, parents=["S0000000gone"])
    revoked_maker, t_revoked = _session(adm, "S00000000007", _key_id(tokens["revoked"]))
    other_ws, t_other = _session(adm, "S00000000008", maker, workspace="euro")
    a = _with(adm, [expired, parent, child, orphan, revoked_maker, other_ws])
    for t in (t_expired, t_child, t_orphan, t_revoked, t_other):
        assert isinstance(a.credential(t), Refused), t


def test_session_without_gateway_call_or_read_only_may_not_call(snap):
    adm, tokens, _ = snap
    maker = _key_id(tokens["acme"])
    narrow, t_narrow = _session(adm, "S00000000009", maker, permissions=("usage:read",))
    ro, t_ro = _session(adm, "S00000000010", maker, kind="read_only")
    of_ro_key, t_of_ro = _session(adm, "S00000000011", _key_id(tokens["acme-ro"]))
    a = _with(adm, [narrow, ro, of_ro_key])
    for t in (t_narrow, t_ro, t_of_ro):
        got = a.credential(t)
        assert isinstance(got, ApiKey) and not got.may_call
        _, v = _check(a, t)
        assert v is not None and (v.status, v.code) == (403, "scope.denied")


def _check(adm: Admission, token: str, workspace: str = "acme"):
    call = gate.Call(adm)
    v = gate.check_headers(call, headers(token, workspace=workspace), True)
    if v is not None and not isinstance(v, gate.Verdict):
        v = asyncio.run(v)
    return call, v


def test_jwt_principal_at_the_gateway_has_no_key_and_no_per_key_budget(snap):
    adm, _, _ = snap
    key, jwk = _pair("a")
    a = _with(adm, issuers=[_issuer(jwk)])
    call, v = _check(a, _token(key))
    assert v is None and call.key is not None
    assert call.key.credential == "jwt:svc" and call.key.key_id is None
    assert all(b.key is None for b in a.config.budgets_for("acme", call.key))
    _, v = _check(a, _token(key), workspace="euro")
    assert v is not None and (v.status, v.code) == (403, "scope.denied")
    _, v = _check(a, _token(key, exp=int(time.time()) - 120))
    assert v is not None and v.status == 401 and "expired" in v.message


def test_a_jwt_whose_key_must_be_fetched_is_decided_asynchronously(snap):
    adm, _, _ = snap
    key, jwk = _pair("k")
    server = _Jwks({"keys": [jwk]})
    try:
        issuer = jwtauth.parse_issuer(
            {"issuer": "https://i.test", "jwks_url": server.url, "min_refetch_seconds": 3600}, "t"
        )
        a = _with(adm, issuers=[issuer])
        call = gate.Call(a)
        pending = gate.check_headers(call, headers(_token(key, "k")), True)
        assert pending is not None and not isinstance(pending, gate.Verdict)  # an awaitable
        assert asyncio.run(pending) is None and call.key is not None and server.hits == 1
        # now cached: decided at once, no fetch
        call2 = gate.Call(a)
        assert gate.check_headers(call2, headers(_token(key, "k")), True) is None and server.hits == 1
    finally:
        server.httpd.shutdown()


def test_session_and_issuer_documents_parse_from_a_bundle(snap):
    _, tokens, d = snap
    _, jwk = _pair("a")
    docs, secrets = config_mod.read_documents(d)
    docs["sessions"] = {
        "sessions": [
            {
                "id": "S00000000012",
                "workspace": "acme",
                "salt": "s",
                "hash": "h",
                "key": _key_id(tokens["acme"]),
                "kind": "read_only",
                "permissions": ["gateway:call"],  # read_only holds its fixed set whatever it lists
                "parents": [],
                "expires_at": time.time() + 60,
            },
            {"id": "S00000000013", "workspace": "gone", "salt": "s", "hash": "h", "permissions": [], "expires_at": 1},
            {  # made from a JWT whose claims narrowed it
                "id": "S00000000014",
                "workspace": "acme",
                "salt": "s",
                "hash": "h",
                "key": None,
                "permissions": ["gateway:call"],
                "expires_at": time.time() + 60,
                "endpoints": ["messages", "bogus"],
                "models": ["claude-*"],
            },
        ]
    }
    docs["auth"] = {"jwt_issuers": [{"issuer": "https://i.test", "jwks": {"keys": [jwk]}, "audience": None}]}
    cfg = config_mod.from_documents(docs, secrets)
    assert sorted(cfg.sessions) == ["S00000000012", "S00000000014"]  # a deleted workspace's session is not live
    jwt_made = cfg.sessions["S00000000014"]
    assert jwt_made.endpoints == ("messages",) and jwt_made.models == ("claude-*",)
    assert "gateway:call" not in cfg.sessions["S00000000012"].permissions
    assert cfg.jwt_issuers[0].audience is None
    docs["auth"] = {"jwt_issuers": [{"issuer": "https://i.test", "jwks": {"keys": [jwk]}, "algorithms": ["HS256"]}]}
    with pytest.raises(config_mod.ConfigError, match="asymmetric"):
        config_mod.from_documents(docs, secrets)


# -- the control plane's issuer settings ---------------------------------------------------------


def test_control_plane_issuer_settings_audience_null_claim_path_and_refused_algorithms(tmp_path, monkeypatch):
    from relaygate.controlplane import settings as cp_settings

    monkeypatch.setenv("RELAYGATE_ADMIN_TOKEN", "a" * 32)
    monkeypatch.setenv("RELAYGATE_FLEET_TOKEN", "f" * 32)
    _, jwk = _pair("c1")
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    base = {"issuer": "https://clerk.test", "jwks_file": str(tmp_path / "jwks.json")}

    def load(issuers: list[dict]):
        (tmp_path / "cp.yaml").write_text(json.dumps({"jwt_issuers": issuers}))
        return cp_settings.load(["--config", str(tmp_path / "cp.yaml"), "--data-dir", str(tmp_path / "data")])

    s = load([{**base, "audience": None, "workspace_claim": "o.id"}, {**base, "issuer": "https://strict.test"}])
    clerk, strict = (i.contract() for i in s.jwt_issuers)
    assert clerk.audience is None and clerk.workspace_claim == "o.id" and clerk.jwks is not None
    assert strict.audience == "relaygate"  # the default stays required
    with pytest.raises(cp_settings.SettingsError, match="asymmetric"):
        load([{**base, "algorithms": ["HS256"]}])
    with pytest.raises(cp_settings.SettingsError, match="unknown fields"):
        load([{**base, "audiance": None}])
