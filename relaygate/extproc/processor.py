"""The ext_proc servicer: one processor per Envoy stream, two messages per call.

Envoy sends request headers, then the buffered request body; the processor
answers each at once (no awaits on the hot path). The body reply carries the
whole decision: either an immediate JSON error, or the routing header, the
rewritten path, the provider credential and the receipt id as dynamic
metadata. Responses never come through here: usage reaches the settler via
Envoy's access log (see settlement.py), so the client waits on two messages.

A transport only: every check and decision is relaygate/decision/gate.py's; this module
converts protobuf to the gate's arguments and its Verdicts back to protobuf, and writes the
call's draft to the spool before Envoy acts on it.
"""

from __future__ import annotations

import logging

from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from envoy.type.v3 import http_status_pb2
from google.protobuf import struct_pb2

from relaygate.contract.envoy import ANSWERED_DETAILS, AWS_ERROR_HEADER, PREAUTH_HEADER, receipt_id_for
from relaygate.decision import gate
from relaygate.decision.admission import Admission, Verdict
from relaygate.decision.gate import Call
from relaygate.decision.wire import CallShape
from relaygate.extproc.preauth_sampler import SAMPLED_DETAILS
from relaygate.extproc.recorder import Recorder, timed_decide
from relaygate.extproc.spool import Spool

log = logging.getLogger("relaygate.extproc")

from relaygate.contract.envoy import NAMESPACE, RECEIPT_HEADER, UPSTREAM_HEADER  # noqa: E402,F401

_CONTINUE_HEADERS = pb.ProcessingResponse(request_headers=pb.HeadersResponse())
# Envoy derives the receipt id from x-request-id itself; the only metadata we
# hand back marks our own error replies, see relaygate/envoy/config.py.
_DENIED = struct_pb2.Struct()
_DENIED.update({NAMESPACE: {"denied": True}})


def _hv(key: str, value: str | bytes) -> base_pb2.HeaderValueOption:
    raw = value if isinstance(value, bytes) else value.encode()
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=key, raw_value=raw),
        append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )


_PREAUTH_MARK = _hv(PREAUTH_HEADER, "1")


