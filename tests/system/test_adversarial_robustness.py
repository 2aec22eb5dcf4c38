"""Robustness against a key holder who sends hostile input (ISSUE-11 items 10, 11, 13, 14, 15, 17).

Each test plays an attacker holding a valid key of one workspace (or another
tenant) against a real control plane (and, where the data plane matters, a
real gateway: Envoy + sidecar + provider simulator). Nothing of relaygate's
own is mocked.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import sqlite3
import stat
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ControlPlane, Gateway, start_controlplane, start_full_stack
from tests.cpclient import CP, eventually
from tests.httpcall import chat_body, curl
from devstack.processes import Stack

BILLION_LAUGHS = """name: laughs
rego: |
  package anything
  import rego.v1
  deny contains "no" if input.model == "nope"
data:
  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
  g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
  h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
  i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""

GOOD_POLICY = """name: {name}
rego: |
  package anything
  import rego.v1
  deny contains "no" if input.model == "nope"
data:
{data}
"""


def _err(reply, status, code=None):
    assert reply.status == status, (reply.status, reply.text[:500])
    body = reply.json()
    assert body["request_id"].startswith("req_")
    if code:
        assert body["error"]["code"] == code, body
    return body


def _deep(n: int):
    doc: dict = {"leaf": 1}
    for _ in range(n):
        doc = {"d": doc}
    return doc


# -- control plane only (SQLite and PostgreSQL) -----------------------------------------------


@pytest.fixture
def cp(database_url, tmp_path):
    c = start_controlplane(tmp_path, database_url, ["--rate-limit-rps", "100000"])
    yield c
    c.stop()


@pytest.fixture(scope="module")
def cp_sqlite(tmp_path_factory):
    c = start_controlplane(tmp_path_factory.mktemp("cp-robust"), "", ["--rate-limit-rps", "100000"])
    yield c
    c.stop()


def test_yaml_alias_bomb_is_refused_fast_and_never_stalls_the_control_plane(cp_sqlite):
    """Item 10: a 418-byte billion-laughs document is a 400 naming the limit; other calls keep answering."""
    acme, euro = cp_sqlite.client("acme"), cp_sqlite.client("euro")
    assert len(BILLION_LAUGHS.encode()) < 1024
    stalls: list[float] = []
    done = threading.Event()

    def probe():  # another tenant's reads while the bomb is handled: the event loop must stay free
        while not done.is_set():
            t0 = time.perf_counter()
            assert euro.get("/v1/policies").status == 200
            stalls.append(time.perf_counter() - t0)
            time.sleep(0.02)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    started = time.perf_counter()
    try:
        for path, method in (("/v1/policies", "POST"),):
            reply = acme.call(method, path, yaml=BILLION_LAUGHS)
            body = _err(reply, 400, "policy.invalid")
            assert "alias" in body["error"]["message"], body
    finally:
        done.set()
        t.join(10)
    assert time.perf_counter() - started < 5, "the bomb was expanded"
    assert stalls and max(stalls) < 2.0, max(stalls)
    # Nothing stored, and the bundle the sidecars fetch stays small.
    assert all(p["name"] != "laughs" for p in acme.get("/v1/policies").json()["policies"])
    bundle = cp_sqlite.fleet.get("/v1/fleet/bundles/default")
    assert bundle.status == 200 and len(bundle.text) < 5_000_000

    # Recursive anchors and deep nesting are refused as well (no RecursionError, no 500).
    recursive = GOOD_POLICY.format(name="loop", data="  a: &a [*a]")
    _err(acme.post("/v1/policies", yaml=recursive), 400, "policy.invalid")
    nested = GOOD_POLICY.format(name="deep", data="  a: " + "[" * 5000 + "]" * 5000)
    _err(acme.post("/v1/policies", yaml=nested), 400, "policy.invalid")

    # A modest, legitimate use of anchors (a merge key) still works.
    merge = GOOD_POLICY.format(
        name="anchors", data="  base: &base {tier: gold, region: eu}\n  team: {<<: *base, name: core}"
    )
    created = acme.post("/v1/policies", yaml=merge)
    assert created.status == 201, created.text
    assert acme.delete(f"/v1/policies/{created.json()['id']}").status == 204


