"""Webhooks against a control plane driving a real gateway, delivered to a receiver on loopback that
verifies every delivery with the Standard Webhooks library (what a subscriber would run).

Covered: policy changes, gateway denials, budget thresholds (once each), evidence-job completion;
signatures that verify and fail when tampered with or too old; retries with backoff under one
delivery id (so a receiver's dedupe makes the processing once); the delivery log; delivery off the
gateway's path (a stalled receiver slows no call); and, as an attacker: another tenant cannot see
or remove a subscription, secrets are shown once, and targets on private addresses are refused
unless the operator allowed them.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.conftest import ControlPlane, Gateway, start_controlplane, start_full_stack
from tests.cpclient import eventually
from tests.httpcall import chat_body, curl

BLOCK = """name: {name}
effect: {{status: 403, code: policy.blocked}}
rego: |
  package hooks
  import rego.v1
  deny contains "{model} is not approved" if input.model == "{model}"
"""


class Receiver:
    """A webhook endpoint on loopback: verifies each delivery with the subscription's secret, keeps
    them, processes each webhook-id once, and can be told to fail or stall."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}  # path -> secret
        self.got: list[dict] = []  # every request, verified or not
        self.processed: dict[str, dict] = {}  # webhook-id -> payload, first time only
        self.fail_first: dict[str, int] = {}  # path -> how many requests to answer 500
        self.stall = threading.Event()
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                rec = {"path": self.path, "headers": headers, "body": body, "at": time.monotonic()}
                try:
                    rec["payload"] = Webhook(outer.secrets[self.path]).verify(body, headers)
                    rec["verified"] = True
                except (WebhookVerificationError, KeyError) as e:
                    rec["verified"], rec["error"] = False, repr(e)
                outer.got.append(rec)
                if outer.stall.is_set():
                    time.sleep(15)
                if outer.fail_first.get(self.path, 0) > 0:
                    outer.fail_first[self.path] -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                if rec["verified"]:
                    outer.processed.setdefault(headers["webhook-id"], rec["payload"])
                self.send_response(204 if rec["verified"] else 401)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"

    def of(self, path: str, typ: str | None = None) -> list[dict]:
        return [
            r
            for r in self.got
            if r["path"] == path and r.get("verified") and (typ is None or r["payload"]["type"] == typ)
        ]


@pytest.fixture(scope="module")
def hooks(tmp_path_factory):
    stack, tokens = start_full_stack(
        tmp_path_factory, "webhooks", cp_args=["--webhook-allow-private", "--webhook-retry-base", "0.3"]
    )
    receiver = Receiver()
    yield ControlPlane(stack, tokens), Gateway(stack, tokens), receiver
    receiver.httpd.shutdown()
    stack.stop()


def _subscribe(cp: ControlPlane, receiver: Receiver, path: str, events: list[str], ws: str = "acme") -> dict:
    r = cp.client(ws).post("/v1/webhooks", {"url": receiver.base + path, "events": events})
    assert r.status == 201, r.text
    made = r.json()
    assert made["secret"].startswith("whsec_")
    receiver.secrets[path] = made["secret"]
    return made


def _call(gw: Gateway, key: str, model: str, ws: str = "acme"):
    return curl(
        gw.base(ws) + "/chat/completions",
        chat_body(model),
        {"authorization": f"Bearer {key}", "content-type": "application/json"},
    )


