"""200 concurrent calls against a budget that fits 50: no overspend, every call receipted.

The two tests share a module's gateway but not a budget (the race spends workspace capped's, the
settlement test tiny's), and each counts only the requests carrying its own marker, so either
passes or fails alone, in any order.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import aiohttp
import pytest

from relaygate.evidence.receipts import envelope_receipt, verify_chain, verify_receipt
from tests.conftest import start_gateway

MAX_TOKENS = 10


def _body(marker: str) -> bytes:
    """A call carrying a per-test marker (32 hex digits, so every body has the same length)."""
    return json.dumps(
        {
            "model": "gpt-4o-mini",
            "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": f"budget race {marker}"}],
        }
    ).encode()


def _marker() -> str:
    return uuid.uuid4().hex


PER_CALL = len(_body(_marker())) + MAX_TOKENS  # the worst case the gateway reserves (input bound + output cap)
LIMIT = 50 * PER_CALL
SETTLE_FITS = 5  # the settlement test's budget holds this many reservations
BODY = _body("0" * 32)  # a fixed body, for test_shared_budget


@pytest.fixture(scope="module", params=[1, 2], ids=["one-worker", "two-workers"])
def capped_gw(request, tmp_path_factory):
    """Two workers share the budget through the SQLite ledger: the race must stay exact across processes."""
    budgets = [
        {"id": "capped-daily", "workspace": "capped", "key": None, "unit": "tokens", "window": "day", "limit": LIMIT},
        {
            "id": "settle-daily",
            "workspace": "tiny",
            "key": None,
            "unit": "tokens",
            "window": "day",
            "limit": SETTLE_FITS * PER_CALL,
        },
    ]
    g = start_gateway(tmp_path_factory.mktemp("budget"), budgets, workers=request.param)
    yield g
    g.stack.stop()


async def _fire(url: str, key: str, n: int, body: bytes = BODY) -> list[tuple[int, dict, dict]]:
    headers = {
        "authorization": f"Bearer {key}",
        "content-type": "application/json",
        # hold every admitted call at the upstream until all 200 have been decided
        "x-sim-delay-ms": "3000",
    }
    conn = aiohttp.TCPConnector(limit=n)
    async with aiohttp.ClientSession(connector=conn) as s:

        async def one():
            async with s.post(url, data=body, headers=headers) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.json()

        return await asyncio.gather(*(one() for _ in range(n)))


@pytest.mark.slow
def test_concurrent_calls_never_overspend(capped_gw):
    gw = capped_gw
    marker = _marker()
    results = asyncio.run(_fire(gw.base("capped") + "/chat/completions", gw.tokens["capped"], 200, _body(marker)))
    ok = [r for r in results if r[0] == 200]
    denied = [r for r in results if r[0] == 429]
    assert len(ok) == 50 and len(denied) == 150, sorted({r[0] for r in results})
    for _, headers, body in denied:
        assert body["error"]["code"] == "budget.exceeded" and int(headers["retry-after"]) > 0
    # exactly the admitted calls reached the provider (this test's calls: other tests' are not counted)
    assert len([e for e in gw.sim_requests() if marker in e["body"]]) == 50

    key = gw.public_key()
    receipts = [gw.receipt(h["x-relayone-receipt-id"]) for _, h, _ in results]
    docs = [envelope_receipt(e) for e in receipts]
    assert len({r["id"] for r in docs}) == 200
    assert all(verify_receipt(e, key) for e in receipts)
    spent = sum(r["usage"]["input_tokens"] + r["usage"]["output_tokens"] for r in docs)
    assert all(r["usage"]["source"] == "response" for r in docs if r["decision"]["allow"])
    assert 0 < spent <= LIMIT
    verify_chain(gw.all_receipts(), key)


@pytest.mark.slow
def test_settlement_returns_unused_reservation(capped_gw):
    """Reservations alone fill the budget while calls are in flight; once they settle to real usage,
    exactly the over-reserved remainder admits new calls again (this test fills its own budget first,
    so it does not lean on another test having spent one)."""
    gw = capped_gw
    url, key = gw.base("tiny") + "/chat/completions", gw.tokens["tiny"]
    first = asyncio.run(_fire(url, key, SETTLE_FITS + 3, _body(_marker())))
    assert sorted(r[0] for r in first) == [200] * SETTLE_FITS + [429] * 3
    docs = [gw.receipt_doc(h["x-relayone-receipt-id"]) for _, h, _ in first]  # settled
    spent = sum(r["usage"]["input_tokens"] + r["usage"]["output_tokens"] for r in docs)
    assert 0 < spent < SETTLE_FITS * PER_CALL // 2  # real usage is far below the worst case reserved

    marker = _marker()
    again = asyncio.run(_fire(url, key, SETTLE_FITS + 3, _body(marker)))
    fits = (SETTLE_FITS * PER_CALL - spent) // PER_CALL
    assert fits >= SETTLE_FITS // 2  # without settlement none would fit
    assert sorted(r[0] for r in again) == [200] * fits + [429] * (SETTLE_FITS + 3 - fits)
    assert len([e for e in gw.sim_requests() if marker in e["body"]]) == fits
