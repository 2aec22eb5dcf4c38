"""Scope and tenancy against a key holder trying to get more than they were given (issue 11, items 2, 3, 6).

- Minting: a key with ``keys:write`` (or a session of one) tries to mint or rotate a key wider than
  itself on some dimension (endpoints, models, permissions, kind, expiry). The lattice behind the
  check (relaygate/contract/scope.py) is property-tested, with the model dimension judged by the gateway's own
  Rego module (policies/relaygate/scope.rego) through regorus.
- Gateway: a read-only (dashboard) key, or a standard key without ``gateway:call``, tries to spend
  provider money through Envoy directly and through ``/api/relay``; both refuse, and no request
  reaches the provider simulator.
- Sessions: a session made from a key tries to keep working (and minting) after its key was
  rotated, revoked or expired.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime

import pytest
import regorus
from hypothesis import HealthCheck, given, settings, strategies as st

from relaygate.contract import scope as sc
from relaygate.contract.scope import Scope, is_subset
from tests.conftest import POLICY_DIR, Gateway, ControlPlane, start_controlplane, start_full_stack
from tests.cpclient import CP, eventually
from tests.httpcall import chat_body, curl
from devstack.processes import Stack

# -- the lattice --------------------------------------------------------------------------------

_SCOPE_REGO = (POLICY_DIR / "relaygate" / "scope.rego").read_text()
_ENGINE = []


def rego_allows_model(patterns, model: str) -> bool:
    """The gateway's verdict on a model for a key with these patterns (scope.rego via regorus)."""
    if not _ENGINE:
        e = regorus.Engine()
        e.add_policy("scope.rego", _SCOPE_REGO)
        _ENGINE.append(e)
    e = _ENGINE[0]
    e.set_input_json(
        json.dumps(
            {
                "endpoint": "embeddings",
                "model": model,
                "principal": {"key_id": "k", "endpoints": ["embeddings"], "models": list(patterns)},
            }
        )
    )
    try:
        out = json.loads(e.eval_query_as_json("data.relaygate.scope.violations"))
    except RuntimeError:  # an invalid glob fails the call closed: not allowed
        return False
    return not out["result"][0]["expressions"][0]["value"]


# Patterns a key can hold: the API refuses globs with wildcards other than '*' (400).
PATTERN = st.text(alphabet="ab-.*?[]", min_size=1, max_size=6).filter(sc.valid_pattern)
MODEL = st.text(alphabet="ab-.*?[", max_size=7)
EXPIRY = st.one_of(st.none(), st.integers(0, 10))


@st.composite
def scopes(draw):
    kind = draw(st.sampled_from(sc.KINDS))
    listed = draw(
        st.one_of(
            st.none(), st.just(["*"]), st.lists(st.sampled_from(sc.WORKSPACE_PERMISSIONS + ("relay",)), max_size=6)
        )
    )
    return Scope(
        kind=kind,
        permissions=sc.effective_permissions(kind, listed),
        endpoints=frozenset(draw(st.lists(st.sampled_from(sc.ENDPOINTS), max_size=4))),
        models=tuple(draw(st.lists(st.one_of(st.just("*"), PATTERN), min_size=1, max_size=3))),
        expires_ms=draw(EXPIRY),
    )


@st.composite
def narrower(draw, parent: Scope):
    """A scope drawn inside ``parent`` by narrowing each dimension (how a careful minter would)."""
    kinds = [
        k
        for k in sc.KINDS
        if sc.KINDS.index(k) <= sc.KINDS.index(parent.kind)
        and (k == "standard" or parent.permissions >= set(sc.READ_ONLY_PERMISSIONS))
    ]
    kind = draw(st.sampled_from(kinds))
    perms = (
        frozenset(draw(st.lists(st.sampled_from(sorted(parent.permissions)), max_size=5)))
        if parent.permissions
        else frozenset()
    )
    if kind == "read_only":
        perms = frozenset(sc.READ_ONLY_PERMISSIONS)
    models = []
    for p in draw(st.lists(st.sampled_from(parent.models), min_size=1, max_size=3)):
        # replace a '*' by a literal run without '.', or keep the pattern as is
        if "*" in p and p != "*" and sc._SIMPLE.fullmatch(p) and draw(st.booleans()):
            p = p.replace("*", draw(st.text(alphabet="ab-", max_size=3)), 1)
        models.append(p)
    exp = parent.expires_ms
    exp = (
        draw(st.integers(0, 10))
        if exp is None and draw(st.booleans())
        else (None if exp is None else draw(st.integers(0, exp)))
    )
    return Scope(
        kind=kind,
        permissions=perms,
        endpoints=frozenset(draw(st.lists(st.sampled_from(sorted(parent.endpoints)), max_size=4)))
        if parent.endpoints
        else frozenset(),
        models=tuple(models),
        expires_ms=exp,
    )


