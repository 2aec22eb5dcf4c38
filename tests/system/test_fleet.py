"""The fleet: three gateways (Envoy + sidecar each, three tenants) and one control plane, all real processes.

Envoy takes listeners, routes, clusters and endpoints over ADS; sidecars take
policy bundles. Covers config reaching every gateway without a restart, NACKs,
rolling deployments (wave by wave, automatic rollback, a sidecar dying
mid-rollout, the control plane restarting mid-rollout), provider credential
rotation with no failed call, tier limits, and fleet posture.
The tests share one fleet and run in file order.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.processes import Fleet, free_port, port_open, wait_until
from tests.conftest import POLICY_DIR, Gateway, write_config
from tests.cpclient import CP, eventually
from tests.httpcall import chat_body, curl

TENANTS = ["t-a", "t-b", "t-c"]
NEW_SECRET = "sk-test-openai-rotated"
POLICY = """name: fleet-guard
rego: |
  package fleet_guard
  import rego.v1
  deny contains "gpt-4o is not approved" if {{
    input.model == "gpt-4o"
    {enabled}
  }}
"""
BROKEN = """name: fleet-guard
rego: |
  package fleet_guard
  import rego.v1
  level := 1 if input.model != ""
  level := 2 if input.model != ""
  deny contains "never" if level == 3
"""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet")
    tokens = write_config(tmp / "config")
    f = Fleet(
        tmp / "run",
        tmp / "config",
        POLICY_DIR,
        TENANTS,
        cp_extra_args=["--checkpoint-interval", "1"],
        unreachable={"openai-dead"},
        extra_credentials=[NEW_SECRET],
        extproc_only={1},  # a mixed fleet: gw-1's sidecar serves no ext_authz check
    )
    f.start()
    f.tokens = tokens
    f.admin = CP(f.cp.cp_url, f.cp.admin_token)
    f.acme = CP(f.cp.cp_url, tokens["acme"])
    f.extra = []
    yield f
    for proc in f.extra:
        proc.terminate()
        proc.wait(10)
    f.stop()


def call(gw, key: str, model: str = "gpt-4o-mini", ws: str = "acme", **extra):
    return curl(
        f"{gw.gateway}/v1/{ws}/chat/completions",
        chat_body(model, max_tokens=4, **extra),
        {"authorization": f"Bearer {key}", "content-type": "application/json"},
    )


def sim(fleet, port: int):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "relaygate.providersim.server",
            "--port",
            str(port),
            "--credential",
            "sk-test-openai",
            "--credential",
            NEW_SECRET,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    fleet.extra.append(proc)
    wait_until(lambda: port_open(port), 15, "extra provider simulator", proc)
    return proc


def seen_on(port: int) -> list[dict]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sim/requests", timeout=5) as r:
        return [e for e in json.load(r) if e["port"] == port]


class Traffic(threading.Thread):
    """gpt-4o-mini calls round-robin over the gateways until stopped; remembers every reply."""

    def __init__(self, fleet, key: str, model: str = "gpt-4o-mini", pace: float = 0.03) -> None:
        super().__init__(daemon=True)
        self.fleet, self.key, self.model, self.pace = fleet, key, model, pace
        self.replies: list[tuple[str, int, str]] = []
        self.stop_flag = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop_flag.is_set():
            gw = self.fleet.gateways[i % len(self.fleet.gateways)]
            try:
                r = call(gw, self.key, self.model)
                code = r.json().get("error", {}).get("code", "") if r.status != 200 else ""
                self.replies.append((gw.instance_id, r.status, code))
            except Exception as e:
                self.replies.append((gw.instance_id, 0, repr(e)))
            i += 1
            time.sleep(self.pace)

    def finish(self) -> list[tuple[str, int, str]]:
        self.stop_flag.set()
        self.join(30)
        return self.replies


def envoy_pids(fleet) -> list[int]:
    return [gw.procs["envoy"].pid for gw in fleet.gateways]


def cp_metrics(fleet) -> list:
    """The control plane's /metrics samples."""
    r = fleet.admin.get("/metrics")
    assert r.status == 200
    return [s for fam in text_string_to_metric_families(r.text) for s in fam.samples]


