"""Several control-plane replicas behind one address: three replicas on one PostgreSQL database and
one Redis, three gateways (gateway j takes its bundles and xDS from replica j), all real processes.

A change made through one replica reaches the gateways attached to the others within a second
(PostgreSQL LISTEN/NOTIFY, relaygate/controlplane/changefeed.py); the per-workspace control-plane
rate limit holds across replicas (Redis, or PostgreSQL without Redis); a replica whose listening
connection is cut reconnects and catches up; a forged notification triggers an invalidation and
nothing else. The tests share one cluster and run in file order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import subprocess
import time
import urllib.request

import pytest

from devstack.processes import Cluster, free_port
from devstack.redis_server import RedisServer
from relaygate.controlplane import changefeed
from tests.conftest import POLICY_DIR, start_controlplane, write_config
from tests.cpclient import CP, eventually
from tests.httpcall import chat_body, curl

TENANTS = ["t-a", "t-b", "t-c"]
DENY_4O = """name: replica-guard
rego: |
  package replica_guard
  import rego.v1
  deny contains "gpt-4o is not approved" if input.model == "gpt-4o"
"""


def own_database(pg, name: str) -> str:
    """A database of this module's own on the session's PostgreSQL server (other modules reset theirs)."""
    psql = [str(pg.bin / "psql"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "relaygate", "-d", "postgres", "-c"]
    subprocess.run(psql + [f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=True, capture_output=True)
    subprocess.run(psql + [f"CREATE DATABASE {name}"], check=True, capture_output=True)
    return f"postgresql://relaygate@127.0.0.1:{pg.port}/{name}"


def sql(url: str, query: str, *args):
    """Rows of one query, over a connection of the test's own (asyncpg, as the replicas use)."""
    import asyncpg

    async def run():
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, postgres, redis_server):
    tmp = tmp_path_factory.mktemp("replicas")
    tokens = write_config(tmp / "config")
    url = own_database(postgres, "rg_replicas")
    c = Cluster(tmp / "run", tmp / "config", POLICY_DIR, url, replicas=3, tenants=TENANTS, redis_url=redis_server.url)
    c.start()
    c.url, c.tokens = url, tokens
    c.admin = [CP(cp.cp_url, cp.admin_token) for cp in c.cps]
    c.acme = [CP(cp.cp_url, tokens["acme"]) for cp in c.cps]
    yield c
    c.stop()


def call(gw, key: str, model: str = "gpt-4o-mini"):
    return curl(
        f"{gw.gateway}/v1/acme/chat/completions",
        chat_body(model, max_tokens=4),
        {"authorization": f"Bearer {key}", "content-type": "application/json"},
    )


def within(seconds: float, check, what: str) -> float:
    """When ``check`` first held, in seconds from now: the start of the first check that passed,
    which must have started within ``seconds`` (polled back to back, never slept). A gateway call
    is decided by the bundle in force when its headers arrive, so a call sent at t and denied
    shows the policy was there at t, whatever the first evaluation of a new policy then costs."""
    start = time.monotonic()
    while True:
        sent = time.monotonic()
        if sent - start > seconds:
            raise AssertionError(f"{what} not seen within {seconds}s")
        if check():
            return sent - start


def replica_id(cp) -> str:
    """The replica id the change feed logged at start (its LISTEN connection's application_name)."""
    log = (cp.run_dir / "controlplane.log").read_text()
    return log.split("change feed: replica ", 1)[1].split(" listening", 1)[0]