TOP = Scope()
LATTICE = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@LATTICE
@given(scopes())
def test_lattice_is_reflexive_and_the_full_scope_is_its_top(s):
    assert is_subset(s, s)
    assert is_subset(s, TOP)
    if s != TOP and not is_subset(TOP, s):
        assert sc.excess(TOP, s)  # every refusal names the dimensions it exceeds on


@LATTICE
@given(st.data())
def test_lattice_is_transitive_and_narrowing_stays_inside(data):
    a = data.draw(scopes())
    b = data.draw(narrower(a))
    c = data.draw(narrower(b))
    assert is_subset(b, a) and is_subset(c, b)
    assert is_subset(c, a)
    # and on arbitrary triples whenever the premise happens to hold
    x, y, z = data.draw(scopes()), data.draw(scopes()), data.draw(scopes())
    if is_subset(x, y) and is_subset(y, z):
        assert is_subset(x, z)


@LATTICE
@given(scopes(), st.lists(st.one_of(st.just("*"), PATTERN), min_size=1, max_size=3))
def test_star_covers_every_model_and_only_star_covers_star(s, patterns):
    top_models = Scope(
        kind=s.kind, permissions=s.permissions, endpoints=s.endpoints, models=("*",), expires_ms=s.expires_ms
    )
    assert is_subset(s, top_models)
    wants_star = Scope(
        kind=s.kind, permissions=s.permissions, endpoints=s.endpoints, models=("*",), expires_ms=s.expires_ms
    )
    assert is_subset(wants_star, s) == ("*" in s.models)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.sampled_from(sc.WORKSPACE_PERMISSIONS), st.sampled_from(sc.ENDPOINTS), MODEL, st.integers(0, 12))
def test_every_call_a_subset_can_make_its_parent_can_make(data, permission, endpoint, model, at):
    """child ⊆ parent ⇒ (child allows a call ⇒ parent allows it); models judged by the gateway's Rego."""
    parent = data.draw(scopes())
    child = data.draw(st.one_of(narrower(parent), scopes()))  # narrowed, or arbitrary
    if not is_subset(child, parent):
        return
    assert sc.KINDS.index(child.kind) <= sc.KINDS.index(parent.kind)
    if child.allows(permission=permission, endpoint=endpoint, at_ms=at):
        assert parent.allows(permission=permission, endpoint=endpoint, at_ms=at)
    if rego_allows_model(child.models, model):
        assert rego_allows_model(parent.models, model), (child.models, parent.models, model)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), MODEL)
def test_narrowed_models_only_reach_models_the_parent_reaches(data, model):
    parent = data.draw(scopes())
    child = data.draw(narrower(parent))
    if rego_allows_model(child.models, model):
        assert rego_allows_model(parent.models, model), (child.models, parent.models, model)
    # the Python mirror agrees with the Rego module for simple patterns
    simple = [p for p in child.models if p == "*" or sc._SIMPLE.fullmatch(p)]
    assert sc.model_allowed(simple, model) == rego_allows_model(simple, model) or not simple


def test_keys_without_kind_or_permissions_in_yaml_may_call_and_read_only_ones_may_not():
    """Compatibility of key documents: absent kind/permissions = a standard key with every permission."""
    from relaygate.contract.config import parse_key

    base = {"id": "AAAAAAAAAAAA", "workspace": "acme", "salt": "s", "hash": "h"}
    assert parse_key(base, "k").may_call
    assert parse_key({**base, "scope": {"permissions": ["*"]}}, "k").may_call
    assert parse_key({**base, "scope": {"permissions": ["relay"]}}, "k").may_call  # the old name
    assert not parse_key({**base, "kind": "read_only"}, "k").may_call
    assert not parse_key({**base, "kind": "read_only", "scope": {"permissions": ["*"]}}, "k").may_call
    assert not parse_key({**base, "scope": {"permissions": ["policies:read"]}}, "k").may_call
    assert not parse_key({**base, "scope": {"permissions": []}}, "k").may_call


