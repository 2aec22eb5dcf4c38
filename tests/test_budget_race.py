"""200 concurrent calls against a budget that fits 50: no overspend, every call receipted."""
from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from evidence.receipts import envelope_receipt, verify_chain, verify_receipt
from tests.conftest import start_gateway

MAX_TOKENS = 10
BODY = json.dumps({"model": "gpt-4o-mini", "max_tokens": MAX_TOKENS,
                   "messages": [{"role": "user", "content": "budget race"}]}).encode()
PER_CALL = len(BODY) + MAX_TOKENS      # the worst case the gateway reserves (input bound + output cap)
LIMIT = 50 * PER_CALL


@pytest.fixture(scope="module", params=[1, 2], ids=["one-worker", "two-workers"])
def capped_gw(request, tmp_path_factory):
    """Two workers share the budget through the SQLite ledger: the race must stay exact across processes."""
    budgets = [{"id": "capped-daily", "workspace": "capped", "key": None, "unit": "tokens",
                "window": "day", "limit": LIMIT}]
    g = start_gateway(tmp_path_factory.mktemp("budget"), budgets, workers=request.param)
    yield g
    g.stack.stop()


async def _fire(url: str, key: str, n: int) -> list[tuple[int, dict, dict]]:
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json",
               # hold every admitted call at the upstream until all 200 have been decided
               "x-sim-delay-ms": "3000"}
    conn = aiohttp.TCPConnector(limit=n)
    async with aiohttp.ClientSession(connector=conn) as s:
        async def one():
            async with s.post(url, data=BODY, headers=headers) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.json()
        return await asyncio.gather(*(one() for _ in range(n)))


@pytest.mark.slow
def test_concurrent_calls_never_overspend(capped_gw):
    gw = capped_gw
    results = asyncio.run(_fire(gw.base("capped") + "/chat/completions", gw.tokens["capped"], 200))
    ok = [r for r in results if r[0] == 200]
    denied = [r for r in results if r[0] == 429]
    assert len(ok) == 50 and len(denied) == 150, sorted({r[0] for r in results})
    for _, headers, body in denied:
        assert body["error"]["code"] == "budget.exceeded" and int(headers["retry-after"]) > 0
    # exactly the admitted calls reached the provider
    assert len([e for e in gw.sim_requests() if "budget race" in e["body"]]) == 50

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
    """After the race settles to real usage, the over-reserved remainder admits new calls again."""
    gw = capped_gw
    results = asyncio.run(_fire(gw.base("capped") + "/chat/completions", gw.tokens["capped"], 1))
    assert results[0][0] == 200