def test_replicas_started_together_share_one_seed_and_one_set_of_keys(cluster):
    """Three replicas started at once on an empty database: one migration, one seed, one bundle
    signing key and one tree-head key, and every replica serves the same workspaces."""
    pubs = {(cp.cp_data / "bundle-signing.pub").read_bytes() for cp in cluster.cps}
    assert len(pubs) == 1
    assert len(sql(cluster.url, "SELECT key_id FROM signing_keys WHERE purpose = 'tree-head'")) == 1
    names = [sorted(w["id"] for w in a.get("/v1/workspaces").json()["workspaces"]) for a in cluster.admin]
    assert names[0] and names == [names[0]] * 3
    assert len(sql(cluster.url, "SELECT id FROM workspaces")) == len(names[0])
    # Each replica listens on the change feed with a connection of its own.
    listening = sql(
        cluster.url,
        "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE $1",
        "relaygate-cp-listen:%",
    )
    assert sorted(r[0] for r in listening) == sorted(changefeed.APP_NAME_PREFIX + replica_id(cp) for cp in cluster.cps)
    for cp in cluster.cps:
        assert CP(cp.cp_url, cluster.tokens["acme"]).get("/api/health").json()["services"]["change_feed"] == "healthy"


def test_a_policy_published_through_one_replica_is_enforced_by_a_gateway_on_another_within_a_second(cluster):
    key = cluster.tokens["acme"]
    for gw in cluster.gateways:
        assert call(gw, key, "gpt-4o").status == 200
    created = cluster.acme[0].post("/v1/policies", yaml=DENY_4O)
    assert created.status == 201, created.text
    took = within(1.0, lambda: call(cluster.gateways[1], key, "gpt-4o").status == 403, "the deny on gw-1 (replica 1)")
    print(f"policy change on replica 0 enforced on gw-1 after {took * 1000:.0f} ms")
    within(1.0, lambda: call(cluster.gateways[2], key, "gpt-4o").status == 403, "the deny on gw-2 (replica 2)")
    assert call(cluster.gateways[0], key, "gpt-4o").status == 403
    # And back, through another replica: deleting it on replica 2 frees gw-0 (replica 0).
    assert cluster.acme[2].delete(f"/v1/policies/{created.json()['id']}").status == 204
    within(1.0, lambda: call(cluster.gateways[0], key, "gpt-4o").status == 200, "the policy gone on gw-0")


def test_a_revoked_key_stops_working_on_a_gateway_attached_to_another_replica_within_a_second(cluster):
    made = cluster.acme[0].post("/v1/keys", {"name": "short-lived"})
    assert made.status == 201, made.text
    kid, secret = made.json()["key"]["id"], made.json()["secret"]
    eventually(lambda: call(cluster.gateways[2], secret).status == 200, 10, "the new key on gw-2")
    assert cluster.acme[1].post(f"/v1/keys/{kid}/revoke", {}).status == 200
    within(1.0, lambda: call(cluster.gateways[2], secret).status == 401, "the revoked key refused on gw-2")


def _clusters(gw) -> set[str]:
    url = f"http://127.0.0.1:{gw.envoy_admin_port}/config_dump?resource=dynamic_active_clusters"
    with urllib.request.urlopen(url, timeout=5) as r:
        return {c["cluster"]["name"] for c in json.load(r).get("configs", [])}


def test_an_upstream_added_through_one_replica_reaches_the_envoy_on_another(cluster):
    gw = cluster.gateways[2]
    key = cluster.tokens["acme"]
    sim_port = next(u.port for u in gw.cfg.upstreams if u.name == "openai-us")
    before = _clusters(gw)
    spec = {
        "name": "openai-replicated",
        "provider": "openai",
        "address": f"127.0.0.1:{sim_port}",
        "region": "us-west-2",
        "jurisdiction": "us",
        "credential": "openai",
        "models": {"gpt-replicated": {"input_per_1k": 0.1}},
    }
    assert call(gw, key, "gpt-replicated").status == 404
    assert cluster.admin[0].post("/v1/upstreams", spec).status == 201
    took = within(1.0, lambda: _clusters(gw) - before, "the new cluster in gw-2's Envoy (replica 2)")
    print(f"upstream added on replica 0 in gw-2's Envoy after {took * 1000:.0f} ms")
    eventually(lambda: call(gw, key, "gpt-replicated").status == 200, 10, "a call to the new upstream via gw-2")