def test_policy_source_and_data_sizes_are_capped_with_the_limit_named(cp_sqlite):
    """Item 10: an oversized document is a 413 naming the limit; oversized data (after expansion) a 400."""
    acme = cp_sqlite.client("acme")
    big = GOOD_POLICY.format(name="big", data="  blob: " + "x" * (300 * 1024))
    body = _err(acme.post("/v1/policies", yaml=big), 413, "policy.too_large")
    assert "262144" in body["error"]["message"] or "256 KiB" in body["error"]["message"], body
    small = acme.post("/v1/policies", yaml=GOOD_POLICY.format(name="small", data="  a: 1"))
    assert small.status == 201, small.text
    _err(acme.put(f"/v1/policies/{small.json()['id']}", yaml=big), 413, "policy.too_large")
    # Within the source cap but each alias expands a 100 KiB string: data after expansion is capped.
    fan = GOOD_POLICY.format(
        name="fan", data="  s: &s " + "y" * (100 * 1024) + "\n  l: [" + ",".join(["*s"] * 40) + "]"
    )
    body = _err(acme.post("/v1/policies", yaml=fan), 400, "policy.invalid")
    assert "alias" in body["error"]["message"] or "data" in body["error"]["message"], body


def test_deep_json_bodies_are_refused_at_ingestion(cp_sqlite):
    """Item 11: every JSON body is depth-checked before a handler stores any of it."""
    acme = cp_sqlite.client("acme")
    body = _err(
        acme.post("/api/relay", {"to": "gpt-4o-mini", "payload": {}, "metadata": _deep(300)}), 400, "invalid_request"
    )
    assert "deep" in body["error"]["message"] and "64" in body["error"]["message"], body
    # Below orjson's own recursion limit too (200 levels parse; the cap is ours).
    _err(acme.post("/api/relay", {"to": "gpt-4o-mini", "payload": {}, "metadata": _deep(100)}), 400)
    # Relay metadata is also capped in size.
    body = _err(
        acme.post("/api/relay", {"to": "gpt-4o-mini", "payload": {}, "metadata": {"k": "v" * 40_000}}),
        400,
        "invalid_request",
    )
    assert "metadata" in body["error"]["message"], body
    # Admin-only documents (upstream overrides) and sidecar receipt batches go through the same check.
    spec = {
        "name": "deep-up",
        "provider": "openai",
        "address": "127.0.0.1:9",
        "region": "r",
        "jurisdiction": "us",
        "credential": "openai",
        "models": {"m": {"input_per_1k": 0.1}},
        "envoy_cluster_overrides": _deep(200),
    }
    _err(cp_sqlite.admin.post("/v1/upstreams", spec), 400)
    _err(cp_sqlite.fleet.post("/v1/fleet/receipts", {"instance_id": "x", "receipts": [_deep(200)]}), 400)
    # The API keeps answering normally.
    assert acme.get("/api/logs").status == 200


def test_every_malformed_cursor_is_a_400(cp):
    """Item 13, on SQLite and PostgreSQL: the cursor is base64url of 's<seq>'; anything else is a 400."""
    acme = cp.client("acme")
    for i in range(3):
        assert acme.post("/v1/keys", {"name": f"cursor-{i}"}).status == 201
    first = acme.get("/v1/audit/events", params={"limit": 1}).json()
    good = first["next_cursor"]
    assert good and acme.get("/v1/audit/events", params={"limit": 1, "cursor": good}).status == 200

    def enc(raw: str) -> str:
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    bad = [
        enc("s" + "9" * 30),
        enc(f"s{2**63}"),
        enc(f"s{2**64 + 5}"),
        enc("s-5"),
        enc("s-" + "9" * 25),
        enc("s 12"),
        enc("s1_000"),
        enc("s+7"),
        enc("sabc"),
        enc("s"),
        enc("x12"),
        enc("s12\n"),
        enc("s\u0661\u0662"),
        "!!!",
        "====",
        "s12",
        base64.urlsafe_b64encode(b"\xff\xfe\x00s").decode(),
        enc("s" + "1" * 150),
    ]
    for cursor in bad:
        for path in ("/v1/audit/events", "/api/logs"):
            reply = acme.get(path, params={"cursor": cursor})
            body = _err(reply, 400, "invalid_request")
            assert body["error"]["details"]["parameter"] == "cursor", (cursor, body)
    # The largest 64-bit sequence is a valid cursor (an empty page, not an error).
    assert acme.get("/v1/audit/events", params={"cursor": enc(f"s{2**63 - 1}")}).status == 200
    assert acme.get("/api/logs", params={"cursor": enc("s0")}).json()["logs"] == []


