"""Fleet-wide tier limits: three gateways (each an Envoy with its sidecar) count one workspace's
requests/s and tokens/min in one Redis (``--limits redis``, the default with ``--ledger redis``).

Per-sidecar buckets would let each gateway admit a full burst (three times the limit); counted in
Redis the three together admit what one gateway would. Redis stalled or stopped refuses the call
(503 ``rate.unavailable``, with a receipt), as the budget ledger does.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid

import aiohttp
import pytest
import redis
import yaml

from devstack.processes import Stack
from devstack.redis_server import RedisServer
from relaygate.decision.limits import LimitsUnavailable, RedisTierLimits
from tests.conftest import POLICY_DIR, Gateway, write_config
from tests.cpclient import eventually
from tests.httpcall import chat_body, curl

LEDGER_TIMEOUT_MS = 1200  # below Envoy's 2 s check timeout (see test_shared_budget.py)
RPS = 5  # euro: requests_per_second 5 (burst 5)
TPM = (
    11000  # acme: tokens_per_minute; calls below reserve 2000 output tokens + their input bound (the body's ~130 bytes)
)
MAX_TOKENS = 2000
BUDGET = 3000  # capped: one call of MAX_TOKENS holds about 2130 tokens, so a second must wait for it
LEASE_TTL_MS = 3000


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    """A Redis of this module's own (one test stops and restarts it)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, redis_server):
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    tmp = tmp_path_factory.mktemp("fleet")
    tokens = write_config(
        tmp / "config",
        [
            {
                "id": "capped-daily",
                "workspace": "capped",
                "key": None,
                "unit": "tokens",
                "window": "day",
                "limit": BUDGET,
            }
        ],
    )
    ws = yaml.safe_load((tmp / "config" / "workspaces.yaml").read_text())
    ws["workspaces"]["euro"]["limits"] = {"requests_per_second": RPS}
    ws["workspaces"]["acme"]["limits"] = {"tokens_per_minute": TPM}
    (tmp / "config" / "workspaces.yaml").write_text(yaml.safe_dump(ws))
    patience = ["--ledger-timeout-ms", str(LEDGER_TIMEOUT_MS), "--lease-ttl-ms", str(LEASE_TTL_MS)]
    patience += ["--lease-interval-ms", "500"]
    stacks = [
        Stack(
            tmp / f"gw{i}",
            config_dir=tmp / "config",
            policy_dir=POLICY_DIR,
            ledger_url=redis_server.url,
            instance_id=f"gw-{i}",
            extproc_args=patience,
        )
        for i in range(3)
    ]
    try:
        stacks[0].start()
        for s in stacks[1:]:  # they share the first stack's provider simulator
            s.start_extproc()
            s.start_envoy()
        yield [Gateway(s, tokens) for s in stacks], client
    finally:
        for s in reversed(stacks):
            s.stop()


async def _burst(
    gateways: list[Gateway], ws: str, per_gateway: int, body: str
) -> list[tuple[int, dict, dict, Gateway]]:
    """per_gateway calls to each gateway, all started at once: (status, headers, body, gateway) each."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

        async def one(gw: Gateway):
            headers = {"authorization": f"Bearer {gw.tokens[ws]}", "content-type": "application/json"}
            async with s.post(gw.base(ws) + "/chat/completions", data=body, headers=headers) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.json(), gw

        return await asyncio.gather(*(one(gw) for gw in gateways for _ in range(per_gateway)))


def _receipts_signed_by_their_gateway(results) -> None:
    """Every call, admitted or refused, has a receipt from the sidecar of the gateway it went to."""
    for status, headers, _, gw in results:
        doc = gw.receipt_doc(headers["x-relayone-receipt-id"])
        assert doc["sidecar"] == gw.stack.instance_id and doc["decision"]["allow"] is (status == 200)


def _settled(client: redis.Redis, ws: str, which: str, full: float) -> bool:
    """The workspace's bucket is full again (or gone: a full bucket expires)."""
    level = client.hget(f"relaygate:limits:{ws}:{which}", "level")
    return level is None or float(level) >= full - 0.01


