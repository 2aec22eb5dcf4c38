"""Every denial and bad input: a clean 4xx JSON error with a receipt, and the gateway keeps serving."""

from __future__ import annotations


import json
import uuid

import pytest

from relaygate.evidence.receipts import envelope_receipt, verify_receipt
from tests.httpcall import chat_body, curl

JSON = {"content-type": "application/json"}


def _auth(gw, name):
    return {**JSON, "authorization": f"Bearer {gw.tokens[name]}"}


def _assert_error(gw, reply, status, code):
    assert reply.status == status, reply.body
    err = reply.json()["error"]
    assert err["code"] == code
    assert err["message"]
    assert err["receipt_id"] == reply.receipt_id and reply.receipt_id.startswith("rcpt_")
    env = gw.receipt(reply.receipt_id)
    assert verify_receipt(env, gw.public_key())
    r = envelope_receipt(env)
    assert r["decision"]["allow"] is False and r["decision"]["code"] == code
    assert r["response"]["status"] == status
    return r


def _sim_count(gw, upstream="openai-us"):
    return len(gw.sim_requests(upstream))


@pytest.mark.parametrize(
    "headers",
    [
        JSON,
        {**JSON, "authorization": "Bearer ro_live_AAAAAAAAAAAA_forgedsecretforgedsecret"},
        {**JSON, "authorization": "Bearer sk-not-ours"},
        {**JSON, "x-api-key": "ro_live_AAAAAAAAAAAA_x"},
    ],
    ids=["no-key", "forged-bearer", "foreign-bearer", "forged-x-api-key"],
)
def test_missing_or_forged_key_is_401(gw, headers):
    before = _sim_count(gw)
    r = _assert_error(
        gw, curl(gw.base("acme") + "/chat/completions", chat_body(), headers), 401, "auth.unauthenticated"
    )
    assert r["key_id"] is None
    assert _sim_count(gw) == before


def test_revoked_key_is_401(gw):
    _assert_error(
        gw, curl(gw.base("acme") + "/chat/completions", chat_body(), _auth(gw, "revoked")), 401, "auth.unauthenticated"
    )


def test_forged_secret_for_real_key_id_is_401(gw):
    real = gw.tokens["acme"]
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    _assert_error(
        gw,
        curl(gw.base("acme") + "/chat/completions", chat_body(), {**JSON, "authorization": f"Bearer {forged}"}),
        401,
        "auth.unauthenticated",
    )


def test_endpoint_scope_is_403(gw):
    r = _assert_error(
        gw, curl(gw.base("acme") + "/chat/completions", chat_body(), _auth(gw, "acme-embed")), 403, "scope.denied"
    )
    assert "relaygate.scope@1.0.0" in r["decision"]["policies"]


def test_model_scope_is_403(gw):
    _assert_error(
        gw,
        curl(gw.base("acme") + "/chat/completions", chat_body("gpt-4o-mini"), _auth(gw, "acme-4o")),
        403,
        "scope.denied",
    )
    ok = curl(gw.base("acme") + "/chat/completions", chat_body("gpt-4o"), _auth(gw, "acme-4o"))
    assert ok.status == 200


def test_key_of_another_workspace_is_403(gw):
    _assert_error(gw, curl(gw.base("euro") + "/chat/completions", chat_body(), _auth(gw, "acme")), 403, "scope.denied")


def test_unknown_model_is_404(gw):
    _assert_error(
        gw,
        curl(gw.base("acme") + "/chat/completions", chat_body("no-such-model"), _auth(gw, "acme")),
        404,
        "model.not_found",
    )


def test_sovereignty_block_is_451(gw):
    before = _sim_count(gw)
    r = _assert_error(
        gw, curl(gw.base("swiss") + "/chat/completions", chat_body(), _auth(gw, "swiss")), 451, "sovereignty.blocked"
    )
    assert "relaygate.sovereignty@1.0.0" in r["decision"]["policies"]
    assert _sim_count(gw) == before


