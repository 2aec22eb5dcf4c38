"""Gateway robustness at the Envoy layer, tried as a network peer would (issue 11, items 12 and 16).

- A peer with no key floods bad-key calls from one address: after a few it is throttled by
  Envoy before the policy service sees its calls (429 in the JSON error shape, with a receipt
  id), a real caller on another address keeps getting 200, and the receipt spool grows by a
  bounded amount, not by one receipt per junk call.
- The policy service stalls (SIGSTOP): Envoy's own 504 carries the JSON error shape and the
  receipt id, and that receipt exists once the service is back.

Client addresses are loopback aliases (127.0.0.2, 127.0.0.3): Linux routes all of 127/8 to lo.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import urllib.request

import aiohttp
import pytest

from tests.conftest import POLICY_DIR, TRANSPORTS, Gateway, write_config
from tests.httpcall import chat_body, curl
from devstack.processes import Stack

JSON = {"content-type": "application/json"}
ATTACKER, CALLER = "127.0.0.3", "127.0.0.2"
# The limits this gateway runs with (gateway.yaml), so the bounds below are known.
LIMITS = {
    "strikes_per_second": 20,
    "requests_per_second": 5,
    "burst": 10,
    "penalty_seconds": 5,
    "receipts_per_address_per_second": 10,
    "receipts_per_second": 100,
}


@pytest.fixture(scope="module", params=TRANSPORTS)
def agw(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adv-gw")
    tokens = write_config(tmp / "config")
    with open(tmp / "config" / "gateway.yaml", "a") as f:
        f.write("unauthenticated:\n" + "".join(f"  {k}: {v}\n" for k, v in LIMITS.items()))
    stack = Stack(
        tmp / "run",
        config_dir=tmp / "config",
        policy_dir=POLICY_DIR,
        unreachable={"openai-dead"},
        transport=request.param,
    )
    stack.start()
    g = Gateway(stack, tokens)
    g.transport = request.param
    yield g
    stack.stop()


def _settled_count(gw: Gateway, quiet: float = 3.0, timeout: float = 60) -> int:
    """Finalized receipts, once no new one has appeared for ``quiet`` seconds (denials settle in ~2 s)."""
    deadline = time.monotonic() + timeout
    last, since = len(gw.all_receipts()), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        n = len(gw.all_receipts())
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return n
    raise AssertionError("receipts kept growing for a minute after the flood")


def _metric(gw: Gateway, name: str) -> float:
    with urllib.request.urlopen(f"{gw.stack.extproc_admin}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


async def _flood_and_call(gw: Gateway, n_bad: int, conns: int = 8, addr: str = ATTACKER):
    """n_bad forged-key calls from ``addr`` on ``conns`` connections, while CALLER makes real calls."""
    url = gw.base("acme") + "/chat/completions"
    body = chat_body()
    bad_h = {**JSON, "authorization": "Bearer ro_live_AAAAAAAAAAAA_forgedsecretforgedsecret"}
    good_h = {**JSON, "authorization": f"Bearer {gw.tokens['acme']}"}
    bad: list[tuple[int, dict, dict]] = []
    good: list[tuple[int, float]] = []
    done = asyncio.Event()
    queue = list(range(n_bad))

    async def attacker(session):
        while queue:
            queue.pop()
            async with session.post(url, data=body, headers=bad_h) as r:
                bad.append((r.status, dict(r.headers), json.loads(await r.read())))

    async def caller(session):
        while not done.is_set() or len(good) < 5:
            t0 = time.perf_counter()
            async with session.post(url, data=body, headers=good_h) as r:
                await r.read()
                good.append((r.status, time.perf_counter() - t0))

    a = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(addr, 0), limit=conns))
    c = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(CALLER, 0), limit=1))
    async with a, c:
        good_task = asyncio.create_task(caller(c))
        t0 = time.monotonic()
        await asyncio.gather(*(attacker(a) for _ in range(conns)))
        elapsed = time.monotonic() - t0
        done.set()
        await good_task
    return bad, good, elapsed


def test_bad_key_flood_is_throttled_per_address_before_auth(agw):
    before = _settled_count(agw)
    bad, good, elapsed = asyncio.run(_flood_and_call(agw, 600))
    statuses = [s for s, _, _ in bad]
    n401, n429 = statuses.count(401), statuses.count(429)
    assert n401 + n429 == len(bad), sorted(set(statuses))
    # Before the address is throttled it gets `strikes_per_second` 401s (plus those in flight);
    # afterwards `requests_per_second` (+ burst) reach the policy service, the rest are 429.
    # Strikes count in whole one-second windows (preauth_guard.lua): a flood that begins late in
    # a second can have `strikes_per_second` 401s there and one more than that in the next second
    # before the address is suspect.
    bound = 2 * LIMITS["strikes_per_second"] + 1 + 8 + LIMITS["burst"] + LIMITS["requests_per_second"] * (elapsed + 1)
    assert n401 <= bound, f"{n401} of {len(bad)} flood calls reached the policy service in {elapsed:.1f}s"
    assert n429 >= len(bad) - bound
    for status, headers, doc in bad:
        rid = headers.get("x-relayone-receipt-id") or headers.get("X-Relayone-Receipt-Id")
        assert rid and rid.startswith("rcpt_"), headers
        assert doc["error"]["receipt_id"] == rid
        assert doc["error"]["code"] == ("rate.limited" if status == 429 else "auth.unauthenticated")
        assert doc["error"]["message"]
        if status == 429:  # a well-behaved client learns when to come back
            assert {k.lower(): v for k, v in headers.items()}.get("retry-after") == "1", headers
    # The real caller on another address was never throttled.
    assert good and all(s == 200 for s, _ in good), [s for s, _ in good if s != 200][:5]

    # Spool growth is bounded by the sampling policy, not one receipt per junk call.
    after = _settled_count(agw)
    per_window = LIMITS["receipts_per_address_per_second"] * 2 + 3  # 401s and 429s, plus summaries
    allowed = len(good) + per_window * (int(elapsed) + 2)
    assert after - before <= allowed, f"{after - before} receipts for {len(bad)} junk + {len(good)} real calls"
    assert _metric(agw, "relaygate_receipts_sampled_total") > 0
    # Every 401 the attacker got names a receipt that exists (its own, or its window's summary).
    ids = {h.get("x-relayone-receipt-id") or h.get("X-Relayone-Receipt-Id") for s, h, _ in bad if s == 401}
    for rid in ids:
        doc = agw.receipt_doc(rid)
        assert doc["decision"]["allow"] is False and doc["decision"]["code"] == "auth.unauthenticated"
        assert doc["response"]["status"] == 401


def test_throttle_is_per_address_and_ends(agw):
    """The throttled address gets 429 even with a good key (pre-auth limit); it expires."""
    url = agw.base("acme") + "/chat/completions"
    good_h = {**JSON, "authorization": f"Bearer {agw.tokens['acme']}"}
    bad_h = {**JSON, "authorization": "Bearer sk-not-ours"}
    addr = "127.0.0.4"
    bad, _, _ = asyncio.run(_flood_and_call(agw, 200, addr=addr))
    assert 429 in [s for s, _, _ in bad]
    statuses = [_curl_from(addr, url, good_h).status for _ in range(30)]
    assert 429 in statuses, "a flooding address is limited before authentication"
    assert _curl_from("127.0.0.5", url, good_h).status == 200
    assert _curl_from("127.0.0.5", url, bad_h).status == 401
    deadline = time.monotonic() + LIMITS["penalty_seconds"] + 10
    while _curl_from(addr, url, good_h).status != 200:
        assert time.monotonic() < deadline, "the throttle never ended"
        time.sleep(0.5)


def _curl_from(addr: str, url: str, headers: dict):
    cmd = [
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--interface",
        addr,
        "-X",
        "POST",
        url,
        "--data-binary",
        chat_body(),
        "--max-time",
        "30",
    ]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(cmd, capture_output=True, check=True, text=True).stdout

    class R:
        status = int(out)

    return R


def test_sidecar_stall_504_has_json_shape_and_receipt(agw):
    """Envoy's message timeout while the policy service is stalled: JSON error, receipt id, receipt.
    (Over ext_authz the stalled check is Envoy's check timeout: 503 gateway.unavailable.)"""
    status, code = (504, "gateway.timeout") if agw.transport == "extproc" else (503, "gateway.unavailable")
    url = agw.base("acme") + "/chat/completions"
    headers = {**JSON, "authorization": f"Bearer {agw.tokens['acme']}"}
    sim_before = len(agw.sim_requests())
    proc = agw.stack.procs["extproc"]
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        reply = curl(url, chat_body(content="while stalled"), headers)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert reply.status == status, (reply.status, reply.body)
    assert reply.headers.get("content-type", "").startswith("application/json"), reply.headers
    err = reply.json()["error"]
    assert err["code"] == code and err["message"]
    assert reply.receipt_id and reply.receipt_id.startswith("rcpt_") and err["receipt_id"] == reply.receipt_id
    doc = agw.receipt_doc(reply.receipt_id, timeout=20)
    assert doc["decision"]["allow"] is False and doc["decision"]["code"] == code
    assert doc["response"]["status"] == status and doc["upstream"] is None
    assert len(agw.sim_requests()) == sim_before, "a call reached the upstream without a decision"
    # The service is back: calls flow again.
    assert curl(url, chat_body(content="after the stall"), headers).status == 200


def test_pre_auth_limits_in_gateway_yaml_survive_seeding_into_the_control_plane(tmp_path):
    """A fleet seeded from a config directory runs with the operator's pre-auth limits, not the
    defaults: the seed keeps every gateway.yaml setting that gateways read, and the bundle's
    gateway document carries them (it used to copy only the body and output-token limits)."""
    from relaygate.controlplane import bundles, db, seed as seeding
    from relaygate.controlplane.sealing import Sealer
    from relaygate.controlplane.secretstore import SecretStore
    from relaygate.contract import config as config_mod

    write_config(tmp_path / "config")
    with open(tmp_path / "config" / "gateway.yaml", "a") as f:
        f.write("unauthenticated: {strikes_per_second: 3, requests_per_second: 2, burst: 4, penalty_seconds: 30}\n")

    async def documents():
        engine = db.create_engine(f"sqlite:///{tmp_path / 'cp' / 'cp.db'}")
        try:
            await db.migrate(engine)
            await seeding.seed(engine, SecretStore(engine, Sealer(os.urandom(32))), tmp_path / "config")
            async with engine.connect() as c:
                return await bundles.gateway_documents(c)
        finally:
            await engine.dispose()

    gw_doc = asyncio.run(documents())["gateway"]
    limits = config_mod.parse_preauth(gw_doc.get("unauthenticated"))
    assert (limits.strikes_per_second, limits.requests_per_second, limits.burst, limits.penalty_seconds) == (
        3,
        2,
        4,
        30,
    ), gw_doc
