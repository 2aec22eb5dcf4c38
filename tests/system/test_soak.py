"""Soak: three gateways under traffic while the configuration changes every few seconds.

For SOAK_SECONDS (180 by default; RELAYGATE_SOAK_SECONDS overrides), two
client threads call all three gateways while the control plane takes a change
every CHANGE_EVERY seconds, alternating between what only the sidecars' bundles
carry (budgets, keys, workspace settings, a policy version, prices) and what
reaches Envoy over xDS (cluster settings). Every call must succeed, and no
process may keep growing: the resident memory of the control plane, each
sidecar and each Envoy is sampled throughout, and after the warm-up it must
stay within a small band. The figures are written to soak-rss.json and
reported in docs/performance.md.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time

import pytest

from devstack.processes import Fleet
from tests.conftest import POLICY_DIR, write_config
from tests.cpclient import CP, eventually
from tests.httpcall import chat_body, curl

SOAK_SECONDS = float(os.environ.get("RELAYGATE_SOAK_SECONDS", "180"))
CHANGE_EVERY = 3.0
WARM_UP = 45.0


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.slow
def test_soak_with_config_changes_under_traffic(tmp_path):
    tokens = write_config(tmp_path / "config")
    fleet = Fleet(tmp_path / "run", tmp_path / "config", POLICY_DIR, ["t-a", "t-b", "t-c"])
    fleet.start()
    try:
        _soak(fleet, tokens, tmp_path)
    finally:
        fleet.stop()


def _soak(fleet: Fleet, tokens: dict, tmp_path) -> None:
    admin = CP(fleet.cp.cp_url, fleet.cp.admin_token)
    acme = CP(fleet.cp.cp_url, tokens["acme"])
    procs = {"controlplane": fleet.cp.procs["controlplane"].pid}
    for gw in fleet.gateways:
        procs[f"{gw.instance_id}/sidecar"] = gw.procs["extproc"].pid
        procs[f"{gw.instance_id}/envoy"] = gw.procs["envoy"].pid
    replies: list[int] = []
    stop = threading.Event()

    def client(offset: int) -> None:
        for i in itertools.count(offset):
            if stop.is_set():
                return
            gw = fleet.gateways[i % len(fleet.gateways)]
            try:
                r = curl(
                    f"{gw.gateway}/v1/acme/chat/completions",
                    chat_body(max_tokens=4, content=f"soak {i}"),
                    {"authorization": f"Bearer {tokens['acme']}", "content-type": "application/json"},
                )
                replies.append(r.status)
            except Exception:
                replies.append(0)

    policy = acme.post(
        "/v1/policies",
        yaml="name: soak\nrego: |\n  package soak\n  import rego.v1\n"
        '  deny contains "no" if input.model == "never-0"\n',
    ).json()
    upstream = admin.get("/v1/upstreams/openai-eu").json()
    spec = {k: v for k, v in upstream.items() if k not in ("created_at", "updated_at")}
    changes = [
        lambda n: acme.put("/v1/budgets/limited-key-monthly", {"limit": 1 + n}),
        lambda n: acme.post(f"/v1/keys/{acme.post('/v1/keys', {'name': f'soak-{n}'}).json()['key']['id']}/revoke"),
        lambda n: admin.put(
            "/v1/upstreams/openai-eu", {**spec, "envoy_cluster_overrides": {"connect_timeout": f"{2 + n % 3}s"}}
        ),
        lambda n: admin.put("/v1/workspaces/euro", {"default_max_output_tokens": 256 + n}),
        lambda n: acme.put(
            f"/v1/policies/{policy['id']}",
            yaml=f"name: soak\nrego: |\n  package soak\n"
            f'  import rego.v1\n  deny contains "no" if '
            f'input.model == "never-{n}"\n',
        ),
        lambda n: admin.put(
            "/v1/upstreams/openai-eu",
            {**spec, "models": {"gpt-4o-mini": {"input_per_1k": 0.2 + n / 1000, "output_per_1k": 0.8}}},
        ),
    ]
    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(2)]
    for t in threads:
        t.start()
    samples: list[dict] = []
    started = time.monotonic()
    n, next_change, next_sample = 0, started, started
    while time.monotonic() - started < SOAK_SECONDS:
        now = time.monotonic()
        if now >= next_change:
            reply = changes[n % len(changes)](n)
            assert reply.status in (200, 201), reply.text
            n, next_change = n + 1, next_change + CHANGE_EVERY
        if now >= next_sample:
            samples.append({"t": round(now - started, 1), **{k: round(rss_mb(p), 1) for k, p in procs.items()}})
            next_sample += 5.0
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(30)
    samples.append({"t": round(time.monotonic() - started, 1), **{k: round(rss_mb(p), 1) for k, p in procs.items()}})

    # Every change reached the gateways: the last policy version is in force on every sidecar.
    last_rev = {
        gw.tenant: admin.get("/v1/fleet/instances", params={"tenant": gw.tenant}).json() for gw in fleet.gateways
    }
    assert all(i["instances"][0]["xds"]["last_nack"] is None for i in last_rev.values())
    eventually(
        lambda: all(i["posture"]["bundle_revision"] for i in admin.get("/v1/fleet/instances").json()["instances"]),
        10,
        "posture",
    )

    warm = [s for s in samples if s["t"] >= WARM_UP]
    report = {
        "seconds": SOAK_SECONDS,
        "changes": n,
        "calls": len(replies),
        "failed": sum(1 for s in replies if s != 200),
        "rss_mb": {},
    }
    for name in procs:
        series = [s[name] for s in warm]
        report["rss_mb"][name] = {"start": samples[0][name], "warm": series[0], "peak": max(series), "end": series[-1]}
    (tmp_path / "soak-rss.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    assert n >= SOAK_SECONDS / CHANGE_EVERY - 2 and len(replies) > SOAK_SECONDS * 10
    assert report["failed"] == 0, {s for s in replies if s != 200}
    for name, r in report["rss_mb"].items():
        # After warm-up no process keeps growing: the end is within 20% (or 15 MB) of the warm figure.
        assert r["end"] <= r["warm"] * 1.2 + 15, (name, r)