def test_budget_ids_are_per_workspace(cp):
    """Item 14, on SQLite and PostgreSQL: another workspace's budget names neither collide nor leak."""
    acme, capped = cp.client("acme"), cp.client("capped")
    a = acme.post("/v1/budgets", {"id": "daily", "unit": "tokens", "window": "day", "limit": 1000})
    assert a.status == 201, a.text
    b = capped.post("/v1/budgets", {"id": "daily", "unit": "usd", "window": "month", "limit": 2.5})
    assert b.status == 201, b.text
    assert acme.get("/v1/budgets/daily").json()["limit"] == 1000
    assert capped.get("/v1/budgets/daily").json()["limit"] == 2.5
    assert [x["id"] for x in capped.get("/v1/budgets").json()["budgets"]] == ["daily"]
    assert capped.put("/v1/budgets/daily", {"limit": 3}).json()["limit"] == 3
    assert acme.get("/v1/budgets/daily").json()["limit"] == 1000
    assert capped.delete("/v1/budgets/daily").status == 204
    assert acme.get("/v1/budgets/daily").status == 200
    _err(acme.post("/v1/budgets", {"id": "daily", "unit": "tokens", "window": "day", "limit": 1}), 409)
    # A deleted id can be taken again by its workspace (it was never another's).
    assert capped.post("/v1/budgets", {"id": "daily", "unit": "tokens", "window": "day", "limit": 7}).status == 201
    # Both reach the bundle the sidecars load, each under its own workspace.
    docs = cp.fleet.get("/v1/fleet/bundles/default")
    assert docs.status == 200


# -- control plane + gateway ------------------------------------------------------------------


class Full:
    def __init__(self, stack: Stack, tokens: dict) -> None:
        self.stack, self.tokens = stack, tokens
        self.gw = Gateway(stack, tokens)
        self.cp = ControlPlane(stack, tokens)

    def call(self, token: str, ws: str, content: str = "hi", **extra):
        return curl(
            self.gw.base(ws) + "/chat/completions",
            chat_body("gpt-4o-mini", content, **extra),
            {"authorization": f"Bearer {token}", "content-type": "application/json"},
        )


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    stack, tokens = start_full_stack(tmp_path_factory, "robust")
    yield Full(stack, tokens)
    stack.stop()


def test_deep_relay_metadata_never_breaks_the_request_log(full):
    """Item 11: 900-deep metadata is refused; a deep document stored before the fix does not 500 the feed."""
    acme = CP(full.cp.url, full.tokens["acme"], "x-api-key")
    _err(
        acme.post(
            "/api/relay",
            {"to": "gpt-4o-mini", "metadata": _deep(900), "payload": {"messages": [{"role": "user", "content": "hi"}]}},
        ),
        400,
    )
    ok = acme.post(
        "/api/relay",
        {"to": "gpt-4o-mini", "metadata": {"run": 1}, "payload": {"messages": [{"role": "user", "content": "hi"}]}},
    )
    assert ok.status == 200, ok.text
    rid, relay_id = ok.json()["receipt_id"], ok.json()["relay_id"]
    eventually(
        lambda: any(x["request_id"] == rid for x in acme.get("/api/logs").json()["logs"]),
        20,
        "the relayed call in the logs",
    )
    # A row written by an older version (before ingestion was capped): reading must stay robust.
    db = sqlite3.connect(full.stack.cp_data / "controlplane.db", timeout=30)
    with db:
        db.execute("UPDATE relay_calls SET metadata = ? WHERE id = ?", (json.dumps(_deep(900)), relay_id))
    db.close()
    for _ in range(2):
        logs = acme.get("/api/logs")
        assert logs.status == 200, logs.text[:300]
        entry = next(x for x in logs.json()["logs"] if x["request_id"] == rid)
        assert entry["metadata"] != _deep(900) and "truncated" in json.dumps(entry["metadata"])
    exported = acme.get("/api/logs/export", params={"format": "json"})
    assert exported.status == 200 and rid in exported.text
    json.loads(exported.text)