def built(cp) -> float:
    """Bundles replica ``cp`` has built (its /metrics)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = CP(cp.cp_url, cp.admin_token).get("/metrics").text
    return sum(
        s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == "relaygate_cp_bundle_builds_total" and s.labels.get("result") == "built"
    )


def test_a_replica_whose_listen_connection_is_cut_reconnects_and_still_sees_changes(cluster):
    cp, log = cluster.cps[1], cluster.cps[1].run_dir / "controlplane.log"
    name = changefeed.APP_NAME_PREFIX + replica_id(cp)
    [before] = sql(cluster.url, "SELECT pid FROM pg_stat_activity WHERE application_name = $1", name)
    reconnects = log.read_text().count("change feed: reconnected")
    [[cut]] = sql(cluster.url, "SELECT pg_terminate_backend($1)", before["pid"])
    assert cut is True
    eventually(lambda: log.read_text().count("change feed: reconnected") > reconnects, 15, "the feed reconnected")
    assert "the LISTEN connection to PostgreSQL was lost" in log.read_text()
    [after] = sql(cluster.url, "SELECT pid FROM pg_stat_activity WHERE application_name = $1", name)
    assert after["pid"] != before["pid"]
    health = CP(cp.cp_url, cluster.tokens["acme"]).get("/api/health").json()
    assert health["services"]["change_feed"] == "healthy"
    key = cluster.tokens["acme"]
    created = cluster.acme[0].post("/v1/policies", yaml=DENY_4O)
    assert created.status == 201, created.text
    within(1.0, lambda: call(cluster.gateways[1], key, "gpt-4o").status == 403, "the deny on gw-1 after the cut")
    assert cluster.acme[0].delete(f"/v1/policies/{created.json()['id']}").status == 204
    within(1.0, lambda: call(cluster.gateways[1], key, "gpt-4o").status == 200, "the policy gone on gw-1")


def test_a_forged_notification_can_only_trigger_an_invalidation(cluster):
    """Anyone with a database login can NOTIFY on the feed's channel. The payload names what to
    invalidate and nothing else: a replica rereads the database, so a forged notification carrying
    a policy, a bundle or a key changes nothing the gateways enforce; one that does not parse or
    names an unknown kind invalidates everything (a rebuild, the same revision); one claiming the
    receiver's own id is ignored."""
    cp, gw, key = cluster.cps[1], cluster.gateways[1], cluster.tokens["acme"]
    log = cp.run_dir / "controlplane.log"
    assert call(gw, key, "gpt-4o").status == 200
    builds = built(cp)
    forged = [
        json.dumps({"origin": "attacker", "kind": "config", "policy": DENY_4O, "bundle": "AAAA", "revoke": [key]}),
        "not json at all",
        json.dumps({"origin": "attacker", "kind": "drop-every-key"}),
        json.dumps({"origin": replica_id(cp), "kind": "config"}),
    ]
    for p in forged:
        sql(cluster.url, "SELECT pg_notify($1, $2)", changefeed.CHANNEL, p)
    eventually(
        lambda: "change notification not understood" in log.read_text() and "of unknown kind" in log.read_text(),
        5,
        "the forged notifications handled",
    )
    eventually(lambda: built(cp) > builds, 5, "replica 1 rebuilt its bundle from the database")
    # Nothing the forged payloads carried took effect: the key works and gpt-4o is not denied.
    assert call(gw, key, "gpt-4o").status == 200
    assert call(gw, key).status == 200
    assert CP(cp.cp_url, key).get("/v1/keys").status == 200