def test_policy_changes_and_denials_arrive_signed_and_verifiable(hooks):
    cp, gw, receiver = hooks
    sub = _subscribe(cp, receiver, "/policy", ["policy.*", "gateway.denied"])
    acme = cp.client("acme")
    pid = acme.post("/v1/policies", yaml=BLOCK.format(name="hooks-block", model="gpt-4o")).json()["id"]
    eventually(lambda: _call(gw, cp.tokens["acme"], "gpt-4o").status == 403, 15, "the policy at the gateway")
    created = eventually(lambda: receiver.of("/policy", "policy.created"), 15, "policy.created delivered")
    assert created[0]["payload"]["data"]["detail"]["policy_id"] == pid
    denied = eventually(lambda: receiver.of("/policy", "gateway.denied"), 20, "gateway.denied delivered")
    d = denied[0]["payload"]
    assert d["workspace"] == "acme" and d["data"]["decision"] == "deny" and d["data"]["model"] == "gpt-4o"
    assert d["data"]["code"] == "policy.blocked" and f"{pid}@1" in d["data"]["policies"]
    # only what was subscribed: no allowed call, no other workspace's events
    assert all(r["payload"]["type"] in ("policy.created", "gateway.denied") for r in receiver.of("/policy"))
    assert all(r["payload"]["workspace"] == "acme" for r in receiver.of("/policy"))

    # the signature covers id, timestamp and body: a changed byte or an old timestamp fails
    rec = created[0]
    hook = Webhook(sub["secret"])
    with pytest.raises(WebhookVerificationError):
        hook.verify(rec["body"].replace(b"policy", b"pol1cy", 1), rec["headers"])
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)
    stale = {
        **rec["headers"],
        "webhook-timestamp": str(int(old.timestamp())),
        "webhook-signature": hook.sign(rec["headers"]["webhook-id"], old, rec["body"]),
    }
    with pytest.raises(WebhookVerificationError, match="(?i)too old"):
        hook.verify(rec["body"], stale)
    with pytest.raises(WebhookVerificationError):  # another subscription's secret does not verify it
        Webhook("whsec_" + base64.b64encode(b"k" * 32).decode()).verify(rec["body"], rec["headers"])

    log = acme.get(f"/v1/webhooks/{sub['id']}/deliveries").json()["deliveries"]
    mine = {x["id"]: x for x in log}
    assert (
        mine[rec["headers"]["webhook-id"]]["status"] == "delivered"
        and mine[rec["headers"]["webhook-id"]]["attempts"] == 1
    )


def test_a_failing_receiver_is_retried_with_backoff_under_one_delivery_id(hooks):
    cp, gw, receiver = hooks
    receiver.fail_first["/flaky"] = 2
    sub = _subscribe(cp, receiver, "/flaky", ["policy.created"])
    cp.client("acme").post("/v1/policies", yaml=BLOCK.format(name="hooks-flaky", model="nothing-1"))
    ok = eventually(
        lambda: "/flaky" in {r["path"] for r in receiver.got}
        and len(receiver.of("/flaky")) >= 3
        and receiver.of("/flaky"),
        30,
        "three attempts",
    )
    attempts = ok[:3]
    ids = {a["headers"]["webhook-id"] for a in attempts}
    assert len(ids) == 1, "a retry is the same delivery (same webhook-id), so receivers can drop repeats"
    gaps = [b["at"] - a["at"] for a, b in zip(attempts, attempts[1:])]
    assert gaps[0] >= 0.25 and gaps[1] >= 0.5, gaps  # retry_base 0.3 s, doubling
    assert sum(1 for k in receiver.processed if k in ids) == 1
    (entry,) = [
        x for x in cp.client("acme").get(f"/v1/webhooks/{sub['id']}/deliveries").json()["deliveries"] if x["id"] in ids
    ]
    assert entry["status"] == "delivered" and entry["attempts"] == 3 and entry["last_status_code"] == 204


def test_budget_thresholds_are_delivered_once_each(hooks):
    cp, gw, receiver = hooks
    _subscribe(cp, receiver, "/budget", ["budget.threshold"], ws="euro")
    euro = cp.client("euro")
    made = euro.post("/v1/budgets", {"id": "hooks-tokens", "unit": "tokens", "window": "month", "limit": 400})
    assert made.status == 201, made.text

    def crossed():
        t = receiver.of("/budget", "budget.threshold")
        return t if {r["payload"]["data"]["threshold_percent"] for r in t} >= {50, 80, 100} else None

    deadline, got = time.monotonic() + 120, None
    while got is None:  # small calls spend the budget; refusals for want of it end it
        assert time.monotonic() < deadline, receiver.of("/budget")
        r = curl(
            gw.base("euro") + "/chat/completions",
            chat_body("gpt-4o-mini", max_tokens=16),
            {"authorization": f"Bearer {cp.tokens['euro']}", "content-type": "application/json"},
        )
        # one call at a time, each settled (its receipt at the control plane) before the next, so
        # the gateway's ledger and the receipts the thresholds are computed from agree
        if r.status == 200:
            eventually(lambda: euro.get(f"/v1/audit/events/{r.receipt_id}").status == 200, 20, "the receipt")
        got = crossed()
    mine = [r for r in got if r["payload"]["data"]["budget"] == "hooks-tokens"]
    by_threshold: dict[int, set] = {}
    for r in mine:
        by_threshold.setdefault(r["payload"]["data"]["threshold_percent"], set()).add(r["headers"]["webhook-id"])
    assert {k: len(v) for k, v in by_threshold.items()} == {50: 1, 80: 1, 100: 1}, by_threshold
    hundred = next(r for r in mine if r["payload"]["data"]["threshold_percent"] == 100)["payload"]["data"]
    assert hundred["limit"] == 400 and hundred["unit"] == "tokens"
    # reached by use, or by the gateway refusing for want of the budget once past half of it
    assert hundred["used"] >= 400 or (hundred["exhausted"] and hundred["used"] >= 200), hundred