# -- a control plane driving a real gateway -----------------------------------------------------


class Full:
    def __init__(self, stack: Stack, tokens: dict) -> None:
        self.stack, self.tokens = stack, tokens
        self.gw = Gateway(stack, tokens)
        self.cp = ControlPlane(stack, tokens)

    def call(self, key: str, content: str, model: str = "gpt-4o-mini"):
        return curl(
            self.gw.base("acme") + "/chat/completions",
            chat_body(model, content=content),
            {"authorization": f"Bearer {key}", "content-type": "application/json"},
        )

    def relay(self, key: str, content: str):
        return CP(self.cp.url, key, "x-api-key").post(
            "/api/relay", {"to": "gpt-4o-mini", "payload": {"messages": [{"role": "user", "content": content}]}}
        )

    def seen_upstream(self, marker: str) -> bool:
        return any(marker in json.dumps(r) for r in self.gw.sim_requests("openai-us"))


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    stack, tokens = start_full_stack(tmp_path_factory, "scope", cp_args=["--rate-limit-rps", "100000"])
    yield Full(stack, tokens)
    stack.stop()


def _mint(client: CP, body: dict, status: int = 201):
    r = client.post("/v1/keys", body)
    assert r.status == status, r.text
    return r.json()


def _kid(token: str) -> str:
    return token.split("_")[2]


def test_embeddings_only_key_cannot_mint_a_key_for_every_endpoint(full):
    acme = full.cp.client("acme")
    narrow = _mint(
        acme,
        {
            "name": "embed-minter",
            "scope": {
                "endpoints": ["embeddings"],
                "models": ["text-embedding-3-small"],
                "permissions": ["keys:read", "keys:write", "sessions:write"],
            },
        },
    )
    attacker = CP(full.cp.url, narrow["secret"])
    same_perms = ["keys:read", "keys:write", "sessions:write"]  # only the endpoints are wider
    wide = {"name": "escalated", "scope": {"endpoints": list(sc.ENDPOINTS), "permissions": same_perms}}
    err = _mint(attacker, wide, 403)["error"]
    assert err["code"] == "auth.forbidden" and "endpoints" in err["message"]
    for body in (
        {"scope": {"models": ["*"], "permissions": same_perms}},
        {"scope": {"permissions": ["*"]}},
        {"scope": {"permissions": ["keys:write", "policies:write"]}},
    ):
        _mint(attacker, body, 403)
    # Nothing said: the child is exactly the parent, never '*'.
    child = _mint(attacker, {"name": "same"})["key"]["scope"]
    assert child == {
        "endpoints": ["embeddings"],
        "models": ["text-embedding-3-small"],
        "permissions": ["keys:read", "keys:write", "sessions:write"],
    }
    # A session of the narrow key is held to the same rule.
    session = CP(full.cp.url, attacker.post("/v1/sessions", {}).json()["token"])
    _mint(session, wide, 403)
    assert _mint(session, {"name": "from-session"})["key"]["scope"]["endpoints"] == ["embeddings"]


def test_model_limited_key_cannot_mint_star_or_a_wider_glob(full):
    acme = full.cp.client("acme")
    perms = ["keys:write", "relay"]  # "relay": the old name of gateway:call
    limited = CP(
        full.cp.url,
        _mint(acme, {"name": "4o-minter", "scope": {"models": ["gpt-4o*"], "permissions": perms}})["secret"],
    )
    for models in (["*"], ["gpt-*"], ["gpt-4o*", "claude-sonnet-4-5"], ["gpt-4o.*"], ["g*"]):
        err = _mint(limited, {"scope": {"models": models, "permissions": perms}}, 403)["error"]
        assert "models" in err["message"], err
    _mint(acme, {"scope": {"models": ["gpt-[45]o*"]}}, 400)  # only '*' is a wildcard in key scopes
    for models in (["gpt-4o"], ["gpt-4o-mini*"], ["gpt-4o-mini", "gpt-4o"]):
        assert _mint(limited, {"scope": {"models": models, "permissions": perms}})["key"]["scope"]["models"] == models
    # and the minted narrow key really is narrow at the gateway
    minted = _mint(limited, {"scope": {"models": ["gpt-4o"], "permissions": perms}})["secret"]
    blocked = eventually(
        lambda: (r := full.call(minted, "narrow " + uuid.uuid4().hex)).status == 403 and r,
        15,
        "the minted key reaching the gateway",
    )
    assert blocked.json()["error"]["code"] == "scope.denied"
    assert full.call(minted, "narrow ok", model="gpt-4o").status == 200


