"""``--policy-engine opa-server`` (issue 16, item 5): the sidecar takes the platform decision from a
real OPA over its REST API, with the same checks, receipts and budgets as with regorus, and
refuses calls (503 ``policy.error``, with a receipt) while OPA is unreachable."""

from __future__ import annotations

import time

import openai
import pytest

from devstack import opa
from devstack.processes import ROOT
from tests.conftest import start_gateway

RECEIPT = "x-relayone-receipt-id"
# A budget a call's worst case fits with max_tokens 100 and overflows with 1000.
BUDGETS = [{"id": "acme-small", "workspace": "acme", "key": None, "unit": "tokens", "window": "day", "limit": 700}]


@pytest.fixture(scope="module")
def opa_server(tmp_path_factory):
    # Standalone: OPA loads the platform policies and data from the repository (an OPA agent on the
    # control plane's bundles works too: tests/system/test_opa_bundles.py).
    server = opa.OpaServer(tmp_path_factory.mktemp("opa") / "opa.log", extra_args=(str(ROOT / "policies"),))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gw(opa_server, tmp_path_factory):
    g = start_gateway(
        tmp_path_factory.mktemp("opa-engine"),
        BUDGETS,
        transport="authz-http",
        extproc_args=["--policy-engine", "opa-server", "--opa-url", opa_server.url],
    )
    yield g
    g.stack.stop()


def _client(gw, key="acme"):
    http = openai.DefaultHttpxClient(verify=gw.stack.client_ssl(), trust_env=False)
    return openai.OpenAI(api_key=gw.tokens[key], base_url=gw.base("acme"), http_client=http, max_retries=0)


def _chat(gw, model: str, key="acme", max_tokens=100):
    try:
        raw = _client(gw, key).chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "x" * 40}], max_tokens=max_tokens
        )
        return 200, "ok", raw.headers[RECEIPT]
    except openai.APIStatusError as e:
        return e.status_code, e.response.json()["error"]["code"], e.response.headers.get(RECEIPT)


def test_opa_decides_with_the_sidecars_receipts_and_budgets(gw, opa_server):
    status, code, rid = _chat(gw, "gpt-4o-mini")
    assert (status, code) == (200, "ok")
    receipt = gw.receipt_doc(rid)
    assert receipt["decision"]["allow"] and "relaygate.gateway@1.0.0" in receipt["decision"]["policies"]
    assert _chat(gw, "gpt-9")[:2] == (404, "model.not_found")  # the policy's answer, from OPA
    assert _chat(gw, "gpt-4o-mini", key="acme-embed")[:2] == (403, "scope.denied")
    # The policy (in OPA) weighs the call's worst case against the budget; the sidecar reserves it.
    big = _chat(gw, "gpt-4o-mini", max_tokens=1000)
    assert big[:2] == (429, "budget.exceeded"), big
    assert "acme-small" in " ".join(gw.receipt_doc(big[2])["decision"]["reasons"])
    assert receipt["usage"]["output_tokens"] > 0  # settled to real usage, as with regorus


def test_an_unreachable_opa_fails_closed_with_a_receipt(gw, opa_server):
    opa_server.stop()
    try:
        status, code, rid = _chat(gw, "gpt-9")  # not even a denial is decided without the policy
        assert (status, code) == (503, "policy.error") and rid
        receipt = gw.receipt_doc(rid)
        assert not receipt["decision"]["allow"] and receipt["decision"]["code"] == "policy.error"
        assert "unreachable" in receipt["decision"]["reasons"][0]
    finally:
        opa_server.start()
    deadline = time.monotonic() + 10
    while _chat(gw, "gpt-9")[:2] != (404, "model.not_found"):  # back as soon as OPA is
        assert time.monotonic() < deadline
        time.sleep(0.1)
