"""The decision library (relaygate/decision/gate.py) driven with plain values: every check the
gateway makes before and after Rego, in order, as an attacker would probe them, and the dry run
deciding exactly as the gateway does."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from relaygate.decision import gate
from relaygate.decision.admission import Verdict
from relaygate.decision.wire import Route
from tests.unit.snapshot import build, headers


@pytest.fixture(scope="module")
def snap(tmp_path_factory):
    return build(tmp_path_factory.mktemp("gate"))


def _headers_verdict(adm, h: dict, has_body: bool = True) -> tuple[gate.Call, Verdict | None]:
    call = gate.Call(adm)
    return call, gate.check_headers(call, h, has_body)


def _body(model: str = "gpt-4o-mini", **extra) -> bytes:
    return orjson.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}], **extra})


@pytest.mark.parametrize(
    "case, expect",
    [
        ("unknown path", (404, "route.not_found")),
        ("GET", (405, "request.method_not_allowed")),
        ("no key", (401, "auth.unauthenticated")),
        ("forged key", (401, "auth.unauthenticated")),
        ("revoked key", (401, "auth.unauthenticated")),
        ("key of another workspace", (403, "scope.denied")),
        ("read-only key", (403, "scope.denied")),
        ("text/plain", (415, "request.unsupported_media_type")),
        ("content-length over the cap", (413, "request.too_large")),
        ("no body", (400, "request.invalid")),
    ],
)
def test_each_header_check_refuses_its_case_and_the_first_failing_check_answers(snap, case, expect):
    adm, tokens = snap
    acme = tokens["acme"]
    forged = acme[:-4] + ("AAAA" if not acme.endswith("AAAA") else "BBBB")
    h, has_body = {
        "unknown path": (headers(acme, endpoint="admin/keys"), True),
        # The method is checked before the key: a GET with a forged key is still 405.
        "GET": (headers(forged, method="GET"), True),
        "no key": (headers(None), True),
        "forged key": (headers(forged), True),
        "revoked key": (headers(tokens["revoked"]), True),
        "key of another workspace": (headers(tokens["euro"], workspace="acme"), True),
        "read-only key": (headers(tokens["acme-ro"]), True),
        "text/plain": (headers(acme, ctype="text/plain"), True),
        "content-length over the cap": (headers(acme, content_length=str(adm.config.max_body_bytes + 1)), True),
        "no body": (headers(acme), False),
    }[case]
    call, v = _headers_verdict(adm, h, has_body)
    assert v is not None and not v.allow and (v.status, v.code) == expect, (case, v)
    assert v.decision["allow"] is False and v.decision["status"] == expect[0] and v.decision["code"] == expect[1]
    # Only a call refused before any key was authenticated counts as pre-auth (throttled, sampled).
    assert call.is_preauth(v.status) == (expect[0] in (401, 404, 405))
    assert call.receipt_id.endswith("0f8fad5b-d9cb-469f-a165-70867728950e")


def test_the_anthropic_header_carries_the_key_too_and_a_valid_call_passes_the_header_checks(snap):
    adm, tokens = snap
    h = headers(None, endpoint="messages", x_api_key=tokens["acme"])
    call, v = _headers_verdict(adm, h)
    assert v is None and call.key is not None and call.key.workspace == "acme"
    assert call.route == Route("acme", "messages", "")
    assert call.peer == "203.0.113.7"


@pytest.mark.parametrize(
    "raw, code",
    [
        (b"{not json", "request.invalid_json"),
        (b"[]", "request.invalid"),
        (orjson.dumps({"messages": []}), "request.invalid"),  # no model
        (_body(max_tokens=10**9), "request.invalid"),  # over any model's output limit
    ],
)
def test_body_checks_refuse_malformed_bodies_before_any_policy_runs(snap, raw, code):
    adm, tokens = snap
    call, v = _headers_verdict(adm, headers(tokens["acme"]))
    assert v is None
    shape = gate.check_body(call, raw)
    assert isinstance(shape, Verdict) and shape.status == 400 and shape.code == code, shape


def test_a_body_over_the_cap_is_refused_even_without_a_content_length(snap):
    adm, tokens = snap
    call, v = _headers_verdict(adm, headers(tokens["acme"]))
    assert v is None
    shape = gate.check_body(call, b" " * (adm.config.max_body_bytes + 1))
    assert isinstance(shape, Verdict) and (shape.status, shape.code) == (413, "request.too_large")


def test_a_body_after_refused_headers_is_never_decided(snap):
    """Envoy should not send a body after a denial; if it does, nothing is decided on it."""
    adm, tokens = snap
    call, v = _headers_verdict(adm, headers(tokens["euro"], workspace="acme"))
    assert v is not None and v.status == 403
    call.key = None  # as after a 401
    shape = gate.check_body(call, _body())
    assert isinstance(shape, Verdict) and (shape.status, shape.code) == (400, "request.invalid")


def test_decide_allows_within_policy_and_reserves_then_the_policy_refuses_what_it_must(snap):
    adm, tokens = snap
    call, _ = _headers_verdict(adm, headers(tokens["acme"]))
    shape = gate.check_body(call, _body())
    v = gate.decide(call, shape)
    assert isinstance(v, Verdict) and v.allow and v.upstream is not None
    assert v.upstream.jurisdiction in ("us", "eu")
    adm.ledger.settle(v.holds, {})
    # Sovereignty: the euro workspace may only use EEA upstreams; gpt-4o is served only in the US.
    call, _ = _headers_verdict(adm, headers(tokens["euro"], workspace="euro"))
    v = gate.decide(call, gate.check_body(call, _body("gpt-4o")))
    assert isinstance(v, Verdict) and not v.allow and (v.status, v.code) == (451, "sovereignty.blocked"), v
    # Scope: a key limited to embeddings may not chat.
    call, _ = _headers_verdict(adm, headers(tokens["acme-embed"]))
    v = gate.decide(call, gate.check_body(call, _body()))
    assert isinstance(v, Verdict) and not v.allow and v.status == 403 and v.code.startswith("scope"), v


def test_a_budget_holds_across_calls_and_the_refusal_says_when_to_retry(snap):
    adm, tokens = snap
    call, _ = _headers_verdict(adm, headers(tokens["acme-limited"]))
    v = gate.decide(call, gate.check_body(call, _body()))
    assert isinstance(v, Verdict) and not v.allow and (v.status, v.code) == (429, "budget.exceeded")
    assert v.retry_after is not None and v.retry_after >= 1


def test_the_dry_run_entry_point_decides_as_the_gateway_does_without_reserving(snap):
    adm, tokens = snap
    for token, ws, model in (
        (tokens["acme"], "acme", "gpt-4o-mini"),
        (tokens["euro"], "euro", "gpt-4o"),
        (tokens["acme-embed"], "acme", "gpt-4o-mini"),
    ):
        call, _ = _headers_verdict(adm, headers(token, workspace=ws))
        shape = gate.check_body(call, _body(model))
        doc, _, _ = adm.policy_input(call.key, call.route.endpoint, shape)
        before = adm.ledger.used_many([("acme", "x")])
        dry = asyncio.run(gate.evaluate(adm, ws, doc))
        assert adm.ledger.used_many([("acme", "x")]) == before
        real = gate.decide(call, shape)
        assert isinstance(real, Verdict)
        assert (dry["allow"], dry["status"], dry["code"]) == (real.allow, real.status, real.code), (ws, model)
        if real.allow:
            assert dry["upstream"] == real.upstream.name
            adm.ledger.settle(real.holds, {})