def test_expiring_key_cannot_mint_a_longer_lived_or_non_expiring_key(full):
    acme = full.cp.client("acme")
    parent = _mint(acme, {"name": "hour", "expires_in": 3600, "scope": {"permissions": ["keys:write"]}})
    short = CP(full.cp.url, parent["secret"])
    same = {"permissions": ["keys:write"]}
    err = _mint(short, {"expires_in": 7200, "scope": same}, 403)["error"]
    assert "expiry" in err["message"]
    for body in ({"scope": same}, {"expires_in": None, "scope": same}):  # omitted or null: the parent's expiry
        assert _mint(short, body)["key"]["expires_at"] == parent["key"]["expires_at"]
    assert _mint(short, {"expires_in": 600, "scope": same})["key"]["expires_at"] < parent["key"]["expires_at"]


def test_narrow_key_cannot_mint_a_read_only_key_with_reads_it_lacks(full):
    acme = full.cp.client("acme")
    only_keys = CP(full.cp.url, _mint(acme, {"scope": {"permissions": ["keys:write"]}})["secret"])
    assert "permissions" in _mint(only_keys, {"kind": "read_only"}, 403)["error"]["message"]
    readers = CP(
        full.cp.url,
        _mint(acme, {"scope": {"permissions": ["keys:write", "health:read", "usage:read", "logs:read"]}})["secret"],
    )
    assert _mint(readers, {"kind": "read_only"})["key"]["kind"] == "read_only"
    ro = CP(full.cp.url, _mint(acme, {"kind": "read_only"})["secret"])
    assert ro.post("/v1/keys", {"kind": "standard"}).status == 403


def test_narrow_key_cannot_rotate_a_wider_key_into_a_secret_it_learns(full):
    acme = full.cp.client("acme")
    wide = _mint(acme, {"name": "wide", "scope": {"permissions": ["policies:read"]}})  # every endpoint
    narrow = CP(full.cp.url, _mint(acme, {"name": "narrow", "scope": {"endpoints": ["embeddings"]}})["secret"])
    err = narrow.post(f"/v1/keys/{wide['key']['id']}/rotate", {}).json()["error"]
    assert err["code"] == "auth.forbidden" and "endpoints" in err["message"]
    assert acme.get(f"/v1/keys/{wide['key']['id']}").json()["rotated_to"] is None
    inside = _mint(acme, {"name": "inside", "scope": {"endpoints": ["embeddings"], "permissions": ["logs:read"]}})
    assert narrow.post(f"/v1/keys/{inside['key']['id']}/rotate", {}).status == 201


def test_admin_may_mint_any_key_and_its_default_is_full(full):
    admin = full.cp.admin
    r = admin.post("/v1/keys", {"name": "by-admin"}, headers={"X-Relaygate-Workspace": "acme"})
    assert r.status == 201, r.text
    assert r.json()["key"]["scope"]["permissions"] == ["*"] and r.json()["key"]["expires_at"] is None


def test_read_only_key_is_refused_at_the_gateway_and_at_relay_with_no_upstream_call(full):
    """A dashboard key must never spend provider money, by either path; the two paths agree."""
    acme = full.cp.client("acme")
    assert full.call(full.tokens["acme"], "warm " + uuid.uuid4().hex).status == 200
    minted_ro = _mint(acme, {"name": "dash", "kind": "read_only"})["secret"]
    for key in (full.tokens["acme-ro"], minted_ro):  # from keys.yaml (seeded) and from the API
        marker = "ro-" + uuid.uuid4().hex
        seen: list = []  # every answer while waiting, for the failure message

        def refused_now(key=key, marker=marker, seen=seen):
            r = full.call(key, marker)
            seen.append((r.status, r.body[:200]))
            return r if r.status == 403 else None

        try:
            refused = eventually(refused_now, 15, "the read-only key reaching the gateway")
        except AssertionError as e:
            raise AssertionError(f"{e}; answers: {sorted(set(seen))[:5]}") from None
        err = refused.json()["error"]
        assert err["code"] == "scope.denied" and "read_only" in err["message"]
        receipt = full.gw.receipt_doc(refused.receipt_id)
        assert receipt["decision"]["code"] == "scope.denied" and receipt["key_id"] == _kid(key)
        relayed = full.relay(key, marker)
        assert relayed.status == 403 and relayed.error["code"] == "auth.forbidden", relayed.text
        time.sleep(0.2)
        assert not full.seen_upstream(marker)


