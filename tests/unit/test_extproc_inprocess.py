"""The sidecar's transport in-process: the ext_proc servicer fed constructed ProcessingRequests (as
opa-envoy-plugin's internal_test.go drives its server) and the access-log sink fed a constructed
HTTPAccessLogEntry, over a real spool, ledger and signer. No Envoy, no sockets: what Envoy would be
told, and what the receipt says, are checked on the protobufs and the spool themselves."""

from __future__ import annotations

import asyncio
import hashlib

import orjson
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.data.accesslog.v3 import accesslog_pb2
from envoy.service.accesslog.v3 import als_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from google.protobuf import struct_pb2

from relaygate.contract.envoy import NAMESPACE, PREAUTH_HEADER, RECEIPT_HEADER, UPSTREAM_HEADER, USAGE_NAMESPACE
from relaygate.contract.envoy import receipt_id_for
from relaygate.evidence.receipts import envelope_receipt, verify_receipt
from relaygate.evidence.signing import load_or_create_signer
from relaygate.extproc.processor import Processor
from relaygate.extproc.settlement import AccessLogSink, Finalizer
from relaygate.extproc.spool import Spool
from tests.unit.snapshot import build, headers

REQUEST_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


@pytest.fixture
def sidecar(tmp_path):
    adm, tokens = build(tmp_path / "config")
    spool = Spool(tmp_path / "data" / "receipts.db")
    signer = load_or_create_signer(tmp_path / "data" / "receipt-signing.key")
    yield Processor(adm, spool), AccessLogSink(Finalizer(spool, adm.ledger, signer, "unit-sidecar")), tokens, signer
    spool.close()


def _headers_msg(h: dict[str, str], end_of_stream: bool = False) -> pb.ProcessingRequest:
    hm = base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in h.items()])
    return pb.ProcessingRequest(request_headers=pb.HttpHeaders(headers=hm, end_of_stream=end_of_stream))


def _body_msg(raw: bytes) -> pb.ProcessingRequest:
    return pb.ProcessingRequest(request_body=pb.HttpBody(body=raw, end_of_stream=True))


def _stream(processor: Processor, *msgs: pb.ProcessingRequest) -> list[pb.ProcessingResponse]:
    async def requests():
        for m in msgs:
            yield m

    async def run():
        return [r async for r in processor.Process(requests(), None)]

    return asyncio.run(run())


def _set_headers(mutation) -> dict[str, str]:
    return {o.header.key: (o.header.raw_value or o.header.value.encode()).decode() for o in mutation.set_headers}


def _body(model: str = "gpt-4o-mini", **extra) -> bytes:
    return orjson.dumps({"model": model, "messages": [{"role": "user", "content": "unit-inprocess"}], **extra})


def test_a_denied_call_gets_an_immediate_json_reply_with_its_receipt_id_and_a_durable_draft(sidecar):
    processor, _, tokens, _ = sidecar
    forged = tokens["acme"][:-3] + "xyz"
    [resp] = _stream(processor, _headers_msg(headers(forged, x_request_id=REQUEST_ID)), _body_msg(_body()))
    imm = resp.immediate_response
    assert resp.WhichOneof("response") == "immediate_response" and imm.status.code == 401
    body = orjson.loads(imm.body)
    rid = receipt_id_for(REQUEST_ID)
    assert body["error"]["code"] == "auth.unauthenticated" and body["error"]["receipt_id"] == rid
    hs = _set_headers(imm.headers)
    assert hs[RECEIPT_HEADER] == rid and hs["content-type"] == "application/json"
    assert hs[PREAUTH_HEADER] == "1"  # Envoy throttles addresses collecting these
    assert resp.dynamic_metadata.fields[NAMESPACE].struct_value.fields["denied"].bool_value is True
    state, draft = processor.spool.draft(rid)
    assert state == "pending" and draft["decision"]["code"] == "auth.unauthenticated"
    assert draft["key_id"] is None and draft["upstream"] is None and draft["holds"] == []
    # A denial's response is known at once: its digest is the error body's.
    assert draft["response_digest"] == "sha256:" + hashlib.sha256(imm.body).hexdigest()


def test_an_authenticated_denial_is_not_marked_pre_auth_and_keeps_the_request_digest(sidecar):
    processor, _, tokens, _ = sidecar
    raw = _body("gpt-4o")
    [hresp, bresp] = _stream(processor, _headers_msg(headers(tokens["euro"], workspace="euro")), _body_msg(raw))
    assert hresp.WhichOneof("response") == "request_headers"
    imm = bresp.immediate_response
    assert imm.status.code == 451 and PREAUTH_HEADER not in _set_headers(imm.headers)
    _, draft = processor.spool.draft(receipt_id_for(REQUEST_ID))
    assert draft["request"] == {"digest": "sha256:" + hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}
    assert draft["decision"]["code"] == "sovereignty.blocked" and draft["model"] == "gpt-4o"