@pytest.mark.slow
def test_three_gateways_together_admit_one_requests_per_second_burst(fleet):
    gateways, client = fleet
    for _ in range(3):  # a burst slowed past 2 s by a loaded machine tells nothing: try again
        eventually(lambda: _settled(client, "euro", "rps", RPS), 10, "a full request bucket")
        marker = f"rps burst {uuid.uuid4().hex}"
        started = time.monotonic()
        results = asyncio.run(_burst(gateways, "euro", 10, chat_body(content=marker)))
        elapsed = time.monotonic() - started
        if elapsed < 2:
            break
    ok = [r for r in results if r[0] == 200]
    limited = [r for r in results if r[0] == 429]
    assert len(ok) + len(limited) == 30, sorted({r[0] for r in results})
    # One burst of 5, plus what the bucket refilled (5/s) while the 30 calls were being decided;
    # per-sidecar buckets would have admitted 5 at each gateway (15) at once.
    assert RPS <= len(ok) <= RPS + int(RPS * elapsed), (len(ok), elapsed)
    assert elapsed < 2, f"the burst took {elapsed:.1f}s: too slow to tell a fleet limit from three"
    for _, headers, body, _ in limited:
        assert body["error"]["code"] == "rate.limited" and int(headers["retry-after"]) >= 1
        assert "requests_per_second" in body["error"]["message"]
    assert len([e for e in gateways[0].sim_requests("openai-eu") if marker in e["body"]]) == len(ok)
    assert {gw.stack.instance_id for *_, gw in limited} == {"gw-0", "gw-1", "gw-2"}  # one shared bucket
    _receipts_signed_by_their_gateway(results)


@pytest.mark.slow
def test_three_gateways_together_admit_one_tokens_per_minute_budget(fleet):
    gateways, client = fleet
    marker = f"tpm burst {uuid.uuid4().hex}"
    body = chat_body(content=marker, max_tokens=MAX_TOKENS)
    # Each call reserves about 2130 tokens: 5 fit in 11000, a 6th does not, and the refill
    # (11000/60 ≈ 183 tokens/s) cannot make room for another within 9 seconds.
    results = asyncio.run(_burst(gateways, "acme", 4, body))
    ok = [r for r in results if r[0] == 200]
    limited = [r for r in results if r[0] == 429]
    assert len(ok) == 5 and len(limited) == 7, sorted(r[0] for r in results)
    for _, headers, b, _ in limited:
        assert b["error"]["code"] == "rate.limited" and int(headers["retry-after"]) >= 1
        assert "tokens_per_minute" in b["error"]["message"]
    assert len([e for e in gateways[0].sim_requests() if marker in e["body"]]) == 5
    _receipts_signed_by_their_gateway(results)


def _refused_closed(gw: Gateway, r, marker: str) -> None:
    assert r.status == 503 and r.json()["error"]["code"] == "rate.unavailable", r.body
    assert r.headers["retry-after"] == "1"
    assert not [e for e in gw.sim_requests("openai-eu") if marker in e["body"]]  # never reached upstream
    assert gw.receipt_doc(r.receipt_id)["decision"]["allow"] is False


@pytest.mark.slow
def test_redis_stalled_or_stopped_refuses_limited_calls_with_a_receipt(fleet, redis_server):
    gateways, client = fleet
    gw = gateways[1]

    def call(ws: str, content: str):
        headers = {"authorization": f"Bearer {gw.tokens[ws]}", "content-type": "application/json"}
        return curl(gw.base(ws) + "/chat/completions", chat_body(content=content), headers)

    # Stalled past the timeout (the bucket script is a write): refused, never let through unlimited.
    client.execute_command("CLIENT", "PAUSE", str(LEDGER_TIMEOUT_MS + 1500), "WRITE")
    try:
        r = call("euro", "while redis stalls")
    finally:
        client.execute_command("CLIENT", "UNPAUSE")
    _refused_closed(gw, r, "while redis stalls")

    redis_server.stop()
    try:
        r = call("euro", "while redis is down")
        _refused_closed(gw, r, "while redis is down")
        # A workspace with neither tier limits nor budgets never asks Redis: it is unaffected.
        assert call("tiny", "no limits, no budgets").status == 200
    finally:
        redis_server.start()  # same port, empty (no persistence): full buckets
    eventually(lambda: call("euro", "redis back").status == 200, 15, "calls admitted once Redis is back")


@pytest.fixture
def limits(redis_server):
    client = redis.Redis.from_url(redis_server.url, socket_timeout=2)
    prefix = f"relaygate:test-limits:{uuid.uuid4().hex}:"
    return RedisTierLimits(client, prefix=prefix), client, prefix


def test_bucket_script_admits_a_burst_then_refuses_with_the_wait(limits):
    lim, client, prefix = limits
    assert [lim.check("w", 5, None, 0) for _ in range(5)] == [None] * 5
    assert lim.check("w", 5, None, 0) == (1, "requests_per_second")
    level, at = client.hmget(f"{prefix}w:rps", "level", "at")
    assert float(level) < 1 and int(at) > 1.6e15  # microseconds of Redis's clock
    # An idle bucket expires once it would be full again (5 tokens at 5/s: about a second).
    assert 0 < client.pttl(f"{prefix}w:rps") <= 2000
    # A workspace without limits costs nothing and writes nothing.
    assert lim.check("free", None, None, 10**9) is None and not client.exists(f"{prefix}free:rps")