def test_csv_export_neutralises_formula_cells(full):
    """Item 15: a caller-chosen user id (and model) starting with = + - @ TAB CR is exported inert."""
    token = full.tokens["acme"]
    payloads = ['=HYPERLINK("http://evil.test","x")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)", "\tcmd", "\r=1+1"]
    rids = []
    for user in payloads:
        r = full.call(token, "acme", user=user)
        assert r.status == 200, r.body
        rids.append(r.receipt_id)
        full.gw.receipt(rids[-1])
    acme = full.cp.client("acme")
    eventually(
        lambda: set(rids) <= {x["request_id"] for x in acme.get("/api/logs", params={"limit": 200}).json()["logs"]},
        20,
        "the calls in the logs",
    )
    text = acme.get("/api/logs/export", params={"format": "csv", "limit": 1000}).text
    rows = list(csv.DictReader(io.StringIO(text)))
    by_id = {r["request_id"]: r for r in rows}
    for rid, user in zip(rids, payloads):
        cell = by_id[rid]["user"]
        assert cell == "'" + user, (user, cell)
    for row in rows:
        for value in row.values():
            assert not (value or "").startswith(("=", "+", "-", "@", "\t", "\r")), row
    # JSON export is data, not a spreadsheet: values are exact.
    exported = json.loads(acme.get("/api/logs/export", params={"format": "json", "limit": 1000}).text)
    assert {e["user"] for e in exported if e["request_id"] in rids} == set(payloads)


def test_budget_ids_do_not_collide_in_the_data_plane(full):
    """Item 14: acme's spend on its 'daily' never counts against capped's 'daily' at the gateway."""
    acme, capped = full.cp.client("acme"), full.cp.client("capped")
    assert acme.post("/v1/budgets", {"id": "daily", "unit": "tokens", "window": "day", "limit": 10**7}).status == 201
    made = capped.post("/v1/budgets", {"id": "daily", "unit": "tokens", "window": "day", "limit": 1500})
    assert made.status == 201, made.text
    assert capped.post("/v1/budgets", {"id": "probe", "unit": "tokens", "window": "day", "limit": 0}).status == 201
    capped_token = full.tokens["capped"]
    eventually(
        lambda: full.call(capped_token, "capped", max_tokens=5).status == 429, 20, "the sidecar loaded the new budgets"
    )
    # acme spends well over capped's limit on its own 'daily'.
    spent = full.call(full.tokens["acme"], "acme", content="word " * 3000, max_tokens=5)
    assert spent.status == 200, spent.body
    receipt = full.gw.receipt_doc(spent.receipt_id)
    assert receipt["usage"]["input_tokens"] > 2000
    assert capped.delete("/v1/budgets/probe").status == 204
    last = {}

    def capped_allowed():
        r = full.call(capped_token, "capped", max_tokens=5)
        last["r"] = (r.status, r.body[:300])
        return r.status == 200

    try:
        eventually(capped_allowed, 20, "capped's call within its own budget")
    except AssertionError:
        raise AssertionError(f"capped is charged for acme's spend: {last['r']}") from None


def _private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if path.is_dir():
        assert mode == 0o700, f"{path} is {oct(mode)}"
    else:
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"


def test_data_files_are_private(full):
    """Item 17: every file and directory the services create under their data dirs is owner-only."""
    run = full.stack.run_dir
    cp_data, sidecar_data = full.stack.cp_data, run / "data"
    # The calls above made both services write (receipts, WAL); make sure at least one call happened.
    r = full.call(full.tokens["acme"], "acme")
    full.gw.receipt(r.receipt_id)
    expected = [
        cp_data / "controlplane.db",
        cp_data / "controlplane.db-wal",
        cp_data / "controlplane.db-shm",
        sidecar_data / "receipts.db",
        sidecar_data / "receipts.db-wal",
        sidecar_data / "receipts.db-shm",
        sidecar_data / "receipt-signing.pem",
        sidecar_data / "bundle.tar.gz",
    ]
    for p in expected:
        assert p.exists(), p
        _private(p)
    for root in (cp_data, sidecar_data, run):
        _private(root)
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                if p.is_socket():
                    continue
                _private(p)


_SMALL_POLICY = """name: dry-run-shape
rego: |
  package small
  import rego.v1
  deny contains "no gpt-4o" if input.model == "gpt-4o"
"""


def test_integers_the_database_cannot_bind_are_a_400(cp):
    """On SQLite and PostgreSQL: an integer parameter or body field past what its column holds
    (a policy version is a 32-bit INTEGER on PostgreSQL; tree sizes 64-bit) is a 400 naming it, never
    a 500 from the driver."""
    acme = cp.client("acme")
    made = acme.call("POST", "/v1/policies", yaml=_SMALL_POLICY)
    assert made.status == 201, made.text
    pid = made.json()["id"]
    huge = ("2147483648", str(2**40), str(2**63), "9" * 20, "9" * 400)
    for n in huge:
        body = _err(acme.get(f"/v1/policies/{pid}/versions/{n}"), 400, "invalid_request")
        assert body["error"]["details"]["parameter"] == "version", body
        body = _err(
            acme.get("/v1/audit/checkpoints", params={"max_size": n if len(n) > 18 else "9" * 19}),
            400,
            "invalid_request",
        )
        assert body["error"]["details"]["parameter"] == "max_size", body
        for q in ({"event_id": "x", "tree_size": "9" * 19}, {"first": "0", "second": "9" * 19}):
            _err(
                acme.get("/v1/audit/proofs/" + ("inclusion" if "event_id" in q else "consistency"), params=q),
                400,
                "invalid_request",
            )
    for v in (2**31, 2**40, 2**63, 2**64 - 1, 1e23):
        body = _err(acme.post(f"/v1/policies/{pid}/dryrun", {"version": v, "input": {}}), 400, "invalid_request")
        assert body["error"]["details"]["parameter"] == "version", body
    # the largest version a column holds is an ordinary "not found"
    _err(acme.get(f"/v1/policies/{pid}/versions/{2**31 - 1}"), 404)
    assert acme.get(f"/v1/policies/{pid}/versions/1").status == 200
    # and no integer the API takes (parameter or body field) is left without a bound
    from relaygate.controlplane import openapi

    spec = openapi.build()
    unbounded = []

    def walk(node, where, seen=frozenset()):
        if isinstance(node, list):
            for x in node:
                walk(x, where, seen)
        if not isinstance(node, dict):
            return
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                walk(spec["components"]["schemas"][name], name, seen | {name})
            return
        t = node.get("type")
        if (t == "integer" or isinstance(t, list) and "integer" in t) and "maximum" not in node:
            unbounded.append(where)
        for k, v in node.items():
            walk(v, f"{where}.{k}", seen)

    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for prm in op.get("parameters", []):
                walk(prm.get("schema"), f"{method} {path} {prm.get('name')}")
            walk(op.get("requestBody"), f"{method} {path} body")
    assert not unbounded, unbounded


def test_dry_run_input_of_the_wrong_shape_is_a_400(cp_sqlite):
    """The dry run's caller-supplied ``input`` is merged with the workspace and principal the server
    sets; a ``workspace`` or ``principal`` that is not an object is a 400, never a 500, and the caller
    still cannot name another workspace or supply ``workspace_policies``."""
    acme = cp_sqlite.client("acme")
    pid = acme.call("POST", "/v1/policies", yaml=_SMALL_POLICY).json()["id"]
    for field in ("workspace", "principal"):
        for value in ("euro", [["id", "euro"]], [1], 7, True):
            r = acme.post(f"/v1/policies/{pid}/dryrun", {"input": {field: value, "model": "gpt-4o"}})
            body = _err(r, 400, "invalid_request")
            assert body["error"]["details"]["parameter"] == f"input/{field}", body
    r = acme.post(
        f"/v1/policies/{pid}/dryrun",
        {
            "input": {
                "workspace": {"id": "euro"},
                "principal": {"workspace": "euro"},
                "model": "gpt-4o",
                "workspace_policies": {"allow": True, "deny": []},
            }
        },
    )
    assert r.status == 200, r.text
    doc = r.json()["input"]
    assert doc["workspace"]["id"] == "acme" and doc["principal"]["workspace"] == "acme"
    assert "workspace_policies" not in doc


def test_nul_characters_are_a_400_everywhere(cp):
    """On SQLite and PostgreSQL (whose text and JSONB columns cannot hold U+0000): a NUL in any
    string of a JSON body (a key name, a model glob, relay metadata keys or values), in a query
    parameter, or in a policy YAML's name (written as the escape "\\0") is a 400 naming where it
    is, never a 500 from the driver."""
    acme = cp.client("acme")
    for body, where in (({"name": "a\u0000b"}, "name"), ({"scope": {"models": ["gpt\u0000"]}}, "scope/models/0")):
        err = _err(acme.post("/v1/keys", body), 400, "invalid_request")["error"]
        assert err["details"]["parameter"] == where, err
    relay = {"to": "gpt-4o-mini", "payload": {"messages": [{"role": "user", "content": "hi"}]}}
    for meta in ({"k": "v\u0000"}, {"k\u0000": "v"}, {"k": [{"deep": "\u0000"}]}):
        _err(acme.post("/api/relay", {**relay, "metadata": meta}), 400, "invalid_request")
    for path, params in (
        ("/v1/audit/events", {"user": "a\u0000"}),
        ("/api/logs", {"model": "a\u0000"}),
        ("/v1/audit/events", {"model": "\u0000"}),
    ):
        err = _err(acme.get(path, params=params), 400, "invalid_request")["error"]
        assert err["details"]["parameter"] == next(iter(params)), err
    policy = 'name: "a\\0b"\nrego: |\n  package z\n  import rego.v1\n  deny contains "x" if input.model == "q"\n'
    _err(acme.call("POST", "/v1/policies", yaml=policy), 400)
    # the service is fine afterwards, and ordinary text still works
    assert acme.post("/v1/keys", {"name": "ordinary ✓"}).status == 201
    assert acme.get("/v1/audit/events", params={"user": "u"}).status == 200


def test_a_gateway_call_with_nul_or_overlong_fields_cannot_stop_receipt_ingestion(postgres, tmp_path):
    """A key holder of one workspace sends a call whose ``user`` holds a NUL and is over the
    column's length, and one whose model name holds a NUL. On PostgreSQL the indexed columns
    refused those receipts with a 500, and since the sidecar resends its spool in order, every
    later receipt of every workspace stayed stuck (no audit feed, no evidence). Now the indexed
    copy is made storable (NUL replaced, cut to the column's size; the signed envelope is kept as
    sent), and later receipts arrive."""
    from tests.conftest import POLICY_DIR, write_config

    postgres.reset_database()
    tokens = write_config(tmp_path / "config")
    stack = Stack(
        tmp_path / "run",
        config_dir=tmp_path / "config",
        policy_dir=POLICY_DIR,
        controlplane=True,
        instance_id="nul-sidecar",
        database_url=postgres.url,
        cp_extra_args=["--rate-limit-rps", "100000"],
    )
    stack.start()
    try:
        gw, cp = Gateway(stack, tokens), ControlPlane(stack, tokens)
        h = {"authorization": f"Bearer {tokens['acme']}", "content-type": "application/json"}
        evil_user = "evil\u0000user-" + "x" * 400
        assert curl(gw.base("acme") + "/chat/completions", chat_body(content="a", user=evil_user), h).status == 200
        curl(gw.base("acme") + "/chat/completions", chat_body("gpt-4o-mini\u0000x", content="b"), h)
        assert curl(gw.base("acme") + "/chat/completions", chat_body(content="c", user="after-marker"), h).status == 200
        acme = cp.client("acme")
        eventually(
            lambda: acme.get("/v1/audit/events", params={"user": "after-marker"}).json()["events"],
            30,
            "the receipt sent after the hostile ones reaching the audit feed",
        )
        events = acme.get("/v1/audit/events", params={"limit": 20}).json()["events"]
        assert not any("\u0000" in (e["user"] or "") for e in events)
        models = [e["model"] for e in events]
        assert "gpt-4o-mini\ufffdx" in models, models
    finally:
        stack.stop()


def test_one_workspace_cannot_queue_unbounded_evidence_jobs(cp_sqlite):
    """A key holder with ``evidence:write`` fires bundle requests in parallel: each is a job that
    reads the workspace's receipts, signs and writes a file kept on disk. Only a few may be pending
    or running per workspace at once; the rest get 429 with Retry-After, another workspace is not
    affected, and once the jobs finish the workspace may ask again."""
    acme, capped = cp_sqlite.client("acme"), cp_sqlite.client("capped")
    replies: list = []
    threads = [
        threading.Thread(target=lambda: replies.append(acme.post("/v1/evidence/bundles", {}))) for _ in range(12)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted = [r for r in replies if r.status == 202]
    refused = [r for r in replies if r.status != 202]
    assert 1 <= len(accepted) < 12 and refused, [r.status for r in replies]
    for r in refused:
        _err(r, 429, "evidence.busy")
        assert r.headers.get("retry-after")
    assert capped.post("/v1/evidence/bundles", {}).status == 202
    eventually(lambda: acme.post("/v1/evidence/bundles", {}).status == 202, 30, "a new job once the others finished")