def test_budget_exceeded_is_429_with_retry_after(gw):
    reply = curl(gw.base("tiny") + "/chat/completions", chat_body(max_tokens=100), _auth(gw, "tiny"))
    _assert_error(gw, reply, 429, "budget.exceeded")
    assert 0 < int(reply.headers["retry-after"]) <= 86400


def test_per_key_budget_limits_only_that_key(gw):
    """A USD budget on one key of workspace acme: that key gets 429, its neighbours keep working."""
    reply = curl(gw.base("acme") + "/chat/completions", chat_body(max_tokens=5), _auth(gw, "acme-limited"))
    r = _assert_error(gw, reply, 429, "budget.exceeded")
    assert "limited-key-monthly" in r["decision"]["reasons"][0]
    assert int(reply.headers["retry-after"]) <= 31 * 86400
    assert curl(gw.base("acme") + "/chat/completions", chat_body(max_tokens=5), _auth(gw, "acme")).status == 200


def test_invalid_json_is_400(gw):
    _assert_error(
        gw,
        curl(gw.base("acme") + "/chat/completions", '{"model": "gpt-4o-mini",', _auth(gw, "acme")),
        400,
        "request.invalid_json",
    )


@pytest.mark.parametrize(
    "body",
    [
        "[1, 2]",
        '{"messages": []}',
        '{"model": 7}',
        '{"model": "gpt-4o-mini", "max_tokens": -1}',
        '{"model": "gpt-4o-mini", "stream": "yes"}',
    ],
)
def test_malformed_request_is_400(gw, body):
    _assert_error(gw, curl(gw.base("acme") + "/chat/completions", body, _auth(gw, "acme")), 400, "request.invalid")


def test_wrong_content_type_is_415(gw):
    headers = {**_auth(gw, "acme"), "content-type": "text/plain"}
    _assert_error(
        gw, curl(gw.base("acme") + "/chat/completions", chat_body(), headers), 415, "request.unsupported_media_type"
    )


def test_ten_megabyte_body_is_413(gw):
    big = chat_body(content="x" * (10 * 1024 * 1024))
    _assert_error(gw, curl(gw.base("acme") + "/chat/completions", big, _auth(gw, "acme")), 413, "request.too_large")


def test_oversized_chunked_body_is_413(gw):
    """No content-length: Envoy's buffer limit answers, still in our error shape with the receipt id."""
    big = chat_body(content="x" * (3 * 1024 * 1024))
    headers = {**_auth(gw, "acme"), "transfer-encoding": "chunked"}
    reply = curl(gw.base("acme") + "/chat/completions", big, headers)
    assert reply.status == 413
    assert reply.json()["error"]["code"] == "request.too_large"
    assert reply.json()["error"]["receipt_id"].startswith("rcpt_")


def test_unknown_path_and_method(gw):
    _assert_error(gw, curl(gw.url + "/v1/acme/files", None, _auth(gw, "acme"), method="GET"), 404, "route.not_found")
    _assert_error(
        gw,
        curl(gw.base("acme") + "/chat/completions", None, _auth(gw, "acme"), method="GET"),
        405,
        "request.method_not_allowed",
    )


def test_client_cannot_choose_the_upstream_or_spoof_headers(gw):
    """A denied call with a routing header set by the client still never reaches an upstream."""
    before = _sim_count(gw, "anthropic-us")
    headers = {**_auth(gw, "swiss"), "x-relaygate-upstream": "anthropic-us", "x-relayone-receipt-id": "rcpt_spoofed"}
    reply = curl(gw.base("swiss") + "/chat/completions", chat_body(), headers)
    _assert_error(gw, reply, 451, "sovereignty.blocked")
    assert _sim_count(gw, "anthropic-us") == before
    marker = f"route me {uuid.uuid4().hex}"  # this call's own request, not another test's
    ok = curl(
        gw.base("acme") + "/chat/completions",
        chat_body(content=marker),
        {**_auth(gw, "acme"), "x-relaygate-upstream": "anthropic-us", "x-relaygate-debug": "1"},
    )
    assert ok.status == 200 and ok.receipt_id != "rcpt_spoofed"
    seen = gw.sim_request(marker, "openai-us")["headers"]
    # routed to openai-us (its simulator port), and the routing header itself never reaches a provider
    names = {k.lower() for k in seen}
    assert "x-relaygate-upstream" not in names and "x-relaygate-debug" not in names