def test_bucket_script_refills_by_redis_time(limits):
    lim, client, prefix = limits
    assert lim.check("w", None, 600, 600) is None  # the whole minute's tokens
    assert lim.check("w", None, 600, 100) == (10, "tokens_per_minute")  # 10 tokens/s: 10 s for 100
    secs, micros = client.time()
    client.hset(f"{prefix}w:tpm", "at", str(secs * 1_000_000 + micros - 10_000_000))  # as if 10 s ago
    assert lim.check("w", None, 600, 100) is None
    assert lim.check("w", None, 600, 1) is not None


def test_bucket_script_charges_all_limits_or_none(limits):
    lim, client, prefix = limits
    assert lim.check("w", 5, 1000, 900) is None
    assert lim.check("w", 5, 1000, 900) == (
        48,
        "tokens_per_minute",
    )  # (900-100) at 1000/60 a second; the request bucket had room...
    assert 3.9 < float(client.hget(f"{prefix}w:rps", "level")) < 4.1  # ...and was not charged


def test_bucket_script_refuses_a_call_larger_than_the_limit(limits):
    lim, client, prefix = limits
    retry, why = lim.check("w", None, 500, 501)
    assert retry == 60 and "exceeds the workspace's tokens_per_minute (500)" in why
    assert not client.exists(f"{prefix}w:tpm")


def test_limits_unreachable_raise(redis_server):
    from devstack.processes import free_port

    dead = RedisTierLimits(redis.Redis(port=free_port(), socket_timeout=0.2, socket_connect_timeout=0.2))
    with pytest.raises(LimitsUnavailable):
        dead.check("w", 5, None, 0)
    assert dead.check("w", None, None, 0) is None  # nothing to ask


def _capped_usage(client: redis.Redis) -> tuple[int, int]:
    """(spent, reserved) of capped's budget in Redis."""
    spent = reserved = 0
    for key in client.scan_iter("relaygate:budget:capped/capped-daily:*"):
        s, r = client.hmget(key, "spent", "reserved")
        spent, reserved = spent + int(s or 0), reserved + int(r or 0)
    return spent, reserved


@pytest.mark.slow
def test_a_killed_sidecars_hold_is_released_when_its_lease_lapses(fleet):
    gateways, client = fleet
    victim, other = gateways[2], gateways[0]
    headers = {"authorization": f"Bearer {victim.tokens['capped']}", "content-type": "application/json"}
    spent0, reserved0 = _capped_usage(client)
    assert reserved0 == 0
    marker = f"in flight {uuid.uuid4().hex}"
    replies: dict = {}
    slow = {**headers, "x-sim-delay-ms": "8000"}  # held at the provider while its sidecar dies
    url = victim.base("capped") + "/chat/completions"
    flight = threading.Thread(
        target=lambda: replies.update(r=curl(url, chat_body(content=marker, max_tokens=MAX_TOKENS), slow))
    )
    flight.start()
    try:
        # Forwarded: the decision is made and its hold reserved in Redis.
        eventually(lambda: [e for e in victim.sim_requests() if marker in e["body"]], 15, "the call at the provider")
        held = _capped_usage(client)[1]
        assert held > MAX_TOKENS
        blocked = curl(
            other.base("capped") + "/chat/completions", chat_body(content="blocked", max_tokens=MAX_TOKENS), headers
        )
        assert blocked.status == 429 and blocked.json()["error"]["code"] == "budget.exceeded", blocked.body

        victim.stack.stop_one("extproc", signal.SIGKILL)  # dies for good holding the reservation
        killed = time.monotonic()
        eventually(lambda: _capped_usage(client) == (spent0, 0), 15, "the dead sidecar's hold released")
        assert time.monotonic() - killed >= LEASE_TTL_MS / 1000 - 0.5  # not before its lease lapsed
        ok = curl(
            other.base("capped") + "/chat/completions",
            chat_body(content="admitted again", max_tokens=MAX_TOKENS),
            headers,
        )
        assert ok.status == 200, ok.body
        eventually(lambda: _capped_usage(client)[1] == 0, 15, "the new call settled")
    finally:
        flight.join(60)
    after_reap = _capped_usage(client)
    # The dead sidecar comes back: its spool's pending call becomes an incomplete receipt charged
    # its worst case (the spend happens now, at the replay, not at the reap) and, its record gone,
    # the reservation is not released a second time.
    victim.stack.start_extproc()
    rid = replies["r"].receipt_id
    doc = victim.receipt_doc(rid, timeout=20)
    assert doc["status"] == "incomplete" and doc["decision"]["allow"] is True
    eventually(lambda: _capped_usage(client) == (after_reap[0] + held, 0), 15, "the replayed call charged once")


