"""Traces: Envoy's OpenTelemetry tracer and the sidecar's decision span reach a real OTLP/gRPC
receiver (devstack/otlp.py, built from opentelemetry-proto) as one trace per call, with the
policy decision as a child of Envoy's check span, carrying the receipt id and GenAI attributes.

Over both transports (ext_authz over HTTP, ext_proc over gRPC) and over xDS, where the control
plane renders the listener's tracing from the gateway's node metadata."""

from __future__ import annotations

import json
import secrets

import openai
import pytest

from devstack.otlp import Receiver, trace_of_receipt
from relaygate.extproc.tracing import RECEIPT_ATTRIBUTE, SPAN_NAME
from tests.conftest import Gateway, start_full_stack, start_gateway

RECEIPT = "x-relayone-receipt-id"


@pytest.fixture(scope="module")
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture(scope="module", params=["authz-http", "extproc"])
def traced(request, receiver, tmp_path_factory):
    g = start_gateway(tmp_path_factory.mktemp("traces"), transport=request.param, otlp_endpoint=receiver.address)
    yield g
    g.stack.stop()


def _client(g, **kw):
    http = openai.DefaultHttpxClient(verify=g.stack.client_ssl(), trust_env=False)
    return openai.OpenAI(api_key=g.tokens["acme"], base_url=g.base("acme"), http_client=http, max_retries=0, **kw)


def _trace(receiver, rid: str) -> list[dict]:
    """The whole trace of receipt ``rid``, once Envoy's spans of it have arrived too."""

    def complete(spans):
        t = trace_of_receipt(spans, rid)
        return any(s["name"] == "ingress" for s in t) and any(s["name"] == SPAN_NAME for s in t)

    return trace_of_receipt(receiver.wait_for(complete, timeout=20), rid)


def _one(spans, **match) -> dict:
    found = [s for s in spans if all(s.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (match, [(s["service"], s["name"]) for s in spans])
    return found[0]


def _check_structure(trace: list[dict]) -> tuple[dict, dict, dict]:
    """ingress (Envoy) → the policy check (Envoy) → relaygate.decide (sidecar); one trace id."""
    assert len({s["trace_id"] for s in trace}) == 1
    ingress = _one(trace, name="ingress", service="relaygate-envoy")
    decide = _one(trace, name=SPAN_NAME, service="relaygate-policy")
    by_id = {s["span_id"]: s for s in trace}
    check = by_id[decide["parent_span_id"]]  # Envoy's span of the check it sent the sidecar
    assert check["service"] == "relaygate-envoy" and check["parent_span_id"] == ingress["span_id"], check
    assert ingress["start_ns"] <= check["start_ns"] and decide["end_ns"] <= ingress["end_ns"]
    return ingress, check, decide


def test_an_allowed_call_is_one_trace_with_the_decision_under_envoys_check(traced, receiver):
    raw = _client(traced).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "trace me"}], max_tokens=16
    )
    rid = raw.headers[RECEIPT]
    trace = _trace(receiver, rid)
    ingress, check, decide = _check_structure(trace)
    a = decide["attributes"]
    assert a[RECEIPT_ATTRIBUTE] == rid
    assert a["relaygate.decision"] == "allow" and a["relaygate.code"] == "ok"
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["relaygate.workspace"] == "acme"
    assert a["relaygate.upstream"] in {u.name for u in traced.stack.cfg.upstreams if u.provider == "openai"}
    assert a["relaygate.region"]
    assert "error.type" not in a
    # The provider call is Envoy's router span, a sibling of the check under the same ingress.
    upstream = [s for s in trace if s["service"] == "relaygate-envoy" and s["name"].startswith("router ")]
    assert len(upstream) == 1 and upstream[0]["parent_span_id"] == ingress["span_id"]
    assert decide["end_ns"] <= upstream[0]["start_ns"]  # decided before anything was forwarded


