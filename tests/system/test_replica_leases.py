"""Deployments and evidence jobs owned by one replica at a time; fleet health read from the database.

Three control-plane replicas (real processes, ``--lease-ttl 2``) on one PostgreSQL database and
three gateways (Envoy + sidecar, tenants t-a, t-b, t-c), each heartbeating to another replica.
Covers: the same fleet health on every replica; a deployment whose replica is SIGKILLed mid-wave
resumed by another within the lease and finished with every wave step recorded once; an
evidence job whose replica is SIGKILLed mid-job finished by another and downloadable and
verifiable through every replica; many jobs and deployments with every replica alive each run
once; a replica frozen (SIGSTOP) past its lease writes no stage after SIGCONT (fencing).
The rolled-out tenants (t-x, t-y, t-z) have no gateways, so a wave's adoption is immediate and the
deployment's stages run on time alone (adoption by gateways is test_fleet.py's).
The tests share one cluster and run in file order.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import signal
import time

import pytest

from devstack.processes import Cluster
from tests.conftest import POLICY_DIR, write_config
from tests.cpclient import CP, eventually
from tests.httpcall import chat_body, curl

TTL = 2.0
TENANTS = ["t-a", "t-b", "t-c"]
ROLLED = ["t-x", "t-y", "t-z"]
POLICY = """name: lease-guard
rego: |
  package lease_guard
  import rego.v1
  deny contains "{why}" if input.model == "never-{why}"
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, postgres):
    tmp = tmp_path_factory.mktemp("leases")
    tokens = write_config(tmp / "config")
    postgres.reset_database()
    c = Cluster(
        tmp / "run",
        tmp / "config",
        POLICY_DIR,
        postgres.url,
        replicas=3,
        tenants=TENANTS,
        attach=[0, 1, 2],
        cp_extra_args=["--lease-ttl", str(TTL), "--checkpoint-interval", "1"],
    )
    for i, cp in enumerate(c.cps):
        cp.cp_extra_args += ["--replica-id", f"cp-{i}"]
    c.start()
    c.tokens = tokens
    c.db_url = postgres.url
    yield c
    for cp in c.cps:  # a test that failed between SIGSTOP and SIGCONT must not leave a frozen process
        proc = cp.procs.get("controlplane")
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
    c.stop()


def acme(cluster, i: int) -> CP:
    return CP(cluster.cps[i].cp_url, cluster.tokens["acme"])


def admin(cluster, i: int) -> CP:
    return CP(cluster.cps[i].cp_url, cluster.cps[i].admin_token)


def log_of(cluster, i: int) -> str:
    return (cluster.cps[i].run_dir / "controlplane.log").read_text()