def test_client_cannot_set_the_provider_path_body_or_removals_the_gateway_decides(gw):
    """The names the ext_authz transport uses to tell Envoy the provider path, a rewritten body and
    the headers to drop, sent by a client instead: what reaches the provider is still the gateway's
    path, the body as the gateway parsed and capped it, and none of those headers (either transport)."""
    marker = f"path me {uuid.uuid4().hex}"
    spoof = {
        "x-relaygate-path": "/v1/embeddings",
        "x-relaygate-body": '{"model":"gpt-4o","max_tokens":100000,"messages":[]}',
        "x-relaygate-status": "200",
        "x-envoy-auth-headers-to-remove": "authorization",
    }
    ok = curl(gw.base("acme") + "/chat/completions", chat_body(content=marker), {**_auth(gw, "acme"), **spoof})
    assert ok.status == 200, ok.body
    seen = gw.sim_request(marker, "openai-us")
    assert seen["path"] == "/v1/chat/completions"
    body = json.loads(seen["body"])
    assert body["model"] == "gpt-4o-mini" and body["messages"][0]["content"] == marker
    names = {k.lower() for k in seen["headers"]}
    assert not names & set(spoof), names & set(spoof)
    assert seen["headers"].get("Authorization") == "Bearer sk-test-openai"


@pytest.mark.parametrize("smuggle", ["\r", "\x00", "\n "])
def test_header_injection_is_rejected(gw, smuggle):
    """CR, NUL or obs-fold smuggled into the key header: a clean 4xx, nothing reaches an upstream."""
    before = _sim_count(gw)
    req = (
        f"POST /v1/acme/chat/completions HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {gw.tokens['acme']}{smuggle}X-Relaygate-Upstream: openai-us\r\n"
        f"Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    ).encode()
    with gw.connect() as s:  # TLS-wrapped: the listener serves HTTPS
        s.sendall(req)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    assert status in (400, 401), data
    assert _sim_count(gw) == before


def test_gateway_keeps_serving_after_bad_input(gw):
    for body in ("\x00\xff" * 100, "{" * 5000, ""):
        curl(gw.base("acme") + "/chat/completions", body, _auth(gw, "acme"))
    ok = curl(gw.base("acme") + "/chat/completions", chat_body(), _auth(gw, "acme"))
    assert ok.status == 200 and ok.json()["usage"]["completion_tokens"] == 12


def test_upstream_failure_has_our_error_shape_and_releases_budget(gw):
    """The provider drops the connection mid-call: Envoy's 502 in our shape, nothing charged."""
    reply = curl(gw.base("outage") + "/chat/completions", chat_body(), {**_auth(gw, "outage"), "x-sim-fail": "reset"})
    assert reply.status == 502, reply.body
    err = reply.json()["error"]
    assert err["code"] == "upstream.error"
    assert err["receipt_id"] == reply.receipt_id
    r = gw.receipt_doc(reply.receipt_id)
    assert r["decision"]["allow"] is True and r["cost"]["usd_micros"] == 0 and r["usage"]["source"] == "none"


def test_unreachable_upstream_is_503(gw):
    reply = curl(gw.base("acme") + "/chat/completions", chat_body("dead-model"), _auth(gw, "acme"))
    assert reply.status == 503
    err = reply.json()["error"]
    assert err["code"] == "upstream.unavailable" and err["receipt_id"] == reply.receipt_id
    assert gw.receipt_doc(reply.receipt_id)["upstream"]["name"] == "openai-dead"


def test_upstream_error_status_is_passed_through_and_not_charged(gw):
    reply = curl(gw.base("outage") + "/chat/completions", chat_body(), {**_auth(gw, "outage"), "x-sim-fail": "500"})
    assert reply.status == 500 and reply.json()["error"]["message"] == "simulated failure"
    r = gw.receipt_doc(reply.receipt_id)
    assert r["response"]["status"] == 500 and r["cost"]["usd_micros"] == 0