def test_a_denied_call_has_its_decision_span_and_no_provider_span(traced, receiver):
    with pytest.raises(openai.APIStatusError) as e:
        _client(traced).chat.completions.create(
            model="gpt-9", messages=[{"role": "user", "content": "no such model"}], max_tokens=5
        )
    rid = e.value.response.headers[RECEIPT]
    trace = _trace(receiver, rid)
    _, _, decide = _check_structure(trace)
    a = decide["attributes"]
    assert a["relaygate.decision"] == "deny" and a["relaygate.code"] == "model.not_found"
    assert a["error.type"] == "model.not_found" and a["http.response.status_code"] == e.value.status_code
    assert not [s for s in trace if s["name"].startswith("router ")]


def test_a_callers_trace_context_is_continued(traced, receiver):
    """An app that traces its own work sees the gateway's spans inside its trace."""
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    client = _client(traced, default_headers={"traceparent": f"00-{trace_id}-{parent}-01"})
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "traced app"}], max_tokens=8
    )
    trace = _trace(receiver, raw.headers[RECEIPT])
    ingress, _, _ = _check_structure(trace)
    assert ingress["trace_id"] == trace_id and ingress["parent_span_id"] == parent


def test_unsampled_calls_make_no_spans_and_a_caller_cannot_force_them(receiver, tmp_path_factory):
    """--trace-sampling 0: Envoy starts no trace and the sidecar makes no span (it follows the
    sampled flag of the context Envoy hands it), even for a caller whose own context says
    "sampled": a client cannot make the gateway trace, and so load the trace pipeline, past the
    sampling rate. Stopping the sidecar flushes what its exporter holds, so nothing is missed by
    looking too early."""
    g = start_gateway(
        tmp_path_factory.mktemp("untraced"), transport="authz-http", otlp_endpoint=receiver.address, trace_sampling=0
    )
    try:
        rids = []
        for headers in ({}, {"traceparent": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"}):
            raw = _client(g, default_headers=headers).chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "not sampled"}], max_tokens=8
            )
            rids.append(raw.headers[RECEIPT])
        assert '"random_sampling": {\n' in (g.stack.run_dir / "envoy.json").read_text()  # tracing is on, at 0 %
    finally:
        g.stack.stop()
    spans = receiver.spans()
    assert [rid for rid in rids if trace_of_receipt(spans, rid)] == []


def test_over_xds_the_control_plane_renders_tracing_from_the_node_metadata(receiver, tmp_path_factory):
    stack, tokens = start_full_stack(tmp_path_factory, "traces-xds", otlp_endpoint=receiver.address)
    try:
        raw = _client(Gateway(stack, tokens)).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "over xds"}], max_tokens=8
        )
        _, _, decide = _check_structure(_trace(receiver, raw.headers[RECEIPT]))
        assert decide["attributes"]["relaygate.decision"] == "allow"
    finally:
        stack.stop()


def test_no_span_holds_a_key_a_provider_credential_or_the_prompt(traced, receiver):
    """Rule 7: what Envoy and the sidecar export says what happened, never the secrets or the
    content: keys travel in headers Envoy does not tag, and the sidecar's attributes are a
    fixed list."""
    marker = f"secret prompt {secrets.token_hex(8)}"
    raw = _client(traced).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": marker}], max_tokens=8
    )
    _trace(receiver, raw.headers[RECEIPT])
    with pytest.raises(openai.AuthenticationError) as e:  # a key that does not exist, traced too
        openai.OpenAI(
            api_key="ro_live_AAAAAAAAAAAA_wrongsecretwrongsecret",
            base_url=traced.base("acme"),
            http_client=openai.DefaultHttpxClient(verify=traced.stack.client_ssl(), trust_env=False),
            max_retries=0,
        ).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], max_tokens=5)
    _trace(receiver, e.value.response.headers[RECEIPT])
    exported = json.dumps(receiver.spans())
    secrets_seen = [traced.tokens["acme"], "wrongsecretwrongsecret", marker]
    secrets_seen += [u.credential for u in traced.stack.cfg.upstreams if u.credential]
    assert [s for s in secrets_seen if s in exported] == []