@pytest.mark.parametrize(
    "permissions,may_call",
    [
        (["policies:read"], False),
        (["keys:write", "logs:read"], False),
        (["gateway:call"], True),
        (["relay"], True),
        (["*"], True),
    ],
)
def test_gateway_and_relay_agree_on_which_keys_may_call(full, permissions, may_call):
    acme = full.cp.client("acme")
    key = _mint(acme, {"name": "agree", "scope": {"permissions": permissions}})["secret"]
    marker = "agree-" + uuid.uuid4().hex
    direct = eventually(lambda: (r := full.call(key, marker)).status != 401 and r, 15, "the key at the gateway")
    relayed = full.relay(key, marker + "-relay")
    assert (direct.status == 200) == may_call, direct.body
    assert (relayed.status == 200) == may_call, relayed.text
    if may_call:
        assert relayed.json()["status_code"] == 200
    else:
        assert direct.json()["error"]["code"] == "scope.denied"
        assert relayed.error["code"] == "auth.forbidden"
        assert not full.seen_upstream(marker)


def test_yaml_configured_gateway_without_control_plane(gw):
    """keys.yaml keys written before kind/permissions existed still call; read-only ones never do."""
    h = lambda k: {"authorization": f"Bearer {gw.tokens[k]}", "content-type": "application/json"}  # noqa: E731
    assert curl(gw.base("acme") + "/chat/completions", chat_body(), h("acme")).status == 200
    marker = "yaml-ro-" + uuid.uuid4().hex
    r = curl(gw.base("acme") + "/chat/completions", chat_body(content=marker), h("acme-ro"))
    assert r.status == 403 and r.json()["error"]["code"] == "scope.denied"
    assert gw.receipt_doc(r.receipt_id)["decision"]["code"] == "scope.denied"
    assert not any(marker in json.dumps(x) for x in gw.sim_requests("openai-us"))


# -- sessions end with their key (sqlite and postgresql) ----------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def cp(request, tmp_path_factory):
    url = ""
    if request.param == "postgresql":
        pg = request.getfixturevalue("postgres")
        pg.reset_database()
        url = pg.url
    c = start_controlplane(tmp_path_factory.mktemp("sess"), url, ["--rate-limit-rps", "100000"])
    c.db = request.param
    yield c
    c.stop()


def _key_and_session(cp, **body):
    made = _mint(cp.client("acme"), {"name": "sess", **body})
    key = CP(cp.url, made["secret"])
    s = key.post("/v1/sessions", {"ttl_seconds": 3600})
    assert s.status == 201, s.text
    return made, key, CP(cp.url, s.json()["token"]), s.json()


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_rotation_without_grace_ends_the_keys_sessions_and_their_minting(cp):
    made, key, session, _ = _key_and_session(cp)
    assert session.get("/v1/keys").status == 200
    assert cp.client("acme").post(f"/v1/keys/{made['key']['id']}/rotate", {"grace_seconds": 0}).status == 201
    assert session.get("/v1/keys").status == 401
    r = session.post("/v1/keys", {"name": "after-rotation"})
    assert r.status == 401 and r.error["code"] == "auth.unauthenticated"


def test_rotation_with_grace_ends_sessions_at_once_while_the_key_keeps_working(cp):
    made, key, session, _ = _key_and_session(cp)
    assert cp.client("acme").post(f"/v1/keys/{made['key']['id']}/rotate", {"grace_seconds": 3600}).status == 201
    assert key.get("/v1/keys").status == 200  # the grace period is for the key's deployed users
    assert session.post("/v1/keys", {"name": "x"}).status == 401
    assert key.post("/v1/sessions", {}).status == 201 and key.post("/v1/sessions", {}).json()["expires_at"]