def test_evidence_job_completion_is_delivered(hooks):
    cp, gw, receiver = hooks
    _subscribe(cp, receiver, "/evidence", ["evidence.*"])
    job = cp.client("acme").post("/v1/evidence/bundles", {"components": ["receipts"]})
    assert job.status == 202, job.text
    got = eventually(
        lambda: [
            r
            for r in receiver.of("/evidence", "evidence.completed")
            if r["payload"]["data"]["detail"]["bundle"] == job.json()["id"]
        ],
        60,
        "evidence.completed delivered",
    )
    status = cp.client("acme").get(f"/v1/evidence/bundles/{job.json()['id']}/status").json()
    assert got[0]["payload"]["data"]["detail"]["sha256"] == status["sha256"]


def test_delivery_is_off_the_gateways_path(hooks):
    """A receiver that stalls every delivery for 15 s does not slow a single gateway call."""
    cp, gw, receiver = hooks
    _subscribe(cp, receiver, "/stall", ["gateway.denied"])
    receiver.stall.set()
    try:
        for _ in range(5):
            started = time.monotonic()
            r = _call(gw, cp.tokens["acme"], "gpt-4o")  # denied (the first test's policy): a delivery each
            assert r.status == 403 and time.monotonic() - started < 2.0
        eventually(lambda: receiver.of("/stall"), 20, "the stalled receiver reached")
    finally:
        receiver.stall.clear()


def test_another_tenant_cannot_see_or_remove_a_subscription_and_secrets_show_once(hooks):
    cp, gw, receiver = hooks
    sub = _subscribe(cp, receiver, "/private", ["policy.*"])
    acme, euro = cp.client("acme"), cp.client("euro")
    for path in (f"/v1/webhooks/{sub['id']}", f"/v1/webhooks/{sub['id']}/deliveries"):
        assert euro.get(path).status == 404
    assert euro.delete(f"/v1/webhooks/{sub['id']}").status == 404
    assert sub["id"] not in {w["id"] for w in euro.get("/v1/webhooks").json()["webhooks"]}
    listed = acme.get("/v1/webhooks").text + acme.get(f"/v1/webhooks/{sub['id']}").text
    assert sub["secret"] not in listed and "secret" not in json.loads(acme.get(f"/v1/webhooks/{sub['id']}").text)
    ro = cp.client("acme-ro")  # a read-only key can neither subscribe nor read the subscriptions
    assert ro.post("/v1/webhooks", {"url": receiver.base + "/x", "events": ["policy.*"]}).status == 403
    assert ro.get("/v1/webhooks").status == 403
    assert acme.delete(f"/v1/webhooks/{sub['id']}").status == 204
    assert acme.get(f"/v1/webhooks/{sub['id']}").status == 404


@pytest.fixture(scope="module")
def strict_cp(tmp_path_factory):
    c = start_controlplane(tmp_path_factory.mktemp("hooks-strict"))
    yield c
    c.stop()


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data",  # the cloud metadata address
        "https://[::1]/hook",
        "https://localhost/hook",
        "http://hooks.example.com/hook",  # plain http
        "ftp://hooks.example.com/hook",
    ],
)
def test_webhook_targets_on_private_addresses_are_refused_by_default(strict_cp, url):
    r = strict_cp.client("acme").post("/v1/webhooks", {"url": url, "events": ["policy.*"]})
    assert r.status == 400, r.text
    assert r.json()["error"]["code"] in ("webhook.target_refused", "invalid_request")


def test_a_name_that_resolves_to_a_private_address_is_refused_where_the_connection_is_made():
    """DNS rebinding: a name accepted at subscription time that later resolves to loopback."""
    import asyncio

    from relaygate.controlplane.webhooks import PublicOnlyResolver

    async def resolve(host):
        r = PublicOnlyResolver()
        try:
            return await r.resolve(host, 443)
        finally:
            await r.close()

    with pytest.raises(OSError, match="no public address"):
        asyncio.run(resolve("localhost"))