def exact_limit(cps, ws: str, rps: int = 10, n: int = 30) -> None:
    """A fresh workspace with ``control_plane_rps`` = rps (a bucket holding rps calls, refilling rps
    per second); ``n`` concurrent calls of its key spread round-robin over the replicas: exactly the
    bucket passes (plus what refilled while the burst ran; one bucket per replica would pass up to
    ``rps`` on each), the rest are 429 with Retry-After."""
    admin = CP(cps[0].cp_url, cps[0].admin_token)
    made = admin.post("/v1/workspaces", {"id": ws, "limits": {"control_plane_rps": rps}})
    assert made.status == 201, made.text
    key = admin.post("/v1/keys", {"name": "burst"}, headers={"X-Relaygate-Workspace": ws})
    assert key.status == 201, key.text
    clients = [CP(cp.cp_url, key.json()["secret"]) for cp in cps]
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        replies = list(pool.map(lambda i: clients[i % len(clients)].get("/v1/keys"), range(n)))
    elapsed = time.monotonic() - start
    ok = [r for r in replies if r.status == 200]
    limited = [r for r in replies if r.status == 429]
    assert len(ok) + len(limited) == n, [(r.status, r.text[:200]) for r in replies]
    assert rps <= len(ok) <= rps + int(rps * elapsed), (len(ok), elapsed)
    for r in limited:
        assert r.error["code"] == "rate_limited" and int(r.headers["retry-after"]) >= 1
    print(f"{len(ok)} of {n} passed over {len(cps)} replicas in {elapsed * 1000:.0f} ms (rate {rps}/s)")


def test_the_workspace_rate_limit_is_exact_across_replicas_with_redis(cluster):
    exact_limit(cluster.cps, "burst-redis")
    # The buckets are Redis's (the control plane's prefix), not the replicas' memory.
    import redis

    assert redis.Redis.from_url(cluster.redis_url).exists("relaygate:cp:rate:ws:burst-redis")


def test_the_workspace_rate_limit_is_exact_across_replicas_on_postgresql_without_redis(tmp_path_factory, postgres):
    """A replica set with no Redis charges one bucket row per key in PostgreSQL."""
    tmp = tmp_path_factory.mktemp("replicas-pg")
    write_config(tmp / "config")
    url = own_database(postgres, "rg_replicas_pg")
    c = Cluster(tmp / "run", tmp / "config", POLICY_DIR, url, replicas=3, tenants=[])
    c.start(gateways=False)
    try:
        exact_limit(c.cps, "burst-pg")
        # One row for the workspace, drained by the burst (the replicas charged the same row).
        [row] = sql(url, "SELECT level FROM cp_rate_buckets WHERE key = 'ws:burst-pg'")
        assert row["level"] < 2
    finally:
        c.stop()


def test_shared_rate_limits_unreachable_fail_closed_with_503(tmp_path):
    """Redis configured but down: control-plane calls are refused (503 rate.unavailable, Retry-After),
    never let through unlimited; unauthenticated health checks still answer."""
    cp = start_controlplane(tmp_path, env={"RELAYGATE_CP_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    try:
        r = CP(cp.stack.cp_url, cp.tokens["acme"]).get("/v1/keys")
        assert r.status == 503 and r.error["code"] == "rate.unavailable" and r.headers["retry-after"] == "1"
        assert CP(cp.stack.cp_url).get("/healthz").status == 200
        assert "control-plane rate limits unreachable" in (cp.stack.run_dir / "controlplane.log").read_text()
    finally:
        cp.stack.stop()


def test_a_tree_head_key_rotated_on_one_replica_is_current_on_every_replica_within_a_second(cluster):
    """Every replica signs tree heads and evidence bundles with the current tree-head key: one
    rotated through replica 0 is the key replicas 1 and 2 use within a second, not the retired one."""
    before = {a.get("/v1/audit/keys").json()["current_key_id"] for a in cluster.admin}
    assert len(before) == 1
    r = cluster.admin[0].post("/v1/fleet/credentials/rotate", {"kind": "tree_head"})
    assert r.status == 200, r.text
    new = cluster.admin[0].get("/v1/audit/keys").json()["current_key_id"]
    assert new not in before
    within(
        1.0,
        lambda: all(a.get("/v1/audit/keys").json()["current_key_id"] == new for a in cluster.admin[1:]),
        "the new tree-head key on replicas 1 and 2",
    )
