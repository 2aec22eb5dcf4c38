"""Plans: a workspace's plan sets its control-plane rate, the gateway's tier limits and its webhook
quota; the workspace's own limits (a contract) win; GET /v1/workspaces/{id}/limits reports what is
enforced. Against a control plane driving a real gateway, with a plan defined in the control
plane's --config file; and as an attacker, a workspace key trying to change or read what is not
its own.
"""

from __future__ import annotations

import concurrent.futures

import pytest
import yaml

from relaygate.controlplane import plans
from tests.conftest import ControlPlane, Gateway, start_full_stack
from tests.cpclient import CP, eventually
from tests.httpcall import chat_body, curl


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    cfg = tmp_path_factory.mktemp("plans-cfg") / "controlplane.yaml"
    cfg.write_text(yaml.safe_dump({"plans": {"pilot": {"control_plane_rps": 3, "webhook_subscriptions": 1}}}))
    stack, tokens = start_full_stack(
        tmp_path_factory, "plans", cp_args=["--config", str(cfg), "--webhook-allow-private"]
    )
    yield ControlPlane(stack, tokens), Gateway(stack, tokens)
    stack.stop()


def _admin(cp: ControlPlane) -> CP:
    return cp.admin


def _limits(cp: ControlPlane, ws: str) -> dict:
    r = cp.client(ws).get(f"/v1/workspaces/{ws}/limits")
    assert r.status == 200, r.text
    return r.json()


def test_plans_are_listed_with_the_config_files_own(full):
    cp, _ = full
    listed = {p["name"]: p["limits"] for p in cp.client("acme").get("/v1/plans").json()["plans"]}
    assert set(plans.DEFAULT_PLANS) | {"pilot"} <= set(listed)
    assert listed["free"] == plans.DEFAULT_PLANS["free"]
    assert listed["pilot"]["control_plane_rps"] == 3 and listed["pilot"]["requests_per_second"] is None


def test_a_workspace_without_a_plan_keeps_the_defaults(full):
    cp, _ = full
    got = _limits(cp, "swiss")
    assert got["plan"] is None and got["limits"]["control_plane_rps"] == 60
    assert set(got["sources"].values()) == {"default"}


def test_the_plan_sets_the_control_plane_rate(full):
    cp, _ = full
    assert _admin(cp).put("/v1/workspaces/capped", {"plan": "pilot"}).status == 200
    got = _limits(cp, "capped")
    assert (
        got["plan"] == "pilot"
        and got["limits"]["control_plane_rps"] == 3
        and got["sources"]["control_plane_rps"] == "plan"
    )
    capped = cp.client("capped")
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(lambda _: capped.get("/v1/budgets").status, range(12)))
    assert codes.count(200) <= 4 and codes.count(429) >= 8, codes  # a bucket of 3 (plus what refilled)
    # a workspace on no plan, meanwhile: its default 60/s
    swiss = cp.client("swiss")
    assert all(swiss.get("/v1/budgets").status == 200 for _ in range(12))


def test_the_plan_sets_the_gateways_tier_limit_and_a_contract_raises_it(full):
    cp, gw = full
    assert _admin(cp).put("/v1/workspaces/euro", {"plan": "free"}).status == 200  # 5 calls/s
    assert _limits(cp, "euro")["limits"]["requests_per_second"] == 5

    def burst():
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            return list(
                pool.map(
                    lambda _: curl(
                        gw.base("euro") + "/chat/completions",
                        chat_body("gpt-4o-mini", max_tokens=4),
                        {"authorization": f"Bearer {cp.tokens['euro']}", "content-type": "application/json"},
                    ),
                    range(16),
                )
            )

    limited = eventually(
        lambda: [r for r in burst() if r.status == 429 and r.json()["error"]["code"] == "rate.limited"],
        20,
        "the free plan's 5 calls/s at the gateway",
    )
    assert limited[0].headers.get("retry-after")
    # an enterprise contract: the workspace's own limit wins over its plan's
    assert _admin(cp).put("/v1/workspaces/euro", {"limits": {"requests_per_second": 1000}}).status == 200
    got = _limits(cp, "euro")
    assert got["plan"] == "free" and got["limits"]["requests_per_second"] == 1000
    assert got["sources"]["requests_per_second"] == "workspace" and got["sources"]["tokens_per_minute"] == "plan"
    eventually(lambda: all(r.status == 200 for r in burst()), 20, "the contract's limit at the gateway")


def test_the_plan_sets_the_webhook_quota(full):
    cp, _ = full
    assert _admin(cp).put("/v1/workspaces/acme", {"plan": "pilot"}).status == 200  # 1 subscription
    acme = cp.client("acme")
    first = acme.post("/v1/webhooks", {"url": "http://127.0.0.1:9/a", "events": ["policy.*"]})
    assert first.status == 201, first.text
    second = acme.post("/v1/webhooks", {"url": "http://127.0.0.1:9/b", "events": ["policy.*"]})
    assert second.status == 409 and second.json()["error"]["code"] == "webhook.quota_exceeded", second.text
    assert second.json()["error"]["details"]["limit"] == 1
    assert _admin(cp).put("/v1/workspaces/acme", {"plan": None}).status == 200


def test_a_workspace_key_cannot_change_its_plan_or_read_anothers_limits(full):
    cp, _ = full
    acme = cp.client("acme")
    assert acme.put("/v1/workspaces/acme", {"plan": "enterprise"}).status == 403
    assert acme.get("/v1/workspaces/euro/limits").status == 404
    bad = _admin(cp).put("/v1/workspaces/acme", {"plan": "platinum"})
    assert bad.status == 400 and bad.json()["error"]["details"]["parameter"] == "plan"


def test_plan_definitions_are_checked():
    assert plans.parse({"pilot": {"control_plane_rps": 3}})["pilot"]["control_plane_rps"] == 3
    for bad in (
        ["free"],
        {"x": {"rps": 1}},
        {"x": {"control_plane_rps": -1}},
        {"x": {"control_plane_rps": True}},
        {"a b": {}},
    ):
        with pytest.raises(plans.PlanError):
            plans.parse(bad)
