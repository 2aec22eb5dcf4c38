"""No receipt is ever lost: control-plane outages and sidecar crashes under live traffic.

Traffic runs from a background thread the whole time. Afterwards every receipt
the sidecar spooled (complete or incomplete) must be in the control plane's
audit feed exactly once, and an evidence bundle over all of it must show
unbroken hash chains.
"""

from __future__ import annotations

import signal
import threading
import time

import pytest

from relaygate.evidence import evidence_bundle as eb
from relaygate.evidence.receipts import envelope_receipt
from relaygate.evidence.verify import verify_bundle
from devstack.processes import Stack
from tests.conftest import POLICY_DIR, Gateway, write_config
from tests.cpclient import CP, eventually
from tests.httpcall import chat_body, curl


class Traffic(threading.Thread):
    """Calls at a steady pace until stopped; remembers every receipt id it was given."""

    def __init__(self, gw: Gateway, key: str, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.gw, self.key, self.interval = gw, key, interval
        self.stop_flag = threading.Event()
        self.replies: list[tuple[int, str | None]] = []  # (status, receipt id) of every call

    @property
    def receipts(self) -> list[str]:
        """Receipt ids clients were given for calls a decision was made on (not policy-service-down 503s)."""
        return [rid for status, rid in self.replies if rid and status != 503]

    @property
    def statuses(self) -> list[int]:
        return [status for status, _ in self.replies]

    def run(self) -> None:
        i = 0
        while not self.stop_flag.is_set():
            h = {"authorization": f"Bearer {self.key}", "content-type": "application/json"}
            stream = i % 4 == 0
            body = chat_body(["gpt-4o-mini", "gpt-4o", "nope"][i % 3], content=f"t{i}", stream=stream, max_tokens=4)
            extra = {"x-sim-chunk-delay-ms": "30"} if stream else {}
            try:
                r = curl(self.gw.base("acme") + "/chat/completions", body, {**h, **extra})
                self.replies.append((r.status, r.receipt_id))
            except Exception:
                self.replies.append((0, None))
            i += 1
            time.sleep(self.interval)

    def finish(self) -> None:
        self.stop_flag.set()
        self.join(60)


@pytest.fixture
def full(tmp_path):
    tokens = write_config(tmp_path / "config")
    stack = Stack(
        tmp_path / "run",
        config_dir=tmp_path / "config",
        policy_dir=POLICY_DIR,
        controlplane=True,
        instance_id="delivery-sidecar",
        cp_extra_args=["--checkpoint-interval", "1"],
    )
    stack.start()
    yield stack, Gateway(stack, tokens), CP(stack.cp_url, stack.admin_token)
    stack.stop()


def _ingested(admin: CP) -> list[str]:
    ids, cursor = [], None
    while True:
        page = admin.get(
            "/v1/audit/events", params={"kind": "gateway.call", "limit": 1000, **({"cursor": cursor} if cursor else {})}
        ).json()
        ids += [e["id"] for e in page["events"]]
        cursor = page["next_cursor"]
        if not cursor:
            return ids


def _pending(gw: Gateway) -> int:
    import json
    import urllib.request

    with urllib.request.urlopen(f"{gw.stack.extproc_admin}/receipts?limit=1") as r:
        return json.load(r)["counts"].get("pending", 0)


def _all_delivered(gw: Gateway, admin: CP, timeout: float = 90) -> tuple[list[str], list[dict]]:
    eventually(lambda: _pending(gw) == 0, 30, "every call's receipt finalized")
    spooled = gw.all_receipts()
    want = {envelope_receipt(e)["id"] for e in spooled}
    eventually(lambda: want <= set(_ingested(admin)), timeout, "every spooled receipt at the control plane")
    ids = _ingested(admin)
    assert len(ids) == len(set(ids)), "a receipt was ingested twice"
    return ids, spooled


def _chains_unbroken(stack, admin: CP) -> None:
    job = admin.post(
        "/v1/evidence/bundles", {"components": ["receipts"]}, headers={"X-Relaygate-Workspace": "acme"}
    ).json()
    eventually(
        lambda: admin.get(f"/v1/evidence/bundles/{job['id']}/status", headers={"X-Relaygate-Workspace": "acme"}).json()[
            "status"
        ]
        == "done",
        60,
        "the bundle",
    )
    blob = admin.session.get(
        f"{admin.url}/v1/evidence/bundles/{job['id']}",
        headers={"Authorization": f"Bearer {admin.token}", "X-Relaygate-Workspace": "acme"},
    ).content
    report = verify_bundle(blob)
    assert report.ok, report.render()
    assert any(f.check == "chain" and f.ok for f in report.findings)
    assert eb.read(blob)[eb.CHAINS]


@pytest.mark.slow
def test_control_plane_down_for_a_minute_under_traffic(full):
    stack, gw, admin = full
    traffic = Traffic(gw, gw.tokens["acme"])
    traffic.start()
    eventually(lambda: len(traffic.receipts) > 20, 30, "traffic flowing")
    stack.stop_one("controlplane")
    outage_started = time.monotonic()
    while time.monotonic() - outage_started < 60:  # the outage lasts a minute, by the clock
        time.sleep(1)
    during = len(traffic.receipts)
    stack.start_controlplane()
    eventually(lambda: len(traffic.receipts) > during + 20, 30, "traffic after the control plane is back")
    traffic.finish()
    assert during > 200 and all(s in (200, 403, 404) for s in traffic.statuses), set(traffic.statuses)
    ids, spooled = _all_delivered(gw, admin)
    assert set(traffic.receipts) <= set(ids)
    assert len(spooled) == len(ids)
    _chains_unbroken(stack, admin)


@pytest.mark.slow
def test_sidecar_killed_mid_traffic_loses_no_spooled_receipt(full):
    stack, gw, admin = full
    traffic = Traffic(gw, gw.tokens["acme"], interval=0.02)
    traffic.start()
    eventually(lambda: len(traffic.receipts) > 60, 30, "traffic flowing")
    stack.stop_one("extproc", signal.SIGKILL)
    killed_at = len(traffic.replies)
    stack.start_extproc()
    eventually(lambda: sum(s == 200 for s in traffic.statuses[killed_at:]) > 30, 30, "traffic after the restart")
    traffic.finish()
    # While it was down calls failed closed (503, no receipt); nothing else went wrong.
    assert set(traffic.statuses) <= {200, 403, 404, 503}, set(traffic.statuses)
    ids, spooled = _all_delivered(gw, admin)
    states = [envelope_receipt(e)["status"] for e in spooled]
    assert len(spooled) == len(ids) and "complete" in states
    assert set(traffic.receipts) <= set(ids)  # every receipt a client was told about exists
    _chains_unbroken(stack, admin)