def test_revocation_ends_sessions_and_sessions_made_from_them(cp):
    made, key, session, _ = _key_and_session(cp)
    child = CP(cp.url, session.post("/v1/sessions", {}).json()["token"])
    assert child.get("/v1/keys").status == 200
    assert session.delete("/v1/sessions/current").status == 204
    assert child.get("/v1/keys").status == 401  # its parent session ended
    other = CP(cp.url, key.post("/v1/sessions", {}).json()["token"])
    assert cp.client("acme").post(f"/v1/keys/{made['key']['id']}/revoke").status == 200
    assert other.get("/v1/keys").status == 401


def test_session_ttl_is_capped_by_the_keys_expiry_and_ends_with_it(cp):
    made, key, session, s = _key_and_session(cp, expires_in=60)
    key_exp = _ts(made["key"]["expires_at"])
    assert _ts(s["expires_at"]) <= key_exp
    grand = session.post("/v1/sessions", {"ttl_seconds": 3600}).json()
    assert _ts(grand["expires_at"]) <= key_exp
    if cp.db != "sqlite":
        return  # the wait below runs once
    wait = key_exp - time.time()
    eventually(lambda: session.get("/v1/keys").status == 401, wait + 15, "the session ending with its key")
    assert time.time() >= key_exp - 1


def test_a_child_or_rotated_key_cannot_escape_its_makers_per_key_budget(full):
    """Item 2, budgets: a key capped by a per-key budget mints (or gets rotated into) a key without
    one. The new key is charged to every budget of the keys it descends from, at the gateway."""
    acme = full.cp.client("acme")
    parent = _mint(
        acme, {"name": "capped-parent", "scope": {"permissions": ["keys:read", "keys:write", "gateway:call"]}}
    )
    pid = parent["key"]["id"]
    r = acme.post(
        "/v1/budgets", {"id": "parent-cap-" + pid.lower(), "unit": "tokens", "window": "day", "limit": 1, "key_id": pid}
    )
    assert r.status == 201, r.text
    marker = "cap-" + uuid.uuid4().hex
    refused = eventually(
        lambda: (r := full.call(parent["secret"], marker)).status == 429 and r,
        15,
        "the per-key budget reaching the gateway",
    )
    assert refused.json()["error"]["code"] == "budget.exceeded"

    child = _mint(CP(full.cp.url, parent["secret"]), {"name": "escape-hatch"})
    grandchild = _mint(CP(full.cp.url, child["secret"]), {"name": "escape-hatch-2"})
    rotated = acme.post(f"/v1/keys/{pid}/rotate", {})
    assert rotated.status == 201, rotated.text
    for made in (child["secret"], grandchild["secret"], rotated.json()["secret"]):
        got = eventually(lambda: (r := full.call(made, marker)).status != 401 and r, 15, "the new key at the gateway")
        assert got.status == 429 and got.json()["error"]["code"] == "budget.exceeded", got.body
    # a key the admin mints is nobody's child: the parent's cap does not follow it
    free = full.cp.admin.post("/v1/keys", {"name": "admin-made"}, headers={"X-Relaygate-Workspace": "acme"})
    got = eventually(lambda: (r := full.call(free.json()["secret"], marker)).status != 401 and r, 15, "admin key")
    assert got.status == 200, got.body


def test_narrow_key_cannot_revoke_a_wider_key(cp):
    """A narrow key with ``keys:write`` (say a CI key limited to embeddings) tries to revoke the
    workspace's wide production key, by POST .../revoke and by DELETE: 403, and the wide key keeps
    working. It may still revoke itself and keys within its own grant."""
    acme = cp.client("acme")
    wide = _mint(acme, {"name": "prod-wide"})
    narrow_made = _mint(
        acme,
        {"name": "ci-narrow", "scope": {"endpoints": ["embeddings"], "permissions": ["keys:write", "sessions:write"]}},
    )
    narrow = CP(cp.url, narrow_made["secret"])
    session = CP(cp.url, narrow.post("/v1/sessions", {}).json()["token"])
    for attacker in (narrow, session):
        for r in (
            attacker.post(f"/v1/keys/{wide['key']['id']}/revoke"),
            attacker.delete(f"/v1/keys/{wide['key']['id']}"),
        ):
            assert r.status == 403 and r.error["code"] == "auth.forbidden", r.text
            assert "endpoints" in r.error["message"]
    assert acme.get(f"/v1/keys/{wide['key']['id']}").json()["revoked_at"] is None
    assert CP(cp.url, wide["secret"]).get("/v1/keys").status == 200
    inside = _mint(narrow, {"name": "inside"})
    assert narrow.post(f"/v1/keys/{inside['key']['id']}/revoke").status == 200
    assert narrow.post(f"/v1/keys/{narrow_made['key']['id']}/revoke").status == 200  # itself
    assert narrow.post("/v1/keys", {"name": "after"}).status == 401