class Processor(pb_grpc.ExternalProcessorServicer):
    """``admission`` is replaced whole when a new policy bundle arrives (see relaygate/extproc/bundle_sync.py)."""

    def __init__(self, admission: Admission, spool: Spool, recorder: Recorder | None = None) -> None:
        self.admission = admission
        self.spool = spool
        self.recorder = recorder or Recorder(spool)

    async def Process(self, request_iterator, context):
        call = Call(self.admission)
        if self.recorder.tracer is not None:  # Envoy passes its span's context in the stream's metadata
            call.trace_parent = next((v for k, v in context.invocation_metadata() or () if k == "traceparent"), "")
        async for req in request_iterator:
            kind = req.WhichOneof("request")
            try:
                if kind == "request_headers":
                    resp = self.on_headers(call, req.request_headers)
                    if not isinstance(resp, pb.ProcessingResponse):
                        resp = await resp  # a JWT of a key not cached yet, or the model list from a remote engine
                    yield resp
                    if resp.HasField("immediate_response"):
                        return  # answered: Envoy sends nothing more of this call, and nothing more is decided
                elif kind == "request_body":
                    resp = self.on_body(call, req.request_body)
                    if not isinstance(resp, pb.ProcessingResponse):
                        resp = await resp  # the workspace's own policies run in the policy sandbox
                    yield resp
                    # Nothing else of this call comes through here: close the stream so
                    # the call no longer depends on this process (a restart of the
                    # service does not cut streams it already admitted).
                    return
                else:  # not requested by our processing mode; never stall Envoy
                    yield _continue(kind)
            except Exception:
                log.exception("ext_proc failure on %s (receipt %s)", kind, call.receipt_id)
                call.receipt_id = call.receipt_id or receipt_id_for(None)
                yield self.deny(call, Verdict.deny(500, "gateway.error", "internal error in the policy service"))
                return

    # -- request headers -------------------------------------------------
    def on_headers(self, call: Call, msg: pb.HttpHeaders):
        h: dict[str, str] = {}
        for hv in msg.headers.headers:
            k = hv.key
            h[k] = hv.raw_value.decode("latin-1") if hv.raw_value else hv.value
            call.header_names.append(k)
        denied = gate.check_headers(call, h, has_body=not msg.end_of_stream)
        if denied is not None and not isinstance(denied, Verdict):
            return self._headers_after(call, denied)
        return self._headers_reply(call, denied)

    def _headers_reply(self, call: Call, denied: Verdict | None):
        """The answer to the request headers once they are checked: the model list, a denial, or go on."""
        if denied is None and gate.is_listing(call):
            body = gate.model_list(call)
            return answer(body) if isinstance(body, bytes) else _answer_later(body)
        return _CONTINUE_HEADERS if denied is None else self.deny(call, denied)

    async def _headers_after(self, call: Call, pending) -> pb.ProcessingResponse:
        reply = self._headers_reply(call, await pending)
        return reply if isinstance(reply, pb.ProcessingResponse) else await reply

    # -- request body ----------------------------------------------------
    def on_body(self, call: Call, msg: pb.HttpBody):
        raw = msg.body
        shape = gate.check_body(call, raw)
        if isinstance(shape, Verdict):
            return self.deny(call, shape, raw if call.key is not None else None)
        v = timed_decide(call, shape)
        if isinstance(v, Verdict):
            return self._verdict(call, v, shape, raw)
        return self._after(call, v, shape, raw)

    async def _after(self, call: Call, pending, shape: CallShape, raw: bytes) -> pb.ProcessingResponse:
        """Waits for the sandbox without blocking the event loop: other calls go on meanwhile."""
        return self._verdict(call, await pending, shape, raw)

    def _verdict(self, call: Call, v: Verdict, shape: CallShape, raw: bytes) -> pb.ProcessingResponse:
        if not v.allow:
            return self.deny(call, v, raw, shape)
        return self.forward(call, v, shape, raw)

    def forward(self, call: Call, v: Verdict, shape: CallShape, raw: bytes) -> pb.ProcessingResponse:
        r = self.recorder.routed(call, v, shape, raw)
        sets = [_hv(":path", r.path), _hv(UPSTREAM_HEADER, r.upstream.name), _hv(*r.credential)]
        sets += [_hv(k, v) for k, v in r.signing]
        # The routing header set here is removed again by the route, after it has been matched.
        common = pb.CommonResponse(
            header_mutation=pb.HeaderMutation(set_headers=sets, remove_headers=r.removes),
            clear_route_cache=True,
        )
        if r.body is not None:
            common.body_mutation.body = r.body
            common.header_mutation.set_headers.append(_hv("content-length", str(len(r.body))))
        return pb.ProcessingResponse(request_body=pb.BodyResponse(response=common))

    # -- denial ------------------------------------------------------------
    def deny(
        self, call: Call, v: Verdict, raw: bytes | None = None, shape: CallShape | None = None
    ) -> pb.ProcessingResponse:
        d = self.recorder.denied(call, v, raw, shape)
        headers = [_hv("content-type", "application/json"), _hv(RECEIPT_HEADER, d.receipt_id)]
        if d.preauth:
            # Envoy counts these per client address (PREAUTH_HEADER, removed before the client sees it).
            headers.append(_PREAUTH_MARK)
        if d.retry_after is not None:
            headers.append(_hv("retry-after", str(d.retry_after)))
        if d.allow is not None:
            headers.append(_hv("allow", d.allow))
        if d.aws_error:
            headers.append(_hv(AWS_ERROR_HEADER, d.code))
        return pb.ProcessingResponse(
            immediate_response=pb.ImmediateResponse(
                status=http_status_pb2.HttpStatus(code=d.status),
                headers=pb.HeaderMutation(set_headers=headers),
                body=d.body,
                # The settler skips access-log entries of sampled calls by this prefix (no draft, on purpose).
                details=(SAMPLED_DETAILS if d.sampled else "relaygate_") + d.code.replace(".", "_"),
            ),
            dynamic_metadata=_DENIED,
        )  # tells Envoy's local_reply_config to leave this reply alone


async def _answer_later(pending) -> pb.ProcessingResponse:
    return answer(await pending)


def answer(body: bytes) -> pb.ProcessingResponse:
    """A 200 the gateway answers itself (the model list): no provider call, so no receipt; the
    details mark it for the settler (ANSWERED_DETAILS) and the metadata for local_reply_config."""
    return pb.ProcessingResponse(
        immediate_response=pb.ImmediateResponse(
            status=http_status_pb2.HttpStatus(code=200),
            headers=pb.HeaderMutation(set_headers=[_hv("content-type", "application/json")]),
            body=body,
            details=ANSWERED_DETAILS,
        ),
        dynamic_metadata=_DENIED,
    )


def _continue(kind: str | None) -> pb.ProcessingResponse:
    if kind == "response_headers":
        return pb.ProcessingResponse(response_headers=pb.HeadersResponse())
    if kind == "response_body":
        return pb.ProcessingResponse(response_body=pb.BodyResponse())
    if kind == "request_trailers":
        return pb.ProcessingResponse(request_trailers=pb.TrailersResponse())
    if kind == "response_trailers":
        return pb.ProcessingResponse(response_trailers=pb.TrailersResponse())
    return _CONTINUE_HEADERS