# Lease-bound holds, against the real Redis: each ledger below is one "process" with a lease.


@pytest.fixture
def leases(redis_server):
    from relaygate.decision.ledger import RedisLedger

    space = uuid.uuid4().hex
    made = []

    def ledger(owner: str, ttl: float = 10.0) -> RedisLedger:
        led = RedisLedger(
            redis_server.url,
            prefix=f"relaygate:test-budget:{space}:",
            owner=f"{owner}:{space}",
            lease_ttl=ttl,
            lease_prefix=f"relaygate:test-lease:{space}:",
        )
        made.append(led)
        return led

    return ledger


def _hold(led, amount: int = 100):
    from relaygate.decision.ledger import Hold, now_utc, window_bounds

    return [Hold("ws/b", window_bounds("day", now_utc())[0], amount, "tokens", led.hold_ref())]


def _spent_reserved(led, hold) -> tuple[int, int]:
    s, r = led.redis.hmget(led._key(hold.budget_id, hold.window_key), "spent", "reserved")
    return int(s or 0), int(r or 0)


def test_the_holds_of_a_lapsed_lease_are_released_exactly_once(leases):
    dead, live = leases("dead", ttl=0.3), leases("live")
    holds = _hold(dead, 100)
    assert dead.reserve(holds, {"ws/b": 150}) is None
    assert live.reserve(_hold(live, 100), {"ws/b": 150}) == "ws/b"  # the dead one's hold blocks it
    assert live.reap() == 0  # its lease is still alive: nothing released
    eventually(lambda: not live.redis.exists(f"{dead.lease_prefix}live:{dead.owner}"), 5, "the lease to lapse")
    # Several reapers at once (every live sidecar runs one): the hold is released once.
    others = [leases(f"reaper{i}") for i in range(4)]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(lambda led: led.reap(), others))
    assert sorted(counts) == [0, 0, 0, 1]
    assert _spent_reserved(live, holds[0]) == (0, 0)
    assert live.reap() == 0
    assert live.reserve(_hold(live, 100), {"ws/b": 150}) is None  # the budget admits again


def test_a_slow_process_whose_holds_were_reaped_settles_without_releasing_twice(leases):
    slow, live = leases("slow", ttl=0.3), leases("live")
    reaped, kept = _hold(slow, 100), _hold(slow, 40)
    assert slow.reserve(reaped, {"ws/b": 1000}) is None
    eventually(lambda: not live.redis.exists(f"{slow.lease_prefix}live:{slow.owner}"), 5, "the lease to lapse")
    assert live.reap() == 1
    assert _spent_reserved(live, reaped[0]) == (0, 0)
    # Back again: a reservation renews its lease, so this hold is not reaped with the old ones.
    assert slow.reserve(kept, {"ws/b": 1000}) is None
    assert live.reap() == 0
    assert _spent_reserved(live, reaped[0]) == (0, 40)
    # The reaped call settles with its real usage: the spend is added, the reservation (already
    # released) is not subtracted again; the other call releases its own hold.
    slow.settle_many([(reaped, {"tokens": 70}), (kept, {"tokens": 25})])
    assert _spent_reserved(live, reaped[0]) == (95, 0)
    slow.settle(kept, {"tokens": 25})  # a settlement replayed twice cannot release twice either
    assert _spent_reserved(live, reaped[0]) == (120, 0)


def test_a_restarted_process_settles_its_predecessors_holds_by_their_record(leases):
    before, after = leases("gw-x", ttl=30), leases("gw-x-restarted")
    holds = _hold(before, 100)
    assert before.reserve(holds, {"ws/b": 1000}) is None
    after.settle(holds, {"tokens": 60})  # its spool names the previous owner's record
    assert _spent_reserved(after, holds[0]) == (60, 0)
    assert not after.redis.hlen(before._holds_key(holds[0].ref))
    # The old lease lapsing later finds nothing left to release.
    after.redis.delete(f"{before.lease_prefix}live:{before.owner}")
    assert after.reap() == 0 and _spent_reserved(after, holds[0]) == (60, 0)


def test_reaping_skips_a_usage_window_that_has_expired(leases):
    dead, live = leases("dead", ttl=30), leases("live")
    holds = _hold(dead, 100)
    assert dead.reserve(holds, {"ws/b": 1000}) is None
    live.redis.delete(dead._key(holds[0].budget_id, holds[0].window_key))  # the window's hash expired
    live.redis.delete(f"{dead.lease_prefix}live:{dead.owner}")
    assert live.reap() == 1
    assert not live.redis.exists(dead._key(holds[0].budget_id, holds[0].window_key))  # no negative ghost