def sql(cluster, query: str, *args):
    import asyncpg

    async def run():
        conn = await asyncpg.connect(cluster.db_url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def restart_if_down(cluster, i: int) -> None:
    proc = cluster.cps[i].procs.get("controlplane")
    if proc is None or proc.poll() is not None:
        cluster.cps[i].procs.pop("controlplane", None)
        cluster.cps[i].start_controlplane()


def deployment_events(cp: CP, did: str) -> list[dict]:
    events = cp.get("/v1/audit/events", params={"kind": "deployment.*", "limit": 500}).json()["events"]
    return [e for e in events if e["detail"].get("deployment_id") == did][::-1]  # oldest first


def steps_once(events: list[dict], waves: int) -> None:
    """Every wave applied, adopted and passed exactly once, in order; started and succeeded once."""
    kinds = [e["kind"] for e in events if e["kind"] != "deployment.resumed"]
    assert kinds == ["deployment.started"] + [
        "deployment.wave_applied",
        "deployment.wave_adopted",
        "deployment.wave_passed",
    ] * waves + ["deployment.succeeded"], kinds
    for step in ("wave_applied", "wave_adopted", "wave_passed"):
        assert [e["detail"]["wave"] for e in events if e["kind"] == f"deployment.{step}"] == list(range(waves))


def new_version(cluster, why: str) -> tuple[str, int]:
    cp = acme(cluster, 0)
    pid = getattr(cluster, "policy_id", None)
    if pid is None:
        r = cp.post("/v1/policies", yaml=POLICY.format(why="v1"))
        assert r.status == 201, r.text
        cluster.policy_id = pid = r.json()["id"]
    r = cp.put(f"/v1/policies/{pid}", yaml=POLICY.format(why=why), params={"activate": "false"})
    assert r.status == 200, r.text
    versions = cp.get(f"/v1/policies/{pid}/versions").json()
    return pid, max(v["version"] for v in versions["versions"])


def deploy(cluster, i: int, why: str, pause: float, tenants=ROLLED) -> dict:
    pid, version = new_version(cluster, why)
    r = acme(cluster, i).post(
        "/v1/fleet/deployments",
        {
            "policy_id": pid,
            "version": version,
            "tenants": tenants,
            "wave_size": 1,
            "pause_seconds": pause,
            "gates": {"adoption_timeout": 10, "stale_grace": 3, "evidence_grace": 0.2},
        },
    )
    assert r.status == 202, r.text
    return r.json()


def finished(cp: CP, did: str, timeout: float = 60) -> dict:
    return eventually(
        lambda: (d := cp.get(f"/v1/fleet/deployments/{did}").json())["status"] in ("succeeded", "rolled_back", "failed")
        and d,
        timeout,
        f"deployment {did} to finish",
    )


def lease_of(cluster, kind: str, key: str) -> dict | None:
    rows = sql(cluster, "SELECT owner, epoch, expires_ms FROM work_leases WHERE kind = $1 AND id = $2", kind, key)
    return dict(rows[0]) if rows else None


# -- fleet health -----------------------------------------------------------------------------------


def test_fleet_health_is_the_same_on_every_replica(cluster):
    """Each gateway heartbeats to its own replica; the rate windows come from the database, so every
    replica measures every tenant (with in-memory windows a replica saw only its own gateway's)."""
    for j, gw in enumerate(cluster.gateways):
        for k in range(4 + 2 * j):
            r = curl(
                f"{gw.gateway}/v1/acme/chat/completions",
                chat_body("gpt-4o-mini", content=f"health {j} {k}", max_tokens=4),
                {"authorization": f"Bearer {cluster.tokens['acme']}", "content-type": "application/json"},
            )
            assert r.status == 200, r.text

    def same_everywhere():
        docs = []
        for i in range(3):
            doc = admin(cluster, i).get("/v1/fleet/health").json()
            docs.append({t["tenant"]: {k: v for k, v in t.items()} for t in doc["tenants"]})
        measured = all(
            set(d) == set(TENANTS) and all(d[t]["error_rate"] is not None and d[t]["calls_per_s"] > 0 for t in TENANTS)
            for d in docs
        )
        return docs if measured and docs[0] == docs[1] == docs[2] else None

    docs = eventually(same_everywhere, 40, "the same measured health on every replica")
    assert all(docs[0][t]["status"] == "healthy" and docs[0][t]["live"] == 1 for t in TENANTS), docs[0]
    # Every replica lists the same instances, none stale, whichever replica got their heartbeats.
    listed = [
        sorted((x["id"], x["stale"]) for x in admin(cluster, i).get("/v1/fleet/instances").json()["instances"])
        for i in range(3)
    ]
    assert listed[0] == listed[1] == listed[2] == [("gw-0", False), ("gw-1", False), ("gw-2", False)]
    # The samples table is bounded: at most a window's worth of heartbeats per gateway (2 s apart).
    counts = sql(cluster, "SELECT instance_id, count(*) AS n FROM heartbeat_samples GROUP BY instance_id")
    assert {r["instance_id"] for r in counts} == {"gw-0", "gw-1", "gw-2"}
    assert all(r["n"] <= 30 / 2 + 3 for r in counts), counts


# -- deployments ------------------------------------------------------------------------------------


def test_a_deployment_whose_replica_is_killed_mid_wave_is_resumed_by_another(cluster):
    dep = deploy(cluster, 0, "killed", pause=3)
    did = dep["id"]
    assert lease_of(cluster, "deployment", did)["owner"] == "cp-0"  # the replica that created it runs it
    watcher = acme(cluster, 1)
    eventually(
        lambda: (d := watcher.get(f"/v1/fleet/deployments/{did}").json())["current_wave"] == 1
        and d["stage"] == "observing",
        30,
        "wave 1 observing",
    )
    cluster.kill_replica(0)
    killed = time.monotonic()
    resumed = eventually(
        lambda: [e for e in deployment_events(watcher, did) if e["kind"] == "deployment.resumed"], 15, "the takeover"
    )
    took = time.monotonic() - killed
    # The lease lapses at most TTL after the last renewal and the next scan (every TTL/3) takes it
    # over; the rest is slack for a loaded machine.
    assert took < 3 * TTL + 2, took
    assert len(resumed) == 1 and resumed[0]["detail"]["replica"] in ("cp-1", "cp-2"), resumed
    assert resumed[0]["detail"]["epoch"] == 2
    new_owner = int(resumed[0]["detail"]["replica"][-1])
    assert f"resuming deployment {did}" in log_of(cluster, new_owner)
    done = finished(watcher, did)
    assert done["status"] == "succeeded", done
    assert [w["status"] for w in done["waves"]] == ["passed"] * 3
    steps_once(deployment_events(watcher, did), 3)
    pins = sql(cluster, "SELECT tenant, version, deployment_id FROM tenant_pins WHERE policy_id = $1", dep["policy_id"])
    assert sorted((r["tenant"], r["version"], r["deployment_id"]) for r in pins) == [
        (t, dep["version"], did) for t in ROLLED
    ]
    assert lease_of(cluster, "deployment", did)["owner"] is None  # released when it finished
    restart_if_down(cluster, 0)


def test_a_rollback_requested_through_a_replica_that_does_not_own_the_deployment_takes_effect(cluster):
    dep = deploy(cluster, 1, "rollback", pause=3)
    did = dep["id"]
    eventually(
        lambda: acme(cluster, 2).get(f"/v1/fleet/deployments/{did}").json()["stage"] == "observing",
        20,
        "wave 0 observing",
    )
    assert lease_of(cluster, "deployment", did)["owner"] == "cp-1"
    r = acme(cluster, 2).post(f"/v1/fleet/deployments/{did}/rollback")
    assert r.status == 202, r.text
    assert r.json()["status"] == "rolling_back"
    done = finished(acme(cluster, 0), did)
    assert done["status"] == "rolled_back" and "rollback requested" in done["reason"], done
    kinds = [e["kind"] for e in deployment_events(acme(cluster, 0), did)]
    assert kinds.count("deployment.rollback_requested") == 1 and kinds[-1] == "deployment.rolled_back", kinds
    assert "deployment.wave_passed" not in kinds  # the owner stopped the wave instead of passing it
    assert "deployment.resumed" not in kinds  # the owner acted; nobody took it over
    pins = sql(cluster, "SELECT version FROM tenant_pins WHERE policy_id = $1 AND tenant = 't-x'", dep["policy_id"])
    assert [r["version"] for r in pins] != [dep["version"]]  # back to what it had before
    # A second request: it is rolling back or rolled back already.
    assert acme(cluster, 0).post(f"/v1/fleet/deployments/{did}/rollback").status == 409


def test_a_replica_frozen_past_its_lease_writes_no_stage_after_it_wakes(cluster):
    """SIGSTOP the owner mid-wave until another replica takes the deployment over, then SIGCONT:
    its pending stage writes are fenced off (epoch moved on), so no wave step is recorded twice."""
    dep = deploy(cluster, 2, "frozen", pause=4)
    did = dep["id"]
    watcher = acme(cluster, 0)
    eventually(
        lambda: watcher.get(f"/v1/fleet/deployments/{did}").json()["stage"] == "observing", 20, "wave 0 observing"
    )
    assert lease_of(cluster, "deployment", did)["owner"] == "cp-2"
    proc = cluster.cps[2].procs["controlplane"]
    proc.send_signal(signal.SIGSTOP)
    try:
        eventually(
            lambda: any(e["kind"] == "deployment.resumed" for e in deployment_events(watcher, did)),
            20,
            "another replica taking the frozen one's deployment over",
        )
        lease = lease_of(cluster, "deployment", did)
        assert lease["owner"] in ("cp-0", "cp-1") and lease["epoch"] == 2, lease
    finally:
        proc.send_signal(signal.SIGCONT)
    done = finished(watcher, did)
    assert done["status"] == "succeeded", done
    steps_once(deployment_events(watcher, did), 3)
    eventually(
        lambda: re.search(
            rf"(lost the deployment lease on {did}|deployment {did}: .*no longer held)", log_of(cluster, 2)
        ),
        15,
        "the woken replica noticing it lost the lease",
    )


def test_many_deployments_with_every_replica_alive_each_run_once(cluster):
    """Deployments of different policies started through all three replicas at once: each runs on
    the replica that created it, nobody takes one over, every step is recorded once."""
    cp = acme(cluster, 0)
    deps = []
    for i in range(3):
        r = cp.post("/v1/policies", yaml=POLICY.format(why=f"many{i}").replace("lease-guard", f"many-{i}"))
        assert r.status == 201, r.text
        pid = r.json()["id"]
        assert (
            cp.put(
                f"/v1/policies/{pid}",
                yaml=POLICY.format(why=f"many{i}b").replace("lease-guard", f"many-{i}"),
                params={"activate": "false"},
            ).status
            == 200
        )
        r = acme(cluster, i).post(
            "/v1/fleet/deployments",
            {
                "policy_id": pid,
                "version": 2,
                "tenants": ROLLED,
                "wave_size": 1,
                "pause_seconds": 1,
                "gates": {"adoption_timeout": 10, "evidence_grace": 0.2},
            },
        )
        assert r.status == 202, r.text
        deps.append(r.json()["id"])
    for i, did in enumerate(deps):
        assert finished(cp, did)["status"] == "succeeded"
        events = deployment_events(cp, did)
        steps_once(events, 3)
        assert not any(e["kind"] == "deployment.resumed" for e in events)
        assert lease_of(cluster, "deployment", did)["epoch"] == 1  # claimed once, by its creator
        assert f"resuming deployment {did}" not in "".join(log_of(cluster, k) for k in range(3))


# -- evidence jobs ----------------------------------------------------------------------------------


def _download(cp: CP, jid: str) -> tuple[bytes, str]:
    r = cp.session.get(f"{cp.url}/v1/evidence/bundles/{jid}", headers={"Authorization": f"Bearer {cp.token}"})
    assert r.status_code == 200, r.text
    return r.content, r.headers["X-Bundle-SHA256"]


def _verified_everywhere(cluster, jid: str) -> bytes:
    blobs = set()
    for i in range(3):
        blob, sha = _download(admin(cluster, i), jid)
        assert hashlib.sha256(blob).hexdigest() == sha
        blobs.add(blob)
        report = admin(cluster, i).get(f"/v1/evidence/bundles/{jid}/verify").json()
        assert report["ok"] is True, report
    assert len(blobs) == 1
    return blobs.pop()


def test_an_evidence_job_whose_replica_is_killed_mid_job_is_finished_by_another(cluster, tmp_path):
    import subprocess
    import sys

    a = admin(cluster, 0)
    watcher = admin(cluster, 1)
    for attempt in range(20):  # catch the job before replica 0 finishes it (it takes some milliseconds)
        restart_if_down(cluster, 0)
        r = a.post("/v1/evidence/bundles", {})
        assert r.status == 202, r.text
        proc = cluster.cps[0].procs["controlplane"]
        proc.send_signal(signal.SIGSTOP)
        jid = r.json()["id"]
        state = watcher.get(f"/v1/evidence/bundles/{jid}/status").json()["status"]
        if state in ("pending", "running"):
            break
        proc.send_signal(signal.SIGCONT)
    else:
        pytest.fail("every job finished before its replica could be stopped")
    assert lease_of(cluster, "evidence", jid)["owner"] == "cp-0"
    cluster.kill_replica(0)  # SIGKILL works on a stopped process: a crash mid-job
    done = eventually(
        lambda: (s := watcher.get(f"/v1/evidence/bundles/{jid}/status").json())["status"] in ("done", "failed") and s,
        30,
        "another replica finishing the job",
    )
    assert done["status"] == "done", done
    lease = lease_of(cluster, "evidence", jid)
    assert lease["epoch"] == 2 and lease["owner"] is None  # taken over once, released when finished
    assert any(f"resuming evidence bundle {jid}" in log_of(cluster, i) for i in (1, 2))
    restart_if_down(cluster, 0)  # it serves the bundle too, though it never finished it
    blob = _verified_everywhere(cluster, jid)
    # The offline verifier, pinned to the control plane's root key, agrees.
    path, root = tmp_path / "b.tar.gz", tmp_path / "root.pub"
    path.write_bytes(blob)
    root.write_text(admin(cluster, 2).get("/v1/audit/keys").json()["root_public_key"])
    out = subprocess.run(
        [sys.executable, "-m", "relaygate.evidence.cli", "verify", str(path), "--trusted-key", str(root)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    # Nothing on any replica's disk: the bundle lives in the database.
    assert [p for cp in cluster.cps for p in cp.cp_data.rglob("*.tar.gz")] == []


def test_many_evidence_jobs_with_every_replica_alive_each_run_once(cluster):
    jobs = []
    clients = [admin(cluster, i) for i in range(3)] + [acme(cluster, i) for i in range(3)]
    for n, cp in enumerate(clients):
        r = eventually(
            lambda: (r := cp.post("/v1/evidence/bundles", {})).status != 429 and r, 30, "room for another job"
        )
        assert r.status == 202, r.text
        jobs.append((n % 3, r.json()["id"]))
    for i, jid in jobs:
        done = eventually(
            lambda: (s := admin(cluster, 0).get(f"/v1/evidence/bundles/{jid}/status").json())["status"]
            in ("done", "failed")
            and s,
            30,
            f"job {jid}",
        )
        assert done["status"] == "done", done
        assert lease_of(cluster, "evidence", jid)["epoch"] == 1  # claimed once, by the replica asked
        logs = [log_of(cluster, k) for k in range(3)]
        finished_on = [k for k in range(3) if f"evidence bundle {jid}: " in logs[k]]
        assert finished_on == [i], (jid, finished_on)  # assembled once, where it was requested
        assert logs[i].count(f"evidence bundle {jid}: ") == 1
        assert not any(f"resuming evidence bundle {jid}" in log for log in logs)
        _verified_everywhere(cluster, jid)


# -- the gauges operators read ------------------------------------------------------------------------


def test_every_replica_exports_the_whole_fleet_and_every_deployment(cluster):
    """Each gateway heartbeats to its own replica, and a deployment's stages are written by whichever
    replica holds it; the gauges the dashboards read are the same on every replica. Before, a
    replica counted live only the gateways that heartbeat to it (the others stale from its own
    start on) and moved the deployment counts only on the transitions it made itself."""
    from prometheus_client.parser import text_string_to_metric_families

    for i in range(3):
        restart_if_down(cluster, i)

    def gauges(i: int) -> dict:
        text = admin(cluster, i).get("/metrics").text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text)
            for s in fam.samples
            if s.name in ("relaygate_cp_fleet_instances", "relaygate_cp_deployments")
        }

    def agree():
        truth = {
            r["status"]: r["n"] for r in sql(cluster, "SELECT status, count(*) AS n FROM deployments GROUP BY status")
        }
        want = {("relaygate_cp_fleet_instances", (("state", "live"),)): 3.0}
        want[("relaygate_cp_fleet_instances", (("state", "stale"),))] = 0.0
        for status in ("running", "rolling_back", "succeeded", "rolled_back", "failed"):
            want[("relaygate_cp_deployments", (("status", status),))] = float(truth.get(status, 0))
        seen = [gauges(i) for i in range(3)]
        return (sum(truth.values()) > 0 and all(g == want for g in seen)) or (want, seen)

    try:
        eventually(lambda: agree() is True, 30, "the same fleet and deployment gauges on every replica")
    except AssertionError:
        raise AssertionError(f"(wanted, each replica's): {agree()}") from None
