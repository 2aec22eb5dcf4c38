"""The policy service killed mid-run: Envoy fails closed, and no spooled receipt is lost."""

from __future__ import annotations

import signal
import threading

import openai
import pytest

from relaygate.evidence.receipts import verify_chain
from tests.conftest import start_gateway
from tests.httpcall import chat_body, curl


@pytest.fixture
def gw(tmp_path):
    g = start_gateway(tmp_path)
    yield g
    g.stack.stop()


@pytest.mark.slow
def test_extproc_crash_fails_closed_and_keeps_receipts(gw):
    headers = {"authorization": f"Bearer {gw.tokens['acme']}", "content-type": "application/json"}
    url = gw.base("acme") + "/chat/completions"
    before = [curl(url, chat_body(content=f"before {i}"), headers).receipt_id for i in range(5)]
    for rid in before:
        assert gw.receipt_doc(rid)["status"] == "complete"

    # A stream in flight when the service dies.
    client = openai.OpenAI(base_url=gw.base("acme"), api_key=gw.tokens["acme"], max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        stream=True,
        messages=[{"role": "user", "content": "in flight"}],
        extra_headers={"x-sim-chunk-delay-ms": "100"},
    )
    inflight = raw.headers["x-relayone-receipt-id"]
    chunks = iter(raw.parse())
    next(chunks)
    got = []
    reader = threading.Thread(target=lambda: got.extend(chunks))
    reader.start()

    gw.stack.stop_one("extproc", signal.SIGKILL)
    sim_before = len(gw.sim_requests())
    for _ in range(3):
        down = curl(url, chat_body(content="while down"), headers)
        assert down.status == 503, down.body
        assert down.json()["error"]["code"] == "gateway.unavailable"
    assert len(gw.sim_requests()) == sim_before, "a call reached the upstream unchecked"

    reader.join(30)
    assert got, "the stream already admitted keeps flowing to the client"

    gw.stack.start_extproc()
    after = curl(url, chat_body(content="after restart"), headers)
    assert after.status == 200
    assert gw.receipt_doc(after.receipt_id)["status"] == "complete"

    for rid in before:
        assert gw.receipt_doc(rid)["status"] == "complete"
    lost = gw.receipt_doc(inflight)
    assert lost["status"] == "incomplete" and lost["usage"]["source"] == "reserved"
    verify_chain(gw.all_receipts(), gw.public_key())