def test_revoking_a_key_revokes_the_keys_it_minted_but_not_its_successor(cp):
    """A thief with a stolen key mints a child (and a grandchild) as a back door; the owner revokes
    the stolen key. Everything minted from it, and those keys' sessions, stop working with it: a
    minted key is within its maker, expiry included, and a revoked maker holds nothing. A key's
    rotation successor (and what the successor mints) is the owner's and keeps working."""
    acme = cp.client("acme")
    stolen = _mint(acme, {"name": "stolen", "scope": {"permissions": ["keys:read", "keys:write", "sessions:write"]}})
    thief = CP(cp.url, stolen["secret"])
    child = _mint(thief, {"name": "back-door"})
    grandchild = _mint(CP(cp.url, child["secret"]), {"name": "back-door-2"})
    child_session = CP(cp.url, CP(cp.url, child["secret"]).post("/v1/sessions", {}).json()["token"])
    assert child_session.get("/v1/keys").status == 200
    # a rotated key whose successor must survive the revocation of the old one during its grace
    owned = _mint(acme, {"name": "owned", "scope": {"permissions": ["keys:read", "keys:write"]}})
    successor = acme.post(f"/v1/keys/{owned['key']['id']}/rotate", {"grace_seconds": 3600}).json()
    succ_child = _mint(CP(cp.url, successor["secret"]), {"name": "succ-child"})
    owned_child = _mint(CP(cp.url, owned["secret"]), {"name": "owned-child"})  # minted by the old key in grace

    assert acme.post(f"/v1/keys/{stolen['key']['id']}/revoke").status == 200
    for made in (child, grandchild):
        assert CP(cp.url, made["secret"]).get("/v1/keys").status == 401, made["key"]["name"]
        assert acme.get(f"/v1/keys/{made['key']['id']}").json()["revoked_at"] is not None
    assert child_session.get("/v1/keys").status == 401

    assert acme.post(f"/v1/keys/{owned['key']['id']}/revoke").status == 200  # ends the grace early
    assert CP(cp.url, owned_child["secret"]).get("/v1/keys").status == 401
    for made in (successor, succ_child):
        assert CP(cp.url, made["secret"]).get("/v1/keys").status == 200, made["key"]["name"]


def test_a_key_cannot_lift_a_per_key_budget_that_caps_it_or_its_maker(cp):
    """Red team, item 4: budgets:write (held by every standard key by default, and inherited by the
    keys it mints) let a capped key raise or delete the per-key budget on itself, and its child
    the one on its maker, so the cap bound only keys that did not hold budgets:write. A key (or
    a session of one) may lower such a budget but not raise or remove it; the workspace's other
    keys and the admin still may."""
    acme = cp.client("acme")
    parent = _mint(acme, {"name": "capped-writer"})
    pid = parent["key"]["id"]
    bid = "cap-of-" + pid.lower()
    assert (
        acme.post("/v1/budgets", {"id": bid, "unit": "tokens", "window": "day", "limit": 100, "key_id": pid}).status
        == 201
    )
    me = CP(cp.url, parent["secret"])
    child = CP(cp.url, _mint(me, {"name": "child-writer"})["secret"])
    session = CP(cp.url, me.post("/v1/sessions", {}).json()["token"])
    for attacker in (me, child, session):
        r = attacker.put(f"/v1/budgets/{bid}", {"limit": 10_000_000})
        assert r.status == 403 and r.error["code"] == "auth.forbidden", r.text
        r = attacker.delete(f"/v1/budgets/{bid}")
        assert r.status == 403 and r.error["code"] == "auth.forbidden", r.text
    assert acme.get(f"/v1/budgets/{bid}").json()["limit"] == 100
    assert me.put(f"/v1/budgets/{bid}", {"limit": 50}).status == 200  # tightening is fine
    assert acme.put(f"/v1/budgets/{bid}", {"limit": 200}).status == 200  # the workspace's own key