def metric(samples, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


def cp_metric(fleet, name: str, **labels: str) -> float:
    return metric(cp_metrics(fleet), name, **labels)


# -- xDS -----------------------------------------------------------------------------------------


def _dynamic_filters(gw) -> list[str]:
    """The HTTP filters of the listener Envoy took over LDS."""
    import urllib.request

    url = f"http://127.0.0.1:{gw.envoy_admin_port}/config_dump?resource=dynamic_listeners"
    with urllib.request.urlopen(url, timeout=5) as r:
        [listener] = json.load(r)["configs"]
    hcm = listener["active_state"]["listener"]["filter_chains"][0]["filters"][0]["typed_config"]
    return [f["name"] for f in hcm["http_filters"]]


def test_each_gateway_decides_over_the_transport_its_sidecar_registered(fleet):
    """A sidecar that answers Envoy's ext_authz check registers where (an absolute socket path) and
    its Envoy is configured for that transport, the faster one; gw-1's sidecar serves only ext_proc
    (as one from before the ext_authz transport) and its Envoy keeps ext_proc. Both decide,
    route, rewrite and receipt calls alike."""
    insts = {i["id"]: i for i in fleet.admin.get("/v1/fleet/instances").json()["instances"]}
    for n in (0, 2):
        assert insts[f"gw-{n}"]["authz_address"] == f"unix:{fleet.gateways[n].authz_sockets[0].resolve()}"
    assert insts["gw-1"]["authz_address"] is None
    for gw in fleet.gateways:
        filters = _dynamic_filters(gw)
        if gw.serve_authz:
            assert "envoy.filters.http.ext_authz" in filters and "envoy.filters.http.ext_proc" not in filters
        else:
            assert "envoy.filters.http.ext_proc" in filters and "envoy.filters.http.ext_authz" not in filters
        g = Gateway(gw, fleet.tokens)
        # No max_tokens: the gateway injects it, so the rewritten body must reach the provider.
        r = curl(
            f"{gw.gateway}/v1/acme/chat/completions",
            chat_body(content=f"transport via {gw.instance_id}"),
            {"authorization": f"Bearer {fleet.tokens['acme']}", "content-type": "application/json"},
        )
        assert r.status == 200, (gw.instance_id, r.body)
        seen = [e for e in g.sim_requests() if f"transport via {gw.instance_id}" in e["body"]]
        assert len(seen) == 1 and json.loads(seen[0]["body"])["max_tokens"] > 0
        assert seen[0]["path"] == "/v1/chat/completions"
        doc = g.receipt_doc(r.receipt_id)
        assert doc["status"] == "complete" and doc["sidecar"] == gw.instance_id
        denied = call(gw, fleet.tokens["acme"][:-3] + "xyz")
        assert denied.status == 401 and denied.json()["error"]["code"] == "auth.unauthenticated"


def test_an_upstream_added_through_the_api_reaches_every_envoy_without_a_restart(fleet):
    pids = envoy_pids(fleet)
    key = fleet.tokens["acme"]
    assert all(call(gw, key, "gpt-new").status == 404 for gw in fleet.gateways)  # nobody serves it yet
    port = free_port()
    sim(fleet, port)
    spec = {
        "name": "openai-new",
        "provider": "openai",
        "address": f"127.0.0.1:{port}",
        "region": "us-west-2",
        "jurisdiction": "us",
        "credential": "openai",
        "models": {"gpt-new": {"input_per_1k": 0.1}},
    }
    assert fleet.admin.post("/v1/upstreams", spec).status == 201
    for gw in fleet.gateways:
        eventually(lambda: call(gw, key, "gpt-new").status == 200, 15, f"gpt-new through {gw.instance_id}")
    assert len(seen_on(port)) >= 3
    # A route change: the upstream moves to another address (EDS), still no restart.
    port2 = free_port()
    sim(fleet, port2)
    assert fleet.admin.put("/v1/upstreams/openai-new", {**spec, "address": f"127.0.0.1:{port2}"}).status == 200
    for gw in fleet.gateways:
        eventually(
            lambda: call(gw, key, "gpt-new").status == 200 and any(e["body"].count("gpt-new") for e in seen_on(port2)),
            15,
            f"the new address via {gw.instance_id}",
        )
    assert envoy_pids(fleet) == pids and all(gw.procs["envoy"].poll() is None for gw in fleet.gateways)
    fleet.spec, fleet.port2 = {**spec, "address": f"127.0.0.1:{port2}"}, port2


def test_a_nacked_config_is_reported_and_the_gateways_keep_serving(fleet):
    m = cp_metrics(fleet)
    nacks_before = metric(m, "relaygate_cp_xds_nacks_total")
    cds_before = metric(m, "relaygate_cp_xds_nacks_total", type="cds")
    assert metric(m, "relaygate_cp_xds_nacking_instances") == 0
    nacks0 = {x["id"]: x["xds"]["nacks"] for x in fleet.admin.get("/v1/fleet/instances").json()["instances"]}
    bad = {**fleet.spec, "envoy_cluster_overrides": {"connect_timeout": "0s"}}  # Envoy refuses a zero timeout
    assert fleet.admin.put("/v1/upstreams/openai-new", bad).status == 200
    insts = eventually(
        lambda: (i := fleet.admin.get("/v1/fleet/instances").json()["instances"])
        and all((x["xds"].get("last_nack") or {}).get("type") == "cds" for x in i)
        and i,
        15,
        "every gateway NACKing the clusters",
    )
    assert all(
        "connect_timeout" in x["xds"]["last_nack"]["message"] or "Proto constraint" in x["xds"]["last_nack"]["message"]
        for x in insts
    ), insts[0]["xds"]["last_nack"]
    key = fleet.tokens["acme"]
    for gw in fleet.gateways:  # last good config still in force: nothing went down
        assert call(gw, key).status == 200 and call(gw, key, "gpt-new").status == 200
    health = fleet.admin.get("/v1/fleet/health").json()
    assert {t["tenant"] for t in health["tenants"] if t["nacking"]} == set(TENANTS)
    assert all(t["status"] == "degraded" for t in health["tenants"])
    applied = {x["id"]: x["xds"]["applied"]["cds"] for x in insts}
    nacks = {x["id"]: x["xds"]["nacks"] for x in insts}
    # /metrics: every gateway refuses its clusters, and each NACK is counted by type.
    m = cp_metrics(fleet)
    assert metric(m, "relaygate_cp_xds_nacking_instances") == 3
    assert metric(m, "relaygate_cp_xds_nacks_total", type="cds") - cds_before >= 3
    now = {x["id"]: x["xds"]["nacks"] for x in fleet.admin.get("/v1/fleet/instances").json()["instances"]}
    assert metric(m, "relaygate_cp_xds_nacks_total") - nacks_before == sum(now.values()) - sum(nacks0.values())
    # A valid override is a new version, which every Envoy applies (ACKs).
    good = {**fleet.spec, "envoy_cluster_overrides": {"connect_timeout": "3s"}}
    assert fleet.admin.put("/v1/upstreams/openai-new", good).status == 200
    eventually(
        lambda: all(
            x["xds"]["applied"]["cds"] != applied[x["id"]]
            for x in fleet.admin.get("/v1/fleet/instances").json()["instances"]
        ),
        15,
        "the fixed config applied",
    )
    after = fleet.admin.get("/v1/fleet/instances").json()["instances"]
    assert {x["id"]: x["xds"]["nacks"] for x in after} == nacks
    assert all(x["xds"]["last_nack"]["resolved_at"] for x in after)
    assert not any(t["nacking"] for t in fleet.admin.get("/v1/fleet/health").json()["tenants"])
    eventually(lambda: cp_metric(fleet, "relaygate_cp_xds_nacking_instances") == 0, 15, "no gateway refusing")
    assert fleet.admin.put("/v1/upstreams/openai-new", fleet.spec).status == 200


# -- fleet posture ---------------------------------------------------------------------------------


def test_instances_report_posture_and_health_reports_evidence_emission(fleet):
    traffic = Traffic(fleet, fleet.tokens["acme"])
    traffic.start()
    eventually(lambda: len(traffic.replies) > 60, 30, "traffic")
    # Every call gets a receipt: under steady traffic, receipts received per call served
    # (counted over the same heartbeat window) converge on 1.
    health = eventually(
        lambda: (h := fleet.admin.get("/v1/fleet/health").json())
        and all((t["evidence_emission"] or 0) >= 0.8 for t in h["tenants"])
        and h,
        30,
        "evidence emission near 1 under steady traffic",
    )
    traffic.finish()
    for t in health["tenants"]:
        assert t["status"] == "healthy" and t["live"] == 1 and t["calls_per_s"] > 0 and t["receipts_per_s"] > 0
        assert 0.8 <= t["evidence_emission"] <= 1
        assert abs(t["receipts_per_s"] - t["calls_per_s"]) <= 0.25 * t["calls_per_s"]
    insts = fleet.admin.get("/v1/fleet/instances").json()["instances"]
    assert sorted((i["id"], i["tenant"]) for i in insts) == [("gw-0", "t-a"), ("gw-1", "t-b"), ("gw-2", "t-c")]
    for i in insts:
        p = i["posture"]
        assert not i["stale"] and i["staleness_seconds"] < 10 and i["xds"]["connected"]
        assert p["bundle_revision"] and p["signing_key_id"].startswith("ed25519:") and "receipts_backlog" in p
        assert {"allow", "deny"} <= set(p["decisions_per_s"]) and "errors_per_s" in p
        assert set(i["xds"]["applied"]) == {"lds", "rds", "cds", "eds"}
    assert fleet.admin.get("/v1/fleet/instances", params={"tenant": "t-b"}).json()["instances"][0]["id"] == "gw-1"
    assert fleet.acme.get("/v1/fleet/instances").status == 403
    # /metrics counts them the same way: three live, none stale.
    m = cp_metrics(fleet)
    assert metric(m, "relaygate_cp_fleet_instances", state="live") == 3
    assert metric(m, "relaygate_cp_fleet_instances", state="stale") == 0


# -- rolling deployments -----------------------------------------------------------------------------


def _deploy(fleet, version: int, **over) -> dict:
    body = {
        "policy_id": fleet.policy_id,
        "version": version,
        "tenants": TENANTS,
        "wave_size": 1,
        "pause_seconds": 2,
        "gates": {"adoption_timeout": 30, "stale_grace": 3, "evidence_grace": 1},
    }
    body.update(over)
    r = fleet.acme.post("/v1/fleet/deployments", body)
    assert r.status == 202, r.text
    return r.json()


def _dep(fleet, did: str) -> dict:
    return fleet.acme.get(f"/v1/fleet/deployments/{did}").json()


def _blocks_4o(gw, fleet) -> bool:
    r = call(gw, fleet.tokens["acme"], "gpt-4o")
    return r.status == 403 and r.json()["error"]["code"] == "policy.blocked"


def test_a_policy_deployment_rolls_wave_by_wave(fleet):
    created = fleet.acme.post("/v1/policies", yaml=POLICY.format(enabled='input.model == "never"'))
    assert created.status == 201
    fleet.policy_id = pid = created.json()["id"]
    v2 = fleet.acme.put(f"/v1/policies/{pid}", yaml=POLICY.format(enabled="true"), params={"activate": "false"})
    assert v2.json()["current_version"] == 1
    for gw in fleet.gateways:
        eventually(lambda: call(gw, fleet.tokens["acme"], "gpt-4o").status == 200, 10, "v1 everywhere")
    traffic = Traffic(fleet, fleet.tokens["acme"])
    traffic.start()
    before = cp_metrics(fleet)
    assert metric(before, "relaygate_cp_deployments") == 0  # the first deployment of this control plane
    dep = _deploy(fleet, 2)
    assert cp_metric(fleet, "relaygate_cp_deployments", status="running") == 1
    # Mid-rollout: the first tenant is on v2 while the last is still on v1.
    mid = eventually(lambda: (d := _dep(fleet, dep["id"]))["waves"][0]["status"] == "passed" and d, 60, "wave 0")
    if mid["waves"][2]["status"] == "pending":
        assert _blocks_4o(fleet.gateways[0], fleet) and not _blocks_4o(fleet.gateways[2], fleet)
    done = eventually(
        lambda: (d := _dep(fleet, dep["id"]))["status"] in ("succeeded", "rolled_back", "failed") and d,
        90,
        "the rollout",
    )
    traffic.finish()
    assert done["status"] == "succeeded", done
    order = [w["adopted_at"] for w in done["waves"]]
    assert order == sorted(order) and [w["tenants"] for w in done["waves"]] == [["t-a"], ["t-b"], ["t-c"]]
    assert all(w["status"] == "passed" and w["gates"]["error_rate"] in (0, None) for w in done["waves"])
    assert all(_blocks_4o(gw, fleet) for gw in fleet.gateways)
    kinds = [
        e["kind"]
        for e in fleet.acme.get("/v1/audit/events", params={"kind": "deployment.*", "limit": 500}).json()["events"]
        if e["detail"].get("deployment_id") == dep["id"]
    ]
    assert kinds[::-1] == ["deployment.started"] + [
        "deployment.wave_applied",
        "deployment.wave_adopted",
        "deployment.wave_passed",
    ] * 3 + ["deployment.succeeded"]
    # /metrics: one deployment, succeeded; three waves applied and passed.
    m = cp_metrics(fleet)

    def moved(name: str, **labels: str) -> float:
        return metric(m, name, **labels) - metric(before, name, **labels)

    assert {st: metric(m, "relaygate_cp_deployments", status=st) for st in ("running", "succeeded")} == {
        "running": 0,
        "succeeded": 1,
    }
    assert metric(m, "relaygate_cp_deployments") == 1
    assert [moved("relaygate_cp_deployment_waves_total", result=r) for r in ("applied", "passed", "failed")] == [
        3,
        3,
        0,
    ]
    assert moved("relaygate_cp_deployments_finished_total", status="succeeded") == 1
    assert moved("relaygate_cp_deployments_finished_total") == 1
    assert all(s == 200 for _, s, _ in traffic.replies), {s for _, s, _ in traffic.replies}


def test_a_deployment_that_breaks_calls_is_rolled_back_automatically(fleet):
    v3 = fleet.acme.put(f"/v1/policies/{fleet.policy_id}", yaml=BROKEN, params={"activate": "false"})
    assert v3.status == 200, v3.text
    traffic = Traffic(fleet, fleet.tokens["acme"])
    traffic.start()
    before = cp_metrics(fleet)
    dep = _deploy(
        fleet,
        3,
        pause_seconds=3,
        gates={"max_error_rate": 0.2, "adoption_timeout": 30, "stale_grace": 3, "evidence_grace": 1},
    )
    done = eventually(
        lambda: (d := _dep(fleet, dep["id"]))["status"] in ("succeeded", "rolled_back", "failed") and d,
        90,
        "the rollout to stop",
    )
    assert done["status"] == "rolled_back" and "error rate" in done["reason"], done
    assert done["waves"][0]["status"] == "failed" and done["waves"][1]["status"] == "pending"
    assert done["waves"][0]["gates"]["error_rate"] > 0.2
    m = cp_metrics(fleet)
    assert (
        metric(m, "relaygate_cp_deployment_waves_total", result="failed")
        - metric(before, "relaygate_cp_deployment_waves_total", result="failed")
        == 1
    )
    assert metric(m, "relaygate_cp_deployments", status="rolled_back") == 1
    assert metric(m, "relaygate_cp_deployments", status="running") == 0
    assert (
        metric(m, "relaygate_cp_deployments_finished_total", status="rolled_back")
        - metric(before, "relaygate_cp_deployments_finished_total", status="rolled_back")
        == 1
    )
    eventually(lambda: all(_blocks_4o(gw, fleet) for gw in fleet.gateways), 15, "every tenant back on v2")
    late = len(traffic.replies)
    eventually(lambda: len(traffic.replies) > late + 30, 20, "traffic after the rollback")
    replies = traffic.finish()
    errors = [(g, s, c) for g, s, c in replies if s != 200]
    assert errors and {g for g, _, _ in errors} == {"gw-0"}  # only the first wave ever broke
    assert all(c == "policy.error" for _, _, c in errors)
    assert all(s == 200 for _, s, _ in replies[late + 3 :])  # and it recovered


def test_a_sidecar_killed_during_a_rollout_is_reported_stale_and_the_rollout_fails_back(fleet):
    v4 = fleet.acme.put(
        f"/v1/policies/{fleet.policy_id}",
        yaml=POLICY.format(enabled='input.user != "vip"'),
        params={"activate": "false"},
    )
    assert v4.status == 200
    dep = _deploy(fleet, 4, pause_seconds=4)
    eventually(lambda: _dep(fleet, dep["id"])["waves"][0]["status"] == "observing", 30, "wave 0 observing")
    fleet.gateways[1].stop_one("extproc", signal.SIGKILL)
    stale = eventually(
        lambda: [i for i in fleet.admin.get("/v1/fleet/instances").json()["instances"] if i["stale"]],
        30,
        "the dead sidecar reported stale",
    )
    assert [i["id"] for i in stale] == ["gw-1"]
    eventually(
        lambda: (m := cp_metrics(fleet))
        and metric(m, "relaygate_cp_fleet_instances", state="stale") == 1
        and metric(m, "relaygate_cp_fleet_instances", state="live") == 2,
        15,
        "/metrics counting gw-1 stale",
    )
    assert (
        "gw-1"
        in next(t for t in fleet.admin.get("/v1/fleet/health").json()["tenants"] if t["tenant"] == "t-b")["stale"]
    )
    done = eventually(
        lambda: (d := _dep(fleet, dep["id"]))["status"] in ("succeeded", "rolled_back", "failed") and d,
        90,
        "the rollout to stop",
    )
    assert done["status"] == "rolled_back" and "gw-1" in done["reason"] and "stale" in done["reason"], done
    fleet.gateways[1].start_extproc()
    eventually(
        lambda: not any(i["stale"] for i in fleet.admin.get("/v1/fleet/instances").json()["instances"]), 30, "gw-1 back"
    )
    eventually(lambda: cp_metric(fleet, "relaygate_cp_fleet_instances", state="live") == 3, 15, "/metrics: gw-1 live")
    eventually(lambda: all(_blocks_4o(gw, fleet) for gw in fleet.gateways), 15, "every tenant on v2 again")


def test_the_control_plane_restarted_mid_rollout_resumes_it(fleet):
    dep = _deploy(fleet, 4, pause_seconds=3)
    eventually(lambda: _dep(fleet, dep["id"])["waves"][0]["status"] == "passed", 60, "wave 0 passed")
    by_status = {st: cp_metric(fleet, "relaygate_cp_deployments", status=st) for st in ("running", "rolled_back")}
    assert by_status == {"running": 1, "rolled_back": 2}
    fleet.cp.stop_one("controlplane")
    fleet.cp.start_controlplane()
    assert "resuming deployment " + dep["id"] in (fleet.cp.run_dir / "controlplane.log").read_text()
    # The new process counts the deployments from the database: the same figures.
    m = cp_metrics(fleet)
    assert {st: metric(m, "relaygate_cp_deployments", status=st) for st in ("running", "rolled_back")} == by_status
    assert metric(m, "relaygate_cp_deployments", status="succeeded") == 1
    done = eventually(
        lambda: (d := _dep(fleet, dep["id"]))["status"] in ("succeeded", "rolled_back", "failed") and d,
        120,
        "the resumed rollout",
    )
    assert done["status"] == "succeeded", done
    assert all(w["status"] == "passed" for w in done["waves"])
    # v4 blocks gpt-4o except for the user "vip": the new version is live on every tenant.
    for gw in fleet.gateways:
        eventually(
            lambda: call(gw, fleet.tokens["acme"], "gpt-4o", user="vip").status == 200, 15, f"v4 on {gw.instance_id}"
        )
        assert _blocks_4o(gw, fleet)


def test_a_rollback_requested_mid_rollout_restores_every_tenant_and_only_once(fleet):
    """POST .../rollback: the running waves stop, the tenants already moved go back (v4 blocks gpt-4o
    again on gw-0), a second request is refused (409), and another workspace's key cannot touch it."""
    dep = _deploy(fleet, 1, pause_seconds=60)  # v1 does not block gpt-4o; v4 (live) does
    eventually(lambda: _dep(fleet, dep["id"])["waves"][0]["status"] == "observing", 60, "wave 0 adopted")
    eventually(lambda: not _blocks_4o(fleet.gateways[0], fleet), 15, "v1 on the first tenant")
    assert CP(fleet.cp.cp_url, fleet.tokens["euro"]).post(f"/v1/fleet/deployments/{dep['id']}/rollback").status == 404
    r = fleet.acme.post(f"/v1/fleet/deployments/{dep['id']}/rollback")
    assert r.status == 202 and r.json()["status"] == "rolling_back", r.text
    done = eventually(lambda: (d := _dep(fleet, dep["id"]))["status"] == "rolled_back" and d, 60, "rolled back")
    assert "rollback requested by" in done["reason"]
    assert done["waves"][2]["status"] == "pending"  # the last tenant was never touched
    eventually(lambda: all(_blocks_4o(gw, fleet) for gw in fleet.gateways), 15, "every tenant on v4 again")
    again = fleet.acme.post(f"/v1/fleet/deployments/{dep['id']}/rollback")
    assert again.status == 409 and again.json()["error"]["code"] == "deployment.finished"
    kinds = [
        e["kind"]
        for e in fleet.acme.get("/v1/audit/events", params={"kind": "deployment.*", "limit": 500}).json()["events"]
        if e["detail"].get("deployment_id") == dep["id"]
    ]
    assert kinds.count("deployment.rollback_requested") == 1 and kinds[0] == "deployment.rolled_back"


# -- credentials and limits ------------------------------------------------------------------------------


def test_provider_credential_rotation_reaches_every_sidecar_without_a_failed_call(fleet):
    us_port = next(u.port for u in fleet.cp.cfg.upstreams if u.name == "openai-us")
    traffic = Traffic(fleet, fleet.tokens["acme"], pace=0.02)
    traffic.start()
    eventually(lambda: len(traffic.replies) > 30, 20, "traffic")
    r = fleet.admin.post("/v1/fleet/credentials/rotate", {"kind": "provider", "name": "openai", "secret": NEW_SECRET})
    assert r.status == 200 and r.json()["version"] >= 2
    assert NEW_SECRET not in r.text
    eventually(
        lambda: all(e["headers"].get("Authorization") == f"Bearer {NEW_SECRET}" for e in seen_on(us_port)[-9:]),
        20,
        "every gateway on the new credential",
    )
    replies = traffic.finish()
    assert replies and all(s == 200 for _, s, _ in replies), {(s, c) for _, s, c in replies}
    custody = fleet.admin.get("/v1/fleet/custody")
    assert NEW_SECRET not in custody.text
    rotated = [e["event"] for e in custody.json()["events"] if e["event"]["type"] == "credential.rotated"]
    assert rotated[-1]["credential"] == "openai" and rotated[-1]["version"] == r.json()["version"]
    events = fleet.admin.get("/v1/audit/events", params={"kind": "credential.rotated"}).json()["events"]
    assert events[0]["detail"]["credential"] == "openai" and NEW_SECRET not in json.dumps(events)
    assert (
        fleet.admin.post("/v1/fleet/credentials/rotate", {"kind": "provider", "name": "ghost", "secret": "x"}).status
        == 404
    )


def test_workspace_tier_limits_are_enforced_on_the_hot_path_with_retry_after(fleet):
    gw, key = fleet.gateways[0], fleet.tokens["euro"]
    assert fleet.admin.put("/v1/workspaces/euro", {"limits": {"requests_per_second": 2}}).status == 200

    def limited():
        replies = [call(gw, key, ws="euro") for _ in range(6)]
        return next((r for r in replies if r.status == 429), None)

    r = eventually(limited, 15, "the request limit in force")
    assert "requests_per_second" in r.json()["error"]["message"]
    assert r.json()["error"]["code"] == "rate.limited" and int(r.headers["retry-after"]) >= 1
    assert call(fleet.gateways[0], fleet.tokens["acme"]).status == 200  # another workspace is unaffected
    assert (
        fleet.admin.put(
            "/v1/workspaces/euro", {"limits": {"requests_per_second": None, "tokens_per_minute": 600}}
        ).status
        == 200
    )
    r = eventually(
        lambda: (x := call(gw, key, ws="euro", content="y" * 40))
        and x.status == 429
        and "tokens_per_minute" in x.json()["error"]["message"]
        and x,
        15,
        "the token limit in force",
    )
    assert r.json()["error"]["code"] == "rate.limited" and int(r.headers["retry-after"]) >= 1
    assert fleet.admin.put("/v1/workspaces/euro", {"limits": {"tokens_per_minute": None}}).status == 200
    eventually(lambda: call(gw, key, ws="euro").status == 200, 15, "limits lifted")