def test_an_allowed_call_is_routed_with_the_platform_credential_and_the_clients_extras_removed(sidecar):
    processor, _, tokens, _ = sidecar
    h = headers(tokens["acme"], x_evil_header="steal", openai_organization="org-attacker")
    [hresp, bresp] = _stream(processor, _headers_msg(h), _body_msg(_body()))
    assert hresp.WhichOneof("response") == "request_headers"
    common = bresp.request_body.response
    sets = _set_headers(common.header_mutation)
    assert sets[":path"] == "/v1/chat/completions" and sets[UPSTREAM_HEADER] in ("openai-us", "openai-eu")
    assert sets["authorization"] == "Bearer sk-test-openai"  # the client's key never goes upstream
    removed = set(common.header_mutation.remove_headers)
    assert {"x-evil-header", "openai-organization"} <= removed
    assert common.clear_route_cache
    _, draft = processor.spool.draft(receipt_id_for(REQUEST_ID))
    assert draft["decision"]["allow"] is True and draft["upstream"]["name"] == sets[UPSTREAM_HEADER]
    assert draft["holds"] == [] or all(len(h) == 4 for h in draft["holds"])
    assert draft["worst"][1] > 0 and draft["price"] is not None


def test_the_access_log_entry_finishes_the_receipt_signed_with_the_usage_it_reports(sidecar):
    processor, sink, tokens, signer = sidecar
    _stream(processor, _headers_msg(headers(tokens["acme"])), _body_msg(_body()))
    rid = receipt_id_for(REQUEST_ID)
    usage = struct_pb2.Struct()
    usage.update(
        {
            "prompt_tokens": 12,
            "completion_tokens": 7,
            "model": "gpt-4o-mini-2024",
            "response_digest": "sha256:" + "ab" * 32,
        }
    )
    entry = accesslog_pb2.HTTPAccessLogEntry()
    entry.request.request_id = REQUEST_ID
    entry.response.response_code.value = 200
    entry.common_properties.metadata.filter_metadata[USAGE_NAMESPACE].CopyFrom(usage)
    entry.common_properties.time_to_first_upstream_rx_byte.nanos = 1000
    entry.common_properties.duration.nanos = 5_000_000
    msg = als_pb2.StreamAccessLogsMessage()
    msg.http_logs.log_entry.append(entry)

    async def feed():
        async def it():
            yield msg

        return await sink.StreamAccessLogs(it(), None)

    asyncio.run(feed())

    env = processor.spool.envelope(rid)
    assert env is not None, "the access-log entry did not finalize the call's receipt"
    assert verify_receipt(env, signer.private_key.public_key())
    receipt = envelope_receipt(env)
    assert receipt["status"] == "complete" and receipt["usage"] == {
        "input_tokens": 12,
        "output_tokens": 7,
        "source": "response",
    }
    assert receipt["model"] == {"requested": "gpt-4o-mini", "served": "gpt-4o-mini-2024"}
    assert receipt["response"]["status"] == 200 and receipt["cost"]["usd_micros"] > 0
    # The same entry again (Envoy retries a batch) changes nothing: one receipt, charged once.
    asyncio.run(feed())
    assert processor.spool.envelope(rid) == env


def test_a_malformed_stream_still_answers_and_an_internal_error_fails_closed(sidecar):
    """A body without headers before it (Envoy would not, a confused peer might) is refused, never
    routed; the stream never stalls Envoy waiting for an answer."""
    processor, _, _, _ = sidecar
    [resp] = _stream(processor, _body_msg(_body()))
    assert resp.immediate_response.status.code == 400
    assert orjson.loads(resp.immediate_response.body)["error"]["code"] == "request.invalid"


def test_one_access_log_batch_settles_decided_calls_and_envoys_own_replies_together(sidecar):
    """A batch as Envoy sends it: two calls the service decided (an allow and a denial, their drafts
    read in one query) and a reply Envoy made itself before any decision (a 413: no draft, drafted
    from the entry). Each gets exactly one signed receipt."""
    processor, sink, tokens, signer = sidecar
    ids = ["11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"]
    _stream(processor, _headers_msg(headers(tokens["acme"], x_request_id=ids[0])), _body_msg(_body()))
    _stream(processor, _headers_msg(headers(None, x_request_id=ids[1])), _body_msg(_body()))
    local = "33333333-3333-4333-8333-333333333333"
    msg = als_pb2.StreamAccessLogsMessage()
    for rid, status in ((ids[0], 200), (ids[1], 401), (local, 413)):
        e = msg.http_logs.log_entry.add()
        e.request.request_id = rid
        e.request.path = "/v1/acme/chat/completions"
        e.response.response_code.value = status
        e.common_properties.duration.nanos = 1_000_000

    async def feed():
        async def it():
            yield msg

        return await sink.StreamAccessLogs(it(), None)

    asyncio.run(feed())
    receipts = {r: envelope_receipt(processor.spool.envelope(receipt_id_for(r))) for r in (*ids, local)}
    assert receipts[ids[0]]["decision"]["allow"] is True and receipts[ids[0]]["response"]["status"] == 200
    assert receipts[ids[1]]["decision"]["code"] == "auth.unauthenticated"
    assert receipts[local]["decision"]["code"] == "request.too_large" and receipts[local]["workspace"] == "acme"
    assert all(verify_receipt(processor.spool.envelope(receipt_id_for(r)), signer.public_key) for r in receipts)
    assert len({r["seq"] for r in receipts.values()}) == 3
